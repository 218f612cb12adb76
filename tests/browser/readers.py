"""Real readers for the book's tests: the system's Chromium, driven by Playwright for Python.

No browser is ever downloaded (``playwright install`` is not used): Chromium comes from the
distribution (``apt-get install chromium``; ``QUESTFOUNDRY_CHROMIUM`` names another binary).
Without it the tests are skipped, saying why, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

#: Chromium's switches for a quiet headless run that talks to nobody
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def missing(what: str, how: str) -> None:
    """Skip, saying ``what`` is missing and ``how`` to install it; fail instead under CI, which
    installs it."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is missing, and CI must run the browser tests ({how})")
    pytest.skip(f"{what} is missing ({how})")


def chromium_path() -> str | None:
    """The Chromium to drive: ``QUESTFOUNDRY_CHROMIUM`` when set, else the system's."""
    named = os.environ.get("QUESTFOUNDRY_CHROMIUM")
    if named:
        return shutil.which(named)
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Reader:
    """A browser tab on a book file, failing the test on any console error or page error."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("dialog", self._dialog)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def visible(self) -> list[str]:
        """The ids of the sections on screen."""
        return self.page.eval_on_selector_all(
            ".story > section", "all => all.filter(s => s.checkVisibility()).map(s => s.id)"
        )

    def title_page_shown(self) -> bool:
        return self.page.eval_on_selector(".title-page", "e => e.checkVisibility()")

    def choices(self) -> list[str]:
        """The links of the choices of the section on screen, by target id."""
        (section,) = self.visible()
        return self.page.eval_on_selector_all(
            f"#{section} .choices a", "all => all.map(a => a.getAttribute('href').slice(1))"
        )

    def choose(self, index: int = 0) -> str:
        """Follow the ``index``-th choice of the section on screen; the id it leads to."""
        (section,) = self.visible()
        target = self.choices()[index]
        self.page.click(f"#{section} .choices li:nth-child({index + 1}) a")
        self.page.wait_for_function(f"location.hash === '#{target}'")
        return target

    def trail(self) -> list[str]:
        return self.page.eval_on_selector_all("#trail li", "all => all.map(li => li.textContent)")
