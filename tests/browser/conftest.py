"""Fixtures for the book in a real browser (see :mod:`readers`): one Chromium per session, a
tab per test that fails it on any console or page error, book files written for them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from readers import ARGS, Reader, chromium_path, missing

from questfoundry.book.edition import Book
from questfoundry.book.html import to_html

if TYPE_CHECKING:
    from playwright.sync_api import Browser


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("Playwright for Python", "pip install playwright")
    executable = chromium_path()
    if executable is None:
        missing("Chromium", "apt-get install chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def book_file(tmp_path: Path) -> Callable[[Book], str]:
    """Write a book's HTML into a file; its ``file://`` URL."""

    def write(book: Book, name: str = "book.html") -> str:
        path = tmp_path / name
        path.write_text(to_html(book), encoding="utf-8")
        return path.as_uri()

    return write


@pytest.fixture
def reader(browser: Browser) -> Iterator[Callable[..., Reader]]:
    """``reader(url, javascript=True, width=1000)``: a tab on ``url`` in a fresh context."""
    opened: list[Reader] = []

    def open_tab(url: str, *, javascript: bool = True, width: int = 1000) -> Reader:
        context = browser.new_context(
            java_script_enabled=javascript, viewport={"width": width, "height": 800}
        )
        tab = Reader(context.new_page())
        tab.page.goto(url)
        opened.append(tab)
        return tab

    yield open_tab
    for tab in opened:
        assert tab.errors == [], tab.errors
        tab.page.context.close()
