"""``codex_expansion``: player-safe entries from the canon, never linked before their depth."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest
from lore_studio import SECTIONS, Answering, state

from questfoundry.kit import CANON, TOPOLOGY, CodexEntry, Topology, depths, linked
from questfoundry.kit import SECTIONS as PROSE
from questfoundry.studio import Showrunner, StepError

CODEX = "book/codex/"


def lore(showrunner: Showrunner) -> tuple[Topology, dict[str, int]]:
    """Canon about the start (Ashford Mill) and about the deepest section (The Drowned King)."""
    topology = Topology.from_dict(state(showrunner, TOPOLOGY))
    deep = depths(topology)
    last = max(topology.ids, key=deep.__getitem__)
    store = showrunner.runtime.state
    store.set(CANON + "ashford-mill", {"name": "Ashford Mill", "fact": "It burned down.",
                                       "sections": [topology.start], "kind": "place"})  # fmt: skip
    store.set(CANON + "drowned-king", {"name": "The Drowned King", "fact": "He is the miller.",
                                       "sections": [last], "kind": "person"})  # fmt: skip
    return topology, deep


def test_an_entry_naming_canon_met_later_is_asked_again_then_shown_only_from_there(
    studio: Callable[..., Showrunner], answers: Answering
) -> None:
    showrunner = studio()
    _, deep = lore(showrunner)
    spoiling = {"term": "Ashford Mill", "text": "Where the Drowned King waits."}
    answers.when("codex", "about 'Ashford Mill'", reply=spoiling, times=2)
    report = showrunner.run("codex_expansion", sections=SECTIONS)
    first, again = [p for p in answers.prompts("codex") if "about 'Ashford Mill'" in p]
    assert "The canon: Ashford Mill (place): It burned down." in first
    assert "Do not name: The Drowned King." in first
    assert "named canon met later (1): The Drowned King" in again
    mill = CodexEntry.from_dict("ashford-mill", state(showrunner, CODEX + "ashford-mill"))
    assert mill.depth == max(deep.values()) > 0
    assert any("named canon met later" in r for r in report.repairs)
    assert not answers.unused()


@pytest.mark.parametrize("mended", [True, False])
def test_an_entry_the_gatekeeper_finds_spoiling_is_rewritten_once_then_moved_deeper(
    studio: Callable[..., Showrunner], answers: Answering, mended: bool
) -> None:
    showrunner = studio()
    topology, deep = lore(showrunner)
    later = next(s for s in topology.sections if deep[s.id] == 1)
    answers.when("codex", "about 'Ashford Mill'", reply={"term": "Mill", "text": "A mill."})
    spoils = {"spoils": [str(later.number)], "why": "It tells who dies there."}
    answers.when("spoilers", "The entry: Mill: A mill.", reply=spoils)
    answers.when("codex", "gives away", reply={"term": "Mill", "text": "A quiet mill."})
    answer = {"spoils": [], "why": ""} if mended else spoils
    answers.when("spoilers", "The entry: Mill: A quiet mill.", reply=answer)
    report = showrunner.run("codex_expansion", sections=SECTIONS)
    mill = CodexEntry.from_dict("ashford-mill", state(showrunner, CODEX + "ashford-mill"))
    assert (mill.term, mill.text) == ("Mill", "A quiet mill.")
    assert mill.depth == (0 if mended else 1)
    moved = f"the codex entry 'Mill' gives away section {later.number}: it is linked from depth 1"
    assert any(r.startswith(f"check_spoilers: {moved}") for r in report.repairs) != mended
    assert not answers.unused()


def test_a_term_links_its_first_mention_only_where_the_reader_is_deep_enough() -> None:
    king = CodexEntry("drowned-king", "Drowned King", "The king under the lake.", depth=2)
    mill = CodexEntry("mill", "mill", "A mill.", depth=0)
    paragraphs = ("The drowned king's mill stands.", "The mill, the Drowned King, the mill.")
    early = linked(paragraphs, [king, mill], depth=1)
    assert early == (
        (("The drowned king's ", None), ("mill", mill), (" stands.", None)),
        (("The mill, the Drowned King, the mill.", None),),
    )
    late = linked(paragraphs, [king, mill], depth=2)
    assert late[0] == (("The ", None), ("drowned king", king), ("'s ", None), ("mill", mill),
                       (" stands.", None))  # fmt: skip
    assert late[1] == (("The mill, the Drowned King, the mill.", None),)
    assert all(
        "".join(text for text, _ in spans) == p for spans, p in zip(late, paragraphs, strict=True)
    )
    windmill = CodexEntry("windmill", "windmill", "Taller.", depth=0)
    assert linked(("A windmill.",), [mill, windmill], 0) == (
        (("A ", None), ("windmill", windmill), (".", None)),
    )


def test_codex_expansion_before_lore_deepening_fails_in_one_line(
    studio: Callable[..., Showrunner],
) -> None:
    with pytest.raises(StepError, match=r"no canon yet: run lore_deepening first$"):
        studio().run("codex_expansion", sections=SECTIONS)


class Links(HTMLParser):
    """Each element id of a page, and the links inside each ``<section>`` by its id."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: dict[str, list[str]] = {}
        self.inside: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if "id" in found:
            self.ids.add(found["id"])
        if tag == "section":
            self.inside.append(found.get("id", ""))
            self.links[self.inside[-1]] = []
        if tag == "a" and self.inside:
            self.links[self.inside[-1]].append(found.get("href", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self.inside.pop()


@pytest.mark.slow
def test_the_bound_book_links_a_term_only_where_the_reader_is_deep_enough(
    studio: Callable[..., Showrunner], answers: Answering
) -> None:
    showrunner = studio()
    topology, deep = lore(showrunner)
    last = max(topology.ids, key=deep.__getitem__)
    prose = "The Drowned King waits by Ashford Mill. Ashford Mill burns; the drowned king waits."
    for ident in (topology.start, last):
        showrunner.runtime.state.set(PROSE + ident, {"id": ident, "prose": prose})
    answers.when("codex", "about 'Ashford Mill'", reply={"term": "Ashford Mill", "text": "Ash."})
    answers.when("codex", "about 'The Drowned King'", reply={"term": "Drowned King", "text": "?"})
    answers.when("spoilers", reply={"spoils": [], "why": ""})
    showrunner.run("codex_expansion", sections=SECTIONS)
    outputs = showrunner.run("binding_run", sections=SECTIONS).outputs

    page = Links(Path(outputs["html"]).read_text(encoding="utf-8"))
    mill, king = "#codex-ashford-mill", "#codex-drowned-king"
    assert [h for h in page.links[f"sec-{topology.start}"] if "codex" in h] == [mill]
    assert [h for h in page.links[f"sec-{last}"] if "codex" in h] == [king, mill]
    assert {"codex-ashford-mill", "codex-drowned-king"} <= page.ids
    assert all(h[1:] in page.ids for links in page.links.values() for h in links)
    markdown = Path(outputs["markdown"]).read_text(encoding="utf-8")
    assert markdown.count(f"[Drowned King]({king})") == 1  # the deep section only
    assert markdown.count(f"[Ashford Mill]({mill})") == 2  # once in each section
    assert '<a id="codex-drowned-king"></a>' in markdown and "**Drowned King**" in markdown
    with zipfile.ZipFile(outputs["epub"]) as epub:
        start = epub.read(f"EPUB/sec-{topology.start}.xhtml").decode()
        assert "codex.xhtml#codex-ashford-mill" in start and "codex-drowned-king" not in start
        assert 'id="codex-drowned-king"' in epub.read("EPUB/codex.xhtml").decode()
    assert "codex" not in Path(outputs["twee"]).read_text(encoding="utf-8")


def test_a_canon_entry_that_is_not_one_fails_the_step_in_one_line(
    studio: Callable[..., Showrunner],
) -> None:
    showrunner = studio()
    showrunner.runtime.state.set(CANON + "bad", {"name": "Bad", "fact": 3})
    with pytest.raises(StepError, match=r"write_entries .*a canon entry's fact must be text"):
        showrunner.run("codex_expansion", sections=SECTIONS)
