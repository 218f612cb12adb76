"""What every plugin distribution of the repository owes the rest: it imports QuestFoundry only
through ``questfoundry.kit`` (as the built-ins do), and it runs the core's standard plugin suite
in its own tests, as plugins/_template tells third parties to.

Imports are read with :mod:`ast`, so those inside functions and under ``if TYPE_CHECKING:``
count too: import-linter (``tox -e lint``) holds the layers, this holds the exact surface.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from textwrap import dedent

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "core" / "src" / "questfoundry"
KIT = "questfoundry.kit"


def distributions() -> list[Path]:
    return sorted(
        p for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").is_file()
    )  # the template included: it is what a new plugin starts from


def imported(source: str) -> Iterator[tuple[int, str, int]]:
    """``(line, module, level)`` of every import in ``source``, at any depth; ``from a import b``
    names ``a.b`` when ``a`` is a package root, so ``from questfoundry import x`` is seen."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name, 0) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 0 and "." not in module:
                yield from ((node.lineno, f"{module}.{a.name}", 0) for a in node.names)
            else:
                yield node.lineno, module, node.level


def strays(source: str, allowed: tuple[str, ...]) -> list[str]:
    """QuestFoundry modules ``source`` imports outside ``allowed`` (each allowed module and what
    lies below it): ``questfoundry`` and every ``questfoundry_*`` plugin package count."""
    found = []
    for line, module, level in imported(source):
        ours = module.split(".")[0] == "questfoundry" or module.startswith("questfoundry_")
        inside = any(module == name or module.startswith(name + ".") for name in allowed)
        if level == 0 and ours and not inside:
            found.append(f"line {line}: {module}")
    return found


def test_the_check_sees_imports_inside_functions_and_under_type_checking() -> None:
    source = dedent(
        """
        from typing import TYPE_CHECKING
        from questfoundry.kit import Backend
        from questfoundry import kit
        import redis
        from . import backend

        if TYPE_CHECKING:
            from questfoundry.contracts.records import Usage

        def make():
            from questfoundry.registry import get_plugin_manager
            import questfoundry_other_plugin.cache
            from questfoundry import Runtime
        """
    )
    assert strays(source, (KIT, "questfoundry_mine")) == [
        "line 9: questfoundry.contracts.records",
        "line 12: questfoundry.registry",
        "line 13: questfoundry_other_plugin.cache",
        "line 14: questfoundry.Runtime",
    ]


def test_every_plugin_imports_questfoundry_only_through_the_kit() -> None:
    found = []
    for dist in distributions():
        for path in sorted((dist / "src").rglob("*.py")):
            own = path.relative_to(dist / "src").parts[0]
            for stray in strays(path.read_text(encoding="utf-8"), (KIT, own)):
                found.append(f"{path.relative_to(ROOT)} {stray}")
    assert found == []


@pytest.mark.slow
def test_the_built_ins_import_only_the_kit_and_each_other() -> None:
    found = []
    for path in sorted((CORE / "builtins").rglob("*.py")):
        for stray in strays(path.read_text(encoding="utf-8"), (KIT, "questfoundry.builtins")):
            found.append(f"{path.relative_to(ROOT)} {stray}")
    assert found == []


def suites(dist: Path) -> set[str]:
    """The distributions named by the ``PluginSuite`` classes of ``dist``'s tests."""
    named = set()
    for path in (dist / "tests").glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            bases = [ast.unparse(base) for base in getattr(node, "bases", ())]
            if isinstance(node, ast.ClassDef) and "PluginSuite" in bases:
                named |= {
                    statement.value.value
                    for statement in node.body
                    if isinstance(statement, ast.Assign)
                    and [ast.unparse(t) for t in statement.targets] == ["distribution"]
                    and isinstance(statement.value, ast.Constant)
                }
    return named


@pytest.mark.slow
def test_every_plugin_runs_the_standard_plugin_suite_in_its_own_tests() -> None:
    missing = {
        dist.name: suites(dist)
        for dist in distributions()
        if dist.name != "_template" and suites(dist) != {dist.name}
    }
    assert missing == {}
