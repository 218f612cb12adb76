"""style_tune_up, narration_dry_run, audio_pass and translation_pass on the stand-in: the real
OpenAI plugin and SDK over HTTP to the fake server, which answers every structured request with
an arbitrary valid instance of its schema.

After ``story_spark`` each loop runs, every call it pays for reaching the server (a repeated run
reaching none is each loop's own test); the style guide is in the prompts of the later calls
(the fake's request log); ``binding_run`` then binds the book and
its German edition in every format, every link leading somewhere, with the codex appendix and the
cue sheet.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

import pytest

from questfoundry.kit import StyleGuide, Topology
from questfoundry.studio import Showrunner
from questfoundry.testing.fakes import FakeOpenAI

SECTIONS = 6
LOOPS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("style_tune_up", {}),
    ("narration_dry_run", {}),
    ("audio_pass", {}),
    ("translation_pass", {"language": "de"}),
)


@pytest.mark.slow
def test_the_later_loops_run_on_the_stand_in_and_the_book_binds_in_two_languages(
    stand_in_studio: tuple[Showrunner, FakeOpenAI],
) -> None:
    showrunner, server = stand_in_studio
    showrunner.run("story_spark", sections=SECTIONS)
    state = showrunner.runtime.state
    state.set("book/codex/mill", {"term": "Mill", "text": "It burned."})
    for loop, options in LOOPS:
        asked = len(server.requests)
        report = showrunner.run(loop, sections=SECTIONS, options=options)
        assert report.totals.provider_calls == len(server.requests) - asked > 0, loop
        assert report.totals.cost > 0, loop

    guide = StyleGuide.from_dict(state.get("book/style") or {})
    shown = guide.guide or guide.rules[0]
    styled = [r for r in server.requests if shown in str(r.body["messages"][-1]["content"])]
    assert len(styled) > SECTIONS  # the prompts after the guide: checks, cues, translations…

    outputs = showrunner.run("binding_run", sections=SECTIONS).outputs
    topology = Topology.from_dict(state.get("book/topology") or {})
    ids = topology.ids
    sheet = state.get("book/audio") or {}
    sound = next(iter(sheet["sections"].values()))[0]["sound"]
    for name, lang in (("html", "en"), ("html (de)", "de")):
        page = Path(outputs[name]).read_text(encoding="utf-8")
        links = set(re.findall(r'href="#([^"]+)"', page))
        assert links and links <= set(re.findall(r' id="([^"]+)"', page))
        assert {f"sec-{i}" for i in ids} <= links  # every section is reached
        assert f'<html lang="{lang}">' in page and 'id="codex-mill"' in page
        assert page.count('<details class="cues">') == len(sheet["sections"]) and sound in page
    title = (state.get("book/translations/de") or {})["title"]
    assert title in Path(outputs["html (de)"]).read_text(encoding="utf-8")
    markdown = Path(outputs["markdown (de)"])
    assert markdown.name == "book.de.md"
    text = markdown.read_text(encoding="utf-8")
    assert all(f'<a id="sec-{i}"></a>' in text for i in ids) and '<a id="codex-mill"></a>' in text
    with zipfile.ZipFile(outputs["epub (de)"]) as epub:
        assert "<dc:language>de</dc:language>" in epub.read("EPUB/content.opf").decode()
        assert sound in epub.read("EPUB/notes.xhtml").decode()
        assert "EPUB/codex.xhtml" in epub.namelist()
    twee = Path(outputs["twee (de)"])
    assert twee.name == "book.de.twee"
    assert len(re.findall(r"\[\[.*->([a-z0-9_-]+)\]\]", twee.read_text(encoding="utf-8"))) == sum(
        len(s.choices) for s in topology.sections
    )
