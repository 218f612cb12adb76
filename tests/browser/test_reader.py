"""The reader in Chromium: one section at a time with JavaScript and without, choices to an
ending, Back, the place kept between visits, keys, a phone's width, the print view; and a
hostile book whose every text tries to run code, running none."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from readers import Reader

from questfoundry.book.edition import Book
from questfoundry.testing.books import HOSTILE, branching_book, hostile_book

pytestmark = pytest.mark.browser

Open = Callable[..., Reader]
Write = Callable[..., str]


@pytest.mark.parametrize("javascript", [False, True], ids=["no-js", "js"])
def test_one_section_is_shown_at_a_time(book_file: Write, reader: Open, javascript: bool) -> None:
    tab = reader(book_file(branching_book(16)), javascript=javascript)
    assert tab.visible() == ["sec-s1"] and tab.title_page_shown()  # no address: the start
    seen = ["sec-s1"]
    while tab.choices():
        seen.append(tab.choose(len(tab.choices()) - 1))
        assert tab.visible() == [seen[-1]] and not tab.title_page_shown()
    assert len(seen) > 2 and tab.page.is_visible(f"#{seen[-1]} .ending")
    tab.page.click(f"#{seen[-1]} .ending a")  # start again
    tab.page.wait_for_function("location.hash === '#sec-s1'")
    assert tab.visible() == ["sec-s1"]


def test_following_first_choices_from_the_start_reaches_an_ending(
    book_file: Write, reader: Open
) -> None:
    book = branching_book(40)
    tab = reader(book_file(book))
    path = ["1"]
    while tab.choices():
        path.append(tab.choose(0).removeprefix("sec-s"))  # in these books, id s<n> is number n
        assert len(path) <= len(book.pages)
    (ending,) = tab.visible()
    assert tab.page.inner_text(f"#{ending} .ending").startswith("The end.")
    shown = tab.trail()
    assert len(path) > 12 and shown == ["… ", *path[-12:]]  # a long path: its last steps


def test_back_returns_by_the_page_and_by_the_browser(book_file: Write, reader: Open) -> None:
    tab = reader(book_file(branching_book(16)))
    assert tab.page.is_disabled("#back")
    first = tab.choose(0)
    second = tab.choose(0)
    assert tab.trail() == ["1", first[5:], second[5:]]
    tab.page.click("#back")
    tab.page.wait_for_function(f"location.hash === '#{first}'")
    assert tab.visible() == [first] and tab.trail() == ["1", first[5:]]
    focused = tab.page.evaluate("document.activeElement.closest('section').id")
    assert focused == first  # focus moved to the section now shown
    tab.page.go_back()
    tab.page.wait_for_function("location.hash === ''")
    assert tab.visible() == ["sec-s1"] and tab.trail() == ["1"]
    assert tab.page.is_disabled("#back")


def test_keys_choose_and_go_back(book_file: Write, reader: Open) -> None:
    tab = reader(book_file(branching_book(16)))
    second = tab.choices()[1]
    tab.page.keyboard.press("2")
    tab.page.wait_for_function(f"location.hash === '#{second}'")
    assert tab.visible() == [second]
    tab.page.keyboard.press("b")
    tab.page.wait_for_function("location.hash === ''")
    assert tab.visible() == ["sec-s1"]


def test_the_place_is_kept_on_reopening_for_that_book_only(book_file: Write, reader: Open) -> None:
    url = book_file(branching_book(16))
    tab = reader(url)
    tab.choose(0)
    place = tab.choose(1)
    trail = tab.trail()
    again = Reader(tab.page.context.new_page())  # same browser profile: same storage
    again.page.goto(url)
    again.page.wait_for_function(f"location.hash === '#{place}'")
    assert again.visible() == [place] and again.trail() == trail
    again.page.click("#back")  # a path from an earlier visit still goes back
    again.page.wait_for_function(f"location.hash === '#sec-{'s' + trail[1]}'")
    other = Reader(tab.page.context.new_page())
    other.page.goto(book_file(branching_book(16, title="Another Keep"), name="other.html"))
    assert other.visible() == ["sec-s1"] and other.trail() == ["1"]
    again.page.click("#restart")
    again.page.wait_for_function("location.hash === '#sec-s1'")
    assert again.trail() == ["1"]
    for extra in (again, other):
        assert extra.errors == []


@pytest.mark.parametrize("javascript", [False, True], ids=["no-js", "js"])
def test_a_phone_390_px_wide_never_scrolls_sideways(
    book_file: Write, reader: Open, javascript: bool
) -> None:
    for book in (branching_book(16), hostile_book()):
        tab = reader(book_file(book), javascript=javascript, width=390)
        for page in book.pages:
            tab.page.evaluate(f"location.hash = '#{page.anchor}'")
            width = tab.page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, (page.anchor, width)


def test_the_print_view_lists_every_section_in_order_with_turn_to(
    book_file: Write, reader: Open
) -> None:
    book = branching_book(16)
    tab = reader(book_file(book))
    tab.choose(0)
    tab.page.emulate_media(media="print")
    assert tab.visible() == [page.anchor for page in book.pages]
    assert not tab.page.is_visible("#controls")
    turn = book.pages[0].turns[0]
    assert tab.page.inner_text("#sec-s1 .choices li") == f"{turn.text} turn to {turn.number}"
    comma = "e => getComputedStyle(e, '::after').content"
    assert tab.page.eval_on_selector("#sec-s1 .choices .choice", comma) == '","'
    pdf = tab.page.pdf()
    assert pdf.startswith(b"%PDF")


def test_a_hostile_book_runs_nothing_it_carries(book_file: Write, reader: Open) -> None:
    book: Book = hostile_book()
    tab = reader(book_file(book))
    for page in book.pages:
        tab.page.evaluate(f"location.hash = '#{page.anchor}'")
        assert tab.visible() == [page.anchor]
    assert tab.page.title() == HOSTILE[0]  # the title as text, never retitled by a script
    assert tab.dialogs == []
    assert tab.page.evaluate("document.scripts.length") == 1
    live = tab.page.evaluate(
        "[...document.querySelectorAll('*')].filter(e => [...e.attributes]"
        ".some(a => a.name.startsWith('on') || a.value.trim().startsWith('javascript:'))).length"
    )
    assert live == 0
    assert tab.page.query_selector_all("svg, iframe, object, embed, form") == []
    shown = tab.page.inner_text("#sec-s1")
    assert "<script>" in shown and "onerror" in shown  # the reader sees the words, as words
