"""The studio end to end: real provider plugins and SDKs over real HTTP to the fake servers.

The fakes answer every structured-output request with an arbitrary instance of its schema —
valid, meaningless — so these runs prove the loops cope with nonsense and still bind a book
whose links all work. Counting the requests a fake server received proves what was paid for.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from questfoundry.cli import cli
from questfoundry.config import load_config
from questfoundry.registry import get_plugin_manager
from questfoundry.studio import Showrunner, StepError
from questfoundry.testing.clock import FakeClock
from questfoundry.testing.fakes import FakeOllama, FakeOpenAI, Fault, RecordedRequest

SEED = Path(__file__).resolve().parents[1] / "core" / "tests" / "configs" / "seed.yml"
ROLE = re.compile(r"You are the (\w[\w ]*?) of ")


@pytest.fixture
def openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    with FakeOllama() as server:
        yield server


def project(tmp_path: Path, config: dict[str, Any]) -> Path:
    """A project folder whose ``.questfoundry/config.yml`` says ``config``; its path."""
    path = tmp_path / ".questfoundry" / "config.yml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(config))
    return path


def openai_project(tmp_path: Path, server: FakeOpenAI, **extra: Any) -> Path:
    text = {"api_key": "sk-studio-test", "base_url": server.base_url, "model": "gpt-4o-mini"}
    return project(
        tmp_path,
        {
            "providers": {
                "text": {"default": "openai", "openai": text},
                "image": {"default": "openai", "openai": {"model": "gpt-image-1"}},
            },
            "retry": {"max_retries": 1},
            **extra,
        },
    )


def showrunner(path: Path, **overrides: Any) -> Showrunner:
    config = load_config(path, env={"OPENAI_API_KEY": "sk-studio-test"}, overrides=overrides)
    return Showrunner.from_config(config, get_plugin_manager(), clock=FakeClock())


def role_of(request: RecordedRequest) -> str:
    """The role that sent ``request``, read from its system message."""
    messages = request.body["messages"]
    match = ROLE.match(messages[0]["content"])
    assert match is not None, messages[0]
    return match.group(1).replace(" ", "_")


class Page(HTMLParser):
    """The anchors an HTML page defines, its links and every resource it would load."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.anchors: set[str] = set()
        self.links: list[str] = []
        self.loads: list[str] = []
        self.tags: set[str] = set()
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        self.tags.add(tag)
        if "id" in found:
            self.anchors.add(found["id"])
        if tag == "a":
            self.links.append(found.get("href", ""))
        self.loads += [found[name] for name in ("src", "srcset", "poster") if name in found]


@pytest.mark.slow
def test_story_spark_art_and_binding_against_the_fake_openai(
    tmp_path: Path, openai: FakeOpenAI
) -> None:
    with showrunner(openai_project(tmp_path, openai)) as studio:
        first = studio.run("story_spark", sections=4, brief={"premise": "A night ferry."})
        paid = len(openai.requests)
        assert paid == first.totals.provider_calls > 4
        assert {r.model for r in openai.requests} == {"gpt-4o-mini"}
        assert openai.requests[0].response_schema["properties"]["sections"]["minItems"] == 4

        second = studio.run("story_spark", sections=4)
        assert len(openai.requests) == paid  # the server saw nothing new
        assert second.totals.provider_calls == 0 and second.totals.cost == 0
        assert second.totals.saved == first.totals.cost + first.totals.saved > 0

        art = studio.run("art_touch_up", sections=4)
        images = [r for r in openai.requests if r.path == "/v1/images/generations"]
        assert len(images) == 4 and art.roles[1].cost > 0
        again = studio.run("art_touch_up", sections=4)  # image bytes come from the cache too
        assert len(openai.requests) == paid + art.totals.provider_calls
        assert again.roles[1].cache_hits == 4 and again.roles[1].saved == art.roles[1].cost
        bound = studio.run("binding_run", sections=4)

    page = Page(Path(bound.outputs["html"]).read_text(encoding="utf-8"))
    assert len([a for a in page.anchors if a.startswith("sec-")]) == 4
    assert page.links and all(link[1:] in page.anchors for link in page.links)
    assert all(link.startswith("#") for link in page.links)
    assert len(page.loads) == 4 and all(s.startswith("data:image/png;base64,") for s in page.loads)
    assert not page.tags & {"link", "iframe", "object"}  # its one script is inline
    markdown = Path(bound.outputs["markdown"]).read_text(encoding="utf-8")
    targets = re.findall(r"\]\(#(sec-[^)]+)\)", markdown)
    anchors = set(re.findall(r'<a id="(sec-[^"]+)"></a>', markdown))
    assert targets and set(targets) <= anchors and len(anchors) == 4
    for image in re.findall(r"\]\((images/[^)]+)\)", markdown):
        assert (Path(bound.outputs["markdown"]).parent / image).read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
def test_the_seed_config_sends_each_role_to_its_provider_model_and_temperature(
    tmp_path: Path, openai: FakeOpenAI, ollama: FakeOllama
) -> None:
    path = tmp_path / ".questfoundry" / "config.yml"
    path.parent.mkdir()
    shutil.copy(SEED, path)
    overrides = {
        "providers.text.openai.base_url": openai.base_url,
        "providers.text.ollama.base_url": ollama.url,
    }
    with showrunner(path, **overrides) as studio:
        report = studio.run("story_spark", sections=3)
    seen = {(role_of(r), r.model, r.temperature) for r in openai.requests}
    assert {("plotwright", "gpt-4o", None), ("scene_smith", "gpt-4o", 0.8)} <= seen
    assert seen <= {("plotwright", "gpt-4o", None), ("scene_smith", "gpt-4o", 0.8)}
    assert {(role_of(r), r.model, r.temperature) for r in ollama.requests} == {
        ("gatekeeper", "llama3", 0.2)
    }
    assert [(u.role, u.provider, u.model) for u in report.roles] == [
        ("plotwright", "openai", "gpt-4o"),
        ("scene_smith", "openai", "gpt-4o"),
        ("gatekeeper", "ollama", "llama3"),
    ]


@pytest.mark.slow
def test_a_run_stopped_by_an_outage_finishes_later_paying_only_for_the_rest(
    tmp_path: Path, openai: FakeOpenAI, ollama: FakeOllama
) -> None:
    path = openai_project(
        tmp_path,
        openai,
        roles={"gatekeeper": {"provider": "ollama", "model": "llama3.2"}},
    )
    overrides = {"providers.text.ollama.base_url": ollama.url}
    ollama.fail_next(Fault.UNAVAILABLE, times=1000)
    with showrunner(path, **overrides) as studio:
        with pytest.raises(StepError) as stopped:
            studio.run("story_spark", sections=3)
        assert str(stopped.value).startswith(
            "story_spark: step review_sections (gatekeeper) failed: ollama: "
        )
        state = studio.runtime.state
        topology = state.get("book/topology")
        assert topology is not None
        ids = [s["id"] for s in topology["sections"]]
        assert state.list_keys("book/sections/") == sorted(f"book/sections/{i}" for i in ids)
        assert state.list_keys("book/reviews/") == []
        pointer = state.get("runs/latest/story_spark")
        assert pointer is not None
        record = state.get(f"runs/{pointer['run_id']}")
        assert record is not None and record["status"] == "failed"
        assert record["steps"] == {"draft_topology": "done", "write_sections": "done"}
        drafted = len(openai.requests)
        paid_before = {row.key: row.calls for row in studio.runtime.ledger.report("role")}

        ollama.reset()
        report = studio.run("story_spark", sections=3)
        assert report.resumed and report.skipped == ["draft_topology", "write_sections"]
        assert len(ollama.requests) == 3
        rewrites = openai.requests[drafted:]
        assert all("sent this section back" in r.body["messages"][-1]["content"] for r in rewrites)
        assert report.roles[0].role == "gatekeeper"
        assert sum(u.calls for u in report.roles if u.role == "scene_smith") == len(rewrites)
        paid_after = {row.key: row.calls for row in studio.runtime.ledger.report("role")}
        assert paid_after["plotwright"] == paid_before["plotwright"]
        assert state.list_keys("book/reviews/") == sorted(f"book/reviews/{i}" for i in ids)


@pytest.mark.slow
def test_questfoundry_run_prints_the_report_and_where_the_book_is(
    tmp_path: Path, openai: FakeOpenAI
) -> None:
    path = str(openai_project(tmp_path, openai))
    runner = CliRunner()
    ran = runner.invoke(cli, ["--config", path, "run", "story_spark", "--sections", "2", "--json"])
    assert ran.exit_code == 0, ran.output
    report = json.loads(ran.stdout)
    assert report["loop"] == "story_spark" and report["sections"] == 2
    assert isinstance(report["totals"]["cost"], str) and report["totals"]["calls"] > 0

    bound = runner.invoke(cli, ["--config", path, "run", "binding_run", "--sections", "2"])
    assert bound.exit_code == 0, bound.output
    html = tmp_path / "book" / "book.html"
    assert f"HTML book: {html}" in bound.stdout and html.is_file()
    assert "book_binder" in bound.stdout and "total" in bound.stdout
    assert "binding_run: bind (book_binder) done" in bound.stderr

    openai.fail_next(Fault.SERVER_ERROR, times=1000)
    down = runner.invoke(cli, ["--config", path, "run", "story_spark", "--sections", "3"])
    assert down.exit_code == 1
    error = [line for line in down.stderr.splitlines() if line.startswith("Error:")]
    assert error == [line for line in down.stderr.splitlines() if "Error" in line]
    assert len(error) == 1 and "Traceback" not in down.stderr
    assert error[0].startswith("Error: story_spark: step draft_topology (plotwright) failed: ")
    assert error[0].endswith("(saved: run it again to continue)")

    unknown = runner.invoke(cli, ["--config", path, "run", "story_sprak"])
    assert unknown.exit_code == 1
    runnable = sorted(name for name, spec in get_plugin_manager().loops().items() if spec.steps)
    assert unknown.stderr.strip() == (
        f"Error: unknown loop 'story_sprak' (runnable loops: {', '.join(runnable)})"
    )


@pytest.mark.slow
def test_state_after_a_studio_run_exports_imports_and_exports_the_same(
    tmp_path: Path, openai: FakeOpenAI
) -> None:
    from click.testing import CliRunner

    from questfoundry.cli import cli

    def state(config: Path, *args: str) -> str:
        result = CliRunner(env={"OPENAI_API_KEY": "sk-studio-test"}).invoke(
            cli, ["--config", str(config), "state", *args]
        )
        assert result.exit_code == 0, result.output
        return result.output

    made = openai_project(tmp_path / "made", openai)
    with showrunner(made) as studio:
        studio.run("story_spark", sections=3)
        studio.run("binding_run")
    fresh = openai_project(tmp_path / "fresh", openai)
    exported = tmp_path / "state.json"
    state(made, "export", str(exported), "--include-history")
    state(fresh, "import", str(exported))
    again = tmp_path / "again.json"
    state(fresh, "export", str(again), "--include-history")
    assert again.read_bytes() == exported.read_bytes()
    documents = json.loads(exported.read_text())["documents"]
    assert {"book/topology", "book/export"} <= set(documents)
    assert any(key.startswith("runs/") for key in documents)  # the run records: history
    assert "sk-studio-test" not in exported.read_text()


# ---------------------------------------------------------------------- the book's shape


class Graph(HTMLParser):
    """The book's graph as the reader sees it: each ``<section id>`` of the story (not the
    codex's, in an ``<aside>``) and the links of its choices (``ul.choices``)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.order: list[str] = []
        self.links: dict[str, list[str]] = {}
        self._open: list[str] = []
        self._here: str | None = None
        self._choices = 0
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        self._open.append(tag)
        if tag == "section" and "aside" not in self._open and "id" in found:
            self._here = found["id"]
            self.order.append(self._here)
            self.links[self._here] = []
        elif tag == "ul" and "choices" in found.get("class", "").split():
            self._choices += 1
        elif tag == "a" and self._here and self._choices:
            self.links[self._here].append(found["href"].removeprefix("#"))

    def handle_endtag(self, tag: str) -> None:
        while self._open and self._open.pop() != tag:
            pass
        if tag == "ul" and self._choices:
            self._choices -= 1
        elif tag == "section":
            self._here = None

    def figures(self) -> Any:
        from questfoundry.book.graph import Graph as Numbers

        number = {ident: n for n, ident in enumerate(self.order, 1)}
        links = {number[i]: tuple(number.get(t, 0) for t in self.links[i]) for i in self.order}
        endings = frozenset(n for n, targets in links.items() if not targets)
        return Numbers(1, links, endings).figures()


@pytest.mark.parametrize(
    "sections",
    [6, 16, pytest.param(50, marks=pytest.mark.soak), pytest.param(400, marks=pytest.mark.soak)],
)
def test_the_stand_in_writes_a_branching_book_whatever_it_answers(
    tmp_path: Path, openai: FakeOpenAI, sections: int
) -> None:
    with showrunner(openai_project(tmp_path, openai)) as studio:
        spark = studio.run("story_spark", sections=sections)
        bound = studio.run("binding_run", sections=sections)
    asked = [r.body["messages"][-1]["content"] for r in openai.requests if r.response_schema]
    assert any("1 (the start): choices leading to 2, 3" in prompt for prompt in asked)
    graph = Graph(Path(bound.outputs["html"]).read_text(encoding="utf-8"))
    figures = graph.figures()
    assert len(graph.order) == figures.sections == sections
    assert figures.problems() == []  # every rule holds, read from the page
    assert figures.endings >= 2 and figures.branching * 3 >= figures.choosing
    told = [n for r in (spark, bound) for n in r.notes if n.startswith("the book: ")]
    assert len(told) == 2 and f"{sections} sections, {figures.endings} endings" in told[1]
    checked = CliRunner().invoke(
        cli, ["--config", str(tmp_path / ".questfoundry" / "config.yml"), "book", "check", "--json"]
    )
    assert checked.exit_code == 0, checked.output
    stated = json.loads(checked.stdout)
    assert (stated["sections"], stated["endings"], stated["branching"]) == (
        figures.sections,
        figures.endings,
        figures.branching,
    )
    assert stated["longest_shortest_path_to_an_ending"] == figures.longest
