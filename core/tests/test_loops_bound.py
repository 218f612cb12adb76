"""The catalogue's loops after ``story_spark`` on the stand-in, then ``binding_run``: a book and
its translated edition in every format, every link leading somewhere, the codex appendix and the
cue sheet present."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from lore_studio import SECTIONS, state
from page_elements import Elements

from questfoundry.kit import AUDIO, TOPOLOGY, TRANSLATIONS, CueSheet, Topology
from questfoundry.studio import Showrunner, StepError


def test_the_book_binds_with_its_codex_cue_sheet_and_translated_edition_every_link_working(
    studio: Callable[..., Showrunner],
) -> None:
    showrunner = studio()
    topology = Topology.from_dict(state(showrunner, TOPOLOGY))
    showrunner.runtime.state.set("book/codex/mill", {"term": "Mill", "text": "It burned."})
    showrunner.run("audio_pass", sections=SECTIONS)
    showrunner.run("translation_pass", sections=SECTIONS, options={"language": "de"})
    outputs = showrunner.run("binding_run", sections=SECTIONS).outputs
    sheet = CueSheet.from_dict(state(showrunner, AUDIO))
    german = state(showrunner, TRANSLATIONS + "de")
    sound = next(iter(sheet.cues.values()))[0].sound
    for edition, lang, file in (("html", "en", "book.html"), ("html (de)", "de", "book.de.html")):
        html = Path(outputs[edition])
        assert html.name == file
        page = Elements(html.read_text(encoding="utf-8"))
        assert page.tags("html") == [{"lang": lang}]
        ids = {attrs["id"] for _, attrs in page.elements if "id" in attrs}
        assert {f"sec-{i}" for i in topology.ids} | {"codex-mill"} <= ids
        targets = {a["href"][1:] for a in page.tags("a") if a.get("href", "").startswith("#")}
        assert targets and targets <= ids  # every link leads somewhere
        assert len(page.tags("details")) == len(sheet.cues)  # cues beside their sections
        assert [a["class"] for a in page.tags("aside")] == ["codex", "notes"]
        assert sound in "".join(page.text)
    text = " ".join(" ".join(Elements(Path(outputs["html (de)"]).read_text()).text).split())
    start = german["sections"][topology.start]
    assert german["title"] in text and german["codex"]["mill"]["text"] in text
    assert " ".join(start["prose"].split()) in text

    markdown = Path(outputs["markdown (de)"]).read_text(encoding="utf-8")
    assert Path(outputs["markdown (de)"]).name == "book.de.md"
    assert all(f'<a id="sec-{i}"></a>' in markdown for i in topology.ids)
    assert '<a id="codex-mill"></a>' in markdown and sound in markdown.replace("\\", "")
    assert "\n## Cue sheet\n" in Path(outputs["markdown"]).read_text(encoding="utf-8")
    with zipfile.ZipFile(outputs["epub (de)"]) as epub:
        assert "<dc:language>de</dc:language>" in epub.read("EPUB/content.opf").decode()
        assert sound in epub.read("EPUB/notes.xhtml").decode()
        assert "EPUB/codex.xhtml" in epub.namelist()
    twee = Path(outputs["twee (de)"])
    assert twee.name == "book.de.twee"
    links = twee.read_text(encoding="utf-8")
    assert all(f"->{c.target}]]" in links for s in topology.sections for c in s.choices)


@pytest.mark.parametrize(
    "loop", ["style_tune_up", "narration_dry_run", "translation_pass", "audio_pass"]
)
def test_each_loop_before_story_spark_fails_in_one_line(
    studio: Callable[..., Showrunner], loop: str
) -> None:
    options = {"language": "de"} if loop == "translation_pass" else {}
    with pytest.raises(StepError, match=r"has no topology yet: run story_spark first$"):
        studio(spark=False).run(loop, sections=SECTIONS, options=options)
