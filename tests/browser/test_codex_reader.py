"""The codex in Chromium: a term's link shows its entry alone, Back returns to the story with the
path as it was, a term is linked only where the reader is deep enough, the print view holds the
whole codex, and an entry's hostile text runs nothing; EPUBCheck finds nothing wrong with an
EPUB's codex and its links."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from readers import Reader
from test_epubcheck import epubcheck

from questfoundry.book.codex import CodexEntry
from questfoundry.book.epub import to_epub
from questfoundry.testing.books import HOSTILE, small_book

pytestmark = pytest.mark.browser

Open = Callable[..., Reader]
Write = Callable[..., str]
#: rain falls in every section (depth 0); the keep is two choices from the gate
RAIN = CodexEntry("rain", "Rain", "Water from a low sky.", depth=0)
KEEP = CodexEntry("keep", "keep", "The tower at the heart of the yard.", depth=2)


def shown_entries(tab: Reader) -> list[str]:
    return tab.page.eval_on_selector_all(
        ".codex > section", "all => all.filter(s => s.checkVisibility()).map(s => s.id)"
    )


@pytest.mark.parametrize("javascript", [False, True], ids=["no-js", "js"])
def test_a_term_shows_its_entry_alone_and_back_returns_to_the_story(
    book_file: Write, reader: Open, javascript: bool
) -> None:
    tab = reader(book_file(small_book(codex=(RAIN, KEEP))), javascript=javascript)
    if javascript:
        tab.choose(0)  # the yard
    here = tab.visible()
    trail = tab.trail()
    assert shown_entries(tab) == []
    tab.page.click(f"#{here[0]} a.term")
    tab.page.wait_for_function("location.hash === '#codex-rain'")
    assert shown_entries(tab) == ["codex-rain"] and tab.visible() == []
    assert " ".join(tab.page.inner_text("#codex-rain").split()) == "Rain Water from a low sky."
    if javascript:
        tab.page.keyboard.press("1")  # the choice keys wait while an entry is read
        assert tab.page.evaluate("location.hash") == "#codex-rain"
        tab.page.click("#back")
    else:
        tab.page.go_back()
    tab.page.wait_for_function("!location.hash.startsWith('#codex-')")
    assert tab.visible() == here and tab.trail() == trail  # the entry was never a step


def test_a_late_entry_is_linked_only_from_sections_as_deep_as_it(
    book_file: Write, reader: Open
) -> None:
    book = small_book(codex=(RAIN, KEEP))
    keep = book.topology.section("keep")
    prose = {**book.prose, "gate": "You see the keep far off. Rain falls.", "keep": "The keep."}
    tab = reader(book_file(replace(book, prose=prose)))
    gate = tab.page.eval_on_selector_all("#sec-gate a.term", "all => all.map(a => a.hash)")
    assert gate == ["#codex-rain"]
    late = tab.page.eval_on_selector_all(f"#sec-{keep.id} a.term", "all => all.map(a => a.hash)")
    assert late == ["#codex-keep"]


def test_the_print_view_holds_the_whole_codex(book_file: Write, reader: Open) -> None:
    tab = reader(book_file(small_book(codex=(RAIN, KEEP))))
    tab.page.emulate_media(media="print")
    assert shown_entries(tab) == ["codex-keep", "codex-rain"]  # by term


def test_a_hostile_entry_runs_nothing(book_file: Write, reader: Open) -> None:
    hostile = tuple(CodexEntry(f"h{n}", text, text, 0) for n, text in enumerate(HOSTILE))
    tab = reader(book_file(small_book(codex=hostile)))
    for entry in hostile:
        tab.page.evaluate(f"location.hash = '#{entry.anchor}'")
        assert shown_entries(tab) == [entry.anchor]
    assert tab.page.title() == "The Vigil" and tab.dialogs == []
    assert tab.page.evaluate("document.scripts.length") == 1


def test_epubcheck_finds_nothing_wrong_with_a_codex_and_its_links(tmp_path: Path) -> None:
    hostile = tuple(CodexEntry(f"h{n}", text, text, 0) for n, text in enumerate(HOSTILE))
    path = tmp_path / "book.epub"
    path.write_bytes(to_epub(small_book(codex=(RAIN, KEEP, *hostile))))
    checked = subprocess.run(
        [*epubcheck(), str(path)], capture_output=True, text=True, timeout=240, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "No errors or warnings detected." in checked.stdout
