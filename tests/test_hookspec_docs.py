"""The hooks are documented and tested, and the plugin guide agrees with the code.

``questfoundry.contracts.hookspecs`` is the reference a plugin author implements from, and
``docs/plugins.md`` retells it. These tests fail, naming the hook, when a hook lacks its contract
in the docstring, is missing from the guide or shown there with other parameters, or is exercised
by no test; and when the guide's worked example stops being a working plugin.
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from collections.abc import Callable
from functools import cache
from importlib import import_module
from pathlib import Path
from typing import Any

import pluggy
import pytest

from questfoundry.contracts import hookspecs
from questfoundry.registry import BACKEND_HOOKS, ENTRY_POINT_GROUP

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "plugins.md"

#: the hooks DESIGN.md promises; the module may add more, never fewer
DESIGNED_HOOKS = {
    "cache_backends",
    "limiter_strategies",
    "cost_models",
    "state_stores",
    "providers",
    "resolve_role_provider",
    "roles",
    "loops",
    "state_migrations",
    "call_completed",
}


def hook_specs() -> dict[str, Callable[..., Any]]:
    """Every hook specification in :mod:`questfoundry.contracts.hookspecs`, by name."""
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    return {
        name: getattr(hookspecs, name)
        for name in dir(hookspecs)
        if manager.parse_hookspec_opts(hookspecs, name) is not None
    }


HOOKS = sorted(hook_specs())


def parameters(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


@cache
def guide() -> str:
    return GUIDE.read_text(encoding="utf-8")


def guide_hook_headings() -> dict[str, list[str]]:
    """The hooks the guide's "The hooks" section has a heading for, with the parameters shown."""
    section = guide().split("\n## The hooks\n", 1)[-1].split("\n## ", 1)[0]
    found: dict[str, list[str]] = {}
    for name, params in re.findall(r"^###\s+`(\w+)\(([^)]*)\)`", section, flags=re.MULTILINE):
        found[name] = [p.strip() for p in params.split(",") if p.strip()]
    return found


@cache
def repo_test_sources() -> dict[Path, str]:
    """Every test module of the repository except this one."""
    folders = [REPO / "core" / "tests", REPO / "tests", *(REPO / "plugins").glob("*/tests")]
    return {
        path: path.read_text(encoding="utf-8")
        for folder in folders
        for path in sorted(folder.rglob("test_*.py"))
        if path.resolve() != Path(__file__).resolve()
    }


def exercise_patterns(hook: str) -> list[str]:
    """What in a test shows it drives ``hook``: a test plugin implementing it, a direct call,
    or (for backend hooks) the plugin manager asked for that kind of backend by its label."""
    patterns = [rf"\bdef {hook}\(", rf"\.hook\.{hook}\b"]
    for kind, hook_name in BACKEND_HOOKS.items():
        if hook_name == hook:
            patterns.append(rf"\.(get|create|backends)\(\s*[\"']{kind}[\"']")
    return patterns


# ----------------------------------------------------------------------------- the hookspecs


def test_every_designed_hook_is_specified() -> None:
    assert DESIGNED_HOOKS - set(HOOKS) == set()


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_docstring_states_what_it_is_for_and_its_contract(hook: str) -> None:
    spec = hook_specs()[hook]
    doc = inspect.getdoc(spec) or ""
    assert doc.split("\n", 1)[0].strip(), f"{hook} has no docstring"
    undocumented = [p for p in parameters(spec) if f":param {p}:" not in doc]
    assert undocumented == [], f"{hook} does not document the parameter(s) {undocumented}"
    returns_none = inspect.signature(spec).return_annotation in (None, "None")
    if not returns_none:
        assert ":returns:" in doc, f"{hook} does not say what it must return (:returns:)"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_in_the_plugin_guide_with_its_parameters(hook: str) -> None:
    headings = guide_hook_headings()
    assert hook in headings, f"docs/plugins.md has no '### `{hook}(...)`' heading under 'The hooks'"
    assert headings[hook] == parameters(hook_specs()[hook]), (
        f"docs/plugins.md shows {hook}({', '.join(headings[hook])}), "
        f"the hookspec is {hook}({', '.join(parameters(hook_specs()[hook]))})"
    )


def test_the_plugin_guide_documents_no_hook_that_does_not_exist() -> None:
    assert set(guide_hook_headings()) - set(HOOKS) == set()


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_exercised_by_a_test(hook: str) -> None:
    patterns = exercise_patterns(hook)
    users = [
        path.relative_to(REPO).as_posix()
        for path, text in repo_test_sources().items()
        if any(re.search(pattern, text) for pattern in patterns)
    ]
    assert users, f"no test exercises the hook {hook} (looked for {patterns})"


# ----------------------------------------------------------------------------- the guide


def test_the_guide_names_the_entry_point_group_and_the_selection_variables() -> None:
    text = guide()
    assert f"[project.entry-points.{ENTRY_POINT_GROUP}]" in text
    plugins_doc = inspect.getdoc(import_module("questfoundry.registry.manager")) or ""
    for variable in ("QUESTFOUNDRY_DISABLE_PLUGINS", "QUESTFOUNDRY_LOAD_PLUGINS"):
        assert variable in plugins_doc  # the variable the code reads…
        assert variable in text  # …is the one the guide tells users about


# ----------------------------------------------------------------------------- the worked example

EXAMPLE = "questfoundry-cache-sqlite"


def example_files() -> dict[str, str]:
    """The guide's worked example: every fenced block titled ``questfoundry-cache-sqlite/...``."""
    blocks = re.findall(
        r'^(`{3,})\w+ title="([^"]+)"\n(.*?)\n\1$', guide(), flags=re.MULTILINE | re.DOTALL
    )
    return {title: body + "\n" for _, title, body in blocks if title.startswith(f"{EXAMPLE}/")}


def read_pyproject(text: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        tomllib = pytest.importorskip("tomli")
    data: dict[str, Any] = tomllib.loads(text)
    return data


def install_as_dist_info(project: Path) -> Path:
    """Make ``project/src`` an import path holding the package and its ``*.dist-info``."""
    meta = read_pyproject((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    src = project / "src"
    info = src / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n",
        encoding="utf-8",
    )
    points = meta["entry-points"][ENTRY_POINT_GROUP]
    lines = [f"[{ENTRY_POINT_GROUP}]", *(f"{name} = {value}" for name, value in points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return src


def test_the_guides_worked_example_is_a_complete_plugin() -> None:
    files = example_files()
    expected = {
        f"{EXAMPLE}/pyproject.toml",
        f"{EXAMPLE}/README.md",
        f"{EXAMPLE}/src/questfoundry_cache_sqlite/__init__.py",
        f"{EXAMPLE}/src/questfoundry_cache_sqlite/plugin.py",
        f"{EXAMPLE}/src/questfoundry_cache_sqlite/backend.py",
        f"{EXAMPLE}/tests/test_cache_sqlite.py",
    }
    assert set(files) == expected
    plugin = files[f"{EXAMPLE}/src/questfoundry_cache_sqlite/plugin.py"]
    assert "import sqlite3" not in plugin, "the plugin module must not import the library"


@pytest.mark.slow
def test_the_guides_worked_example_passes_its_own_tests(tmp_path: Path) -> None:
    for title, body in example_files().items():
        path = tmp_path / title
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")
    project = tmp_path / EXAMPLE
    src = install_as_dist_info(project)
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUESTFOUNDRY_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"\b[3-9]\d passed\b", result.stdout), result.stdout[-2000:]
