"""``questfoundry book export`` and ``book import``: the book's files from the state without a
provider, and an author's Twine edits brought back, checked whole, one line when refused."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from questfoundry.book.exports import FORMATS
from questfoundry.cli import cli
from questfoundry.cli.book import book_export
from questfoundry.config import load_config
from questfoundry.contracts.protocols import StateStore
from questfoundry.kit.bindery import FRONT_MATTER, IMAGES, prose_digest
from questfoundry.kit.loops import SECTIONS, TOPOLOGY
from questfoundry.registry import get_plugin_manager
from questfoundry.runtime import Runtime
from questfoundry.testing.books import SVG, png, small_book


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A project whose state holds :func:`small_book`: topology, prose, blurb, two images
    (one of them an SVG that says it is a PNG)."""
    path = tmp_path / ".questfoundry" / "config.yml"
    path.parent.mkdir(parents=True)
    path.write_text("{}\n")
    book = small_book()
    with state_of(path) as state:
        state.set(TOPOLOGY, book.topology.to_dict())
        for ident, prose in book.prose.items():
            state.set(SECTIONS + ident, {"id": ident, "prose": prose, "placeholder": False})
        state.set(FRONT_MATTER, {"blurb": book.blurb})
        for ident, data in (("gate", png()), ("yard", SVG)):
            image = {"mime": "image/png", "data": base64.b64encode(data).decode()}
            state.set(
                IMAGES + ident,
                image | {"caption": ident, "digest": prose_digest(book.prose[ident])},
            )
    return path


@contextmanager
def state_of(config: Path) -> Iterator[StateStore]:
    """The project's state store, open for the ``with`` block."""
    with Runtime(load_config(config), get_plugin_manager()) as runtime:
        yield runtime.state


def book_command(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), "book", *args])


@pytest.fixture(autouse=True)
def no_provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any provider these commands built would fail the test."""

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("a provider was built")

    monkeypatch.setattr(Runtime, "provider", refuse)
    yield


def test_the_format_choices_are_the_formats_the_book_has() -> None:
    option = next(p for p in book_export.params if p.name == "kind")
    assert list(option.type.choices) == list(FORMATS)  # type: ignore[attr-defined]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["html", "md", "epub", "twee"])
def test_each_format_is_written_from_the_state_into_the_project(config: Path, kind: str) -> None:
    done = book_command(config, "export", "--format", kind)
    assert done.exit_code == 0, done.output
    written = config.parent.parent / "book" / f"book.{FORMATS[kind].extension}"
    assert done.stdout.startswith(f"Wrote {written}") and written.stat().st_size > 0
    assert "left out the image of 'yard': not a PNG, JPEG, WebP or GIF image" in done.stderr
    if kind == "md":
        assert "and 1 pictures" in done.stdout
        assert (written.parent / "images" / "gate.png").read_bytes() == png()
        assert not (written.parent / "images" / "yard.png").exists()


def test_export_takes_a_path(config: Path, tmp_path: Path) -> None:
    target = tmp_path / "out" / "vigil.html"
    done = book_command(config, "export", str(target))
    assert done.exit_code == 0, done.output
    page = target.read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 1 and "<svg" not in page


def test_export_without_a_book_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / ".questfoundry" / "config.yml"
    path.parent.mkdir(parents=True)
    path.write_text("{}\n")
    done = book_command(path, "export")
    assert done.exit_code == 1
    assert done.stderr == "Error: the book has no topology yet: run story_spark first\n"


HOSTILE_ID = '"><script>document.title="PWNED"</script>'


@pytest.mark.slow
@pytest.mark.parametrize(
    ("where", "what"),
    [
        (lambda t: t.update(start=HOSTILE_ID), "start"),
        (lambda t: t["sections"][1].update(id=HOSTILE_ID), "section id"),
        (lambda t: t["sections"][0]["choices"][0].update(target=HOSTILE_ID), "choice target"),
    ],
    ids=["start", "id", "target"],
)
def test_hostile_ids_in_the_state_are_refused_in_one_line(
    config: Path, where: Callable[[dict[str, Any]], None], what: str
) -> None:
    with state_of(config) as state:
        topology = state.get(TOPOLOGY) or {}
        where(topology)
        state.set(TOPOLOGY, topology)
    for kind in FORMATS:
        done = book_command(config, "export", "--format", kind)
        assert done.exit_code == 1 and len(done.stderr.splitlines()) == 1, done.output
        assert f"the book's {what}" in done.stderr and "is not a valid id" in done.stderr
    assert not (config.parent.parent / "book").exists()


@pytest.mark.slow
def test_twee_export_import_export_is_the_same_file_and_changes_nothing(
    config: Path, tmp_path: Path
) -> None:
    first, second = tmp_path / "first.twee", tmp_path / "second.twee"
    assert book_command(config, "export", "--format", "twee", str(first)).exit_code == 0
    with state_of(config) as state:
        before = {key: state.get(key) for key in state.list_keys("book/")}
    imported = book_command(config, "import", str(first))
    assert imported.exit_code == 0, imported.output
    assert imported.stdout == "Nothing changed: the file holds the book as it is.\n"
    with state_of(config) as state:
        assert {key: state.get(key) for key in state.list_keys("book/")} == before
    assert book_command(config, "export", "--format", "twee", str(second)).exit_code == 0
    assert second.read_bytes() == first.read_bytes()


@pytest.mark.slow
def test_an_authors_twine_edits_come_back_and_the_prose_is_theirs(
    config: Path, tmp_path: Path
) -> None:
    twee = tmp_path / "vigil.twee"
    assert book_command(config, "export", "--format", "twee", str(twee)).exit_code == 0
    text = twee.read_text(encoding="utf-8").replace("You are at the yard.", "The yard is empty.")
    text = text.replace("## The Wall", "## The High Wall")
    text = text.replace("[[Jump down->garden]]", "[[Jump down->garden]]\n[[Up->attic]]")
    twee.write_text(text + ":: attic\n## The Attic\n\nDust.\n\n[[Down->gate]]\n", encoding="utf-8")
    dry = book_command(config, "import", "--dry-run", str(twee))
    assert dry.exit_code == 0 and dry.stdout.startswith("Would change new sections (1): attic")
    done = book_command(config, "import", str(twee))
    assert done.exit_code == 0, done.output
    assert done.stdout.splitlines() == [
        "Changed new sections (1): attic",
        "Changed prose (1): yard",
        "Changed titles (1): wall",
        "Changed choices (1): wall",
    ]
    with state_of(config) as state:
        yard = state.get(SECTIONS + "yard") or {}
        attic = state.get(SECTIONS + "attic") or {}
        topology = state.get(TOPOLOGY) or {}
    assert yard["prose"].startswith("The yard is empty.") and yard["author"] is True
    assert attic["prose"] == "Dust." and attic["author"] is True
    assert [s["number"] for s in topology["sections"] if s["id"] == "attic"] == [6]
    bound = book_command(config, "export", "--format", "md")
    assert bound.exit_code == 0, bound.output
    markdown = (config.parent.parent / "book" / "book.md").read_text(encoding="utf-8")
    assert "## 6. The Attic" in markdown and "- [Up](#sec-attic) — turn to 6" in markdown


@pytest.mark.slow
def test_a_file_that_cannot_be_imported_changes_nothing_and_says_why_in_one_line(
    config: Path, tmp_path: Path
) -> None:
    twee = tmp_path / "vigil.twee"
    assert book_command(config, "export", "--format", "twee", str(twee)).exit_code == 0
    text = twee.read_text(encoding="utf-8").replace("You are at the yard.", "Rewritten.")
    twee.write_text(text.replace("[[Knock->yard]]", "[[Knock->cellar]]"), encoding="utf-8")
    with state_of(config) as state:
        before = {key: state.get(key) for key in state.list_keys("book/")}
    done = book_command(config, "import", str(twee))
    assert done.exit_code == 1 and "Traceback" not in done.output
    assert done.stderr.splitlines() == [
        "Error: the Twee file cannot be imported: passage 'gate': a link to 'cellar', which is "
        "no passage"
    ]
    with state_of(config) as state:
        assert {key: state.get(key) for key in state.list_keys("book/")} == before
    binary = tmp_path / "book.epub"
    binary.write_bytes(b"PK\x03\x04\xff\xfe")
    refused = book_command(config, "import", str(binary))
    assert refused.exit_code == 1 and len(refused.stderr.splitlines()) == 1
