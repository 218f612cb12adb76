"""The EPUB as e-readers' own validator sees it: EPUBCheck finds no error and no warning.

EPUBCheck (``apt-get install epubcheck``; Java) takes seconds to start, so it runs here, in
``tox -e browser``, beside the other real readers; the quick suite checks the EPUB's structure.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from readers import missing

from questfoundry.book.epub import to_epub
from questfoundry.testing.books import hostile_book

pytestmark = pytest.mark.browser


def epubcheck() -> list[str]:
    """The command that runs EPUBCheck (Debian installs it as an executable jar)."""
    found = shutil.which("epubcheck")
    if found is None or shutil.which("java") is None:
        missing("EPUBCheck", "apt-get install epubcheck")
    assert found is not None
    is_jar = Path(found).read_bytes()[:2] == b"PK"
    return ["java", "-jar", found] if is_jar else [found]


def test_epubcheck_finds_nothing_wrong_with_a_hostile_book(tmp_path: Path) -> None:
    path = tmp_path / "book.epub"
    path.write_bytes(to_epub(hostile_book()))
    checked = subprocess.run(
        [*epubcheck(), str(path)], capture_output=True, text=True, timeout=240, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "No errors or warnings detected." in checked.stdout
