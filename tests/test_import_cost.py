"""What importing QuestFoundry and starting its CLI pull in: no backend library, no heavy helper.

Each check runs in a fresh interpreter and reads that interpreter's ``sys.modules`` at the end, so
nothing this test process already imported can hide a regression. Speed itself is measured by the
benchmarks, not asserted here: the module lists are what keep start-up fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from questfoundry.registry import ENTRY_POINT_GROUP

#: third-party libraries of the backend plugins: only building a backend may import them
BACKEND_LIBRARIES = ("openai", "redis", "diskcache", "google", "ollama", "genai_prices")

#: the core's own heavier dependencies: only the commands that use them may import them
CORE_HELPERS = ("jsonschema", "yaml", "rich")

# Runs the given code, then writes the interpreter's module names to the file named by argv[1].
PROBE = """
import json, sys
out = sys.argv[1]
sys.argv = ["questfoundry", *sys.argv[2:]]
try:
    exec({code!r})
except SystemExit:
    pass
with open(out, "w", encoding="utf-8") as f:
    json.dump(sorted(sys.modules), f)
"""


def loaded_modules(tmp_path: Path, code: str, *argv: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code`` with ``argv``."""
    out = tmp_path / "modules.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUESTFOUNDRY_")}
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(code=code), str(out), *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    modules: list[str] = json.loads(out.read_text(encoding="utf-8"))
    return set(modules)


def imported(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    """Those of ``packages`` present in ``modules``, as a package or through any submodule."""
    return [p for p in packages if p in modules or any(m.startswith(f"{p}.") for m in modules)]


def test_importing_questfoundry_imports_no_backend_library_or_heavy_helper(tmp_path: Path) -> None:
    modules = loaded_modules(tmp_path, "import questfoundry")
    assert "questfoundry" in modules
    assert imported(modules, BACKEND_LIBRARIES + CORE_HELPERS) == []


@pytest.mark.slow
def test_questfoundry_help_imports_no_backend_library_or_heavy_helper(tmp_path: Path) -> None:
    code = "import runpy; runpy.run_module('questfoundry', run_name='__main__')"
    modules = loaded_modules(tmp_path, code, "--help")
    assert "questfoundry.cli" in modules
    assert "click" in modules
    assert imported(modules, BACKEND_LIBRARIES + CORE_HELPERS) == []


def test_a_subcommands_help_imports_no_backend_library_or_heavy_helper(tmp_path: Path) -> None:
    code = "from questfoundry.cli import main; main()"
    modules = loaded_modules(tmp_path, code, "config", "validate", "--help")
    assert "questfoundry.cli" in modules
    assert imported(modules, BACKEND_LIBRARIES + CORE_HELPERS) == []


def installed_plugin_modules() -> dict[str, str]:
    """The module of every installed entry point of the group ``questfoundry``, by its name."""
    return {
        ep.name: ep.value.split(":")[0].strip()
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)
    }


@pytest.mark.slow
def test_listing_every_plugin_imports_no_backend_library(tmp_path: Path) -> None:
    plugin_modules = installed_plugin_modules()
    if not plugin_modules:
        pytest.skip("no plugin distribution is installed")
    code = "from questfoundry.cli import main; main()"
    modules = loaded_modules(tmp_path, code, "plugins", "--json")
    # The listing really loaded every plugin module; otherwise the check below would prove nothing.
    assert {name: mod for name, mod in plugin_modules.items() if mod not in modules} == {}
    assert imported(modules, BACKEND_LIBRARIES) == []
