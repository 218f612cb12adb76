"""The docs follow the code: every module, file and folder a page names exists.

Read in README.md, docs/*.md and every plugin's README: dotted names in backticks
(``questfoundry.kit.RedisSettings``) must import, paths in backticks (``gateway/pipeline.py``,
``plugins/<distribution>/``) must be found, the imports of every Python example must resolve, and
every relative link must lead to a file. A page that still names a module after it moved fails
here, naming the page and the name.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from importlib import import_module
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: where a path in backticks may start, besides the page's own folder
BASES = (ROOT, ROOT / "core" / "src" / "questfoundry", ROOT / "core" / "src", ROOT / "plugins/*")
#: a backticked path without ``.py`` is checked only when it starts in one of these
FOLDERS = {"benchmarks", "core", "docs", "plugins", "schemas", "tests", "tools"}


def pages() -> list[Path]:
    found = [ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("plugins/*/README.md")]
    return sorted(found)


@cache
def text(page: Path) -> str:
    return page.read_text(encoding="utf-8")


def spans(page: Path) -> list[str]:
    """What the page writes in single backticks, outside its code blocks."""
    prose = re.sub(r"^(`{3,}).*?^\1", "", text(page), flags=re.MULTILINE | re.DOTALL)
    return re.findall(r"`([^`\n]+)`", prose)


def ours(dotted: str) -> bool:
    """A name of the core (``questfoundry.…``) or of one of this repository's plugin packages;
    not a package a page only imagines (``questfoundry_cache_sqlite`` of the worked example)."""
    top = dotted.split(".", maxsplit=1)[0]
    return dotted.startswith("questfoundry.") or any(ROOT.glob(f"plugins/*/src/{top}"))


def dotted_names(page: Path) -> set[str]:
    """Names of modules and what is in them, in backticks (a call's arguments and a plural's
    ``s`` left off); a logger's name (```questfoundry.cache.file` logger``) is not one."""
    prose = re.sub(r"^(`{3,}).*?^\1", "", text(page), flags=re.MULTILINE | re.DOTALL)
    found = re.findall(r"`(questfoundry\w*(?:\.\w+)*)[^`<\n]*`(?! logger)", prose)
    return {name for name in found if ours(name)}


def paths(page: Path) -> set[str]:
    """Files and folders named in backticks: anything ending in ``.py`` with a folder in it, and
    anything with a slash that starts in one of :data:`FOLDERS`."""
    named = set()
    for span in spans(page):
        if not re.fullmatch(r"[\w.<>/-]+", span) or "/" not in span or "://" in span:
            continue
        if span.endswith(".py") or span.split("/")[0] in FOLDERS:
            named.add(span)
    return named


def exists(page: Path, path: str) -> bool:
    """``path`` (``<placeholder>`` parts match any name) found from the page or a base."""
    pattern = re.sub(r"<[^>]+>", "*", path).rstrip("/")
    for base in (page.parent, *BASES):
        for start in (base,) if "*" not in str(base) else ROOT.glob(str(base.relative_to(ROOT))):
            if any(start.glob(pattern)):
                return True
    return False


def resolves(dotted: str) -> bool:
    """The longest importable module prefix of ``dotted``, the rest found as attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: object = import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(target, attribute):
                return False
            target = getattr(target, attribute)
        return True
    return False


def example_imports(page: Path) -> set[str]:
    """``module.name`` for every ``from questfoundry… import name`` in the page's Python blocks."""
    blocks = re.findall(r"^```python[^\n]*\n(.*?)^```", text(page), flags=re.MULTILINE | re.DOTALL)
    names = set()
    for block in blocks:
        try:
            tree = ast.parse(block)
        except SyntaxError:  # an abridged fragment: its names are checked in backticks, if named
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names |= {f"{node.module}.{alias.name}" for alias in node.names}
            elif isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
    return {name for name in names if ours(name)}


def links(page: Path) -> set[str]:
    """Relative link targets of the page, without their ``#anchor``."""
    targets = re.findall(r"\]\(([^)\s]+)\)", text(page))
    return {t.split("#")[0] for t in targets if not re.match(r"[a-z]+:|#", t)} - {""}


PAGES = pages()
IDS = [page.relative_to(ROOT).as_posix() for page in PAGES]


def test_there_are_pages_and_they_name_modules() -> None:
    assert {"README.md", "docs/architecture.md", "docs/plugins.md"} <= set(IDS)
    assert "questfoundry.kit.RedisSettings" in dotted_names(ROOT / "docs" / "architecture.md")
    assert "questfoundry.kit.Backend" in example_imports(ROOT / "docs" / "plugins.md")


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_every_module_a_page_names_imports(page: Path) -> None:
    names = dotted_names(page) | example_imports(page)
    assert sorted(name for name in names if not resolves(name)) == []


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_every_path_a_page_names_exists(page: Path) -> None:
    assert sorted(path for path in paths(page) if not exists(page, path)) == []


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_every_relative_link_leads_to_a_file(page: Path) -> None:
    assert sorted(t for t in links(page) if not (page.parent / t).exists()) == []


def test_a_moved_module_or_file_is_caught(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "The `questfoundry.interfaces.Provider` protocol, in `core/src/questfoundry/plugins.py`;"
        " `questfoundry.kit.Provider` and `gateway/pipeline.py` are real, and so is the"
        " `questfoundry.nothing` logger. [gone](nowhere.md)\n"
        "```python\nfrom questfoundry.kit import Provider, NoSuchName\n```\n",
        encoding="utf-8",
    )
    unresolved = sorted(n for n in dotted_names(page) | example_imports(page) if not resolves(n))
    assert unresolved == ["questfoundry.interfaces.Provider", "questfoundry.kit.NoSuchName"]
    assert [p for p in sorted(paths(page)) if not exists(page, p)] == [
        "core/src/questfoundry/plugins.py"
    ]
    assert links(page) == {"nowhere.md"}
