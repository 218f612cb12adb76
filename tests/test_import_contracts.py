"""The import contracts (pyproject.toml, checked by ``tox -e lint``) cover every package there is:
a plugin left out of them would escape the rule that plugins see only the kit."""

from __future__ import annotations

import ast
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent


def contracts() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)["tool"]["importlinter"]


def plugin_packages() -> set[str]:
    return {
        package.name
        for package in ROOT.glob("plugins/*/src/*")
        if (package / "__init__.py").exists() and package.parent.parent.name != "_template"
    }


def test_every_plugin_package_is_a_root_of_the_contracts() -> None:
    roots = set(contracts()["root_packages"])
    assert roots == {"questfoundry", *plugin_packages()}


def test_every_plugin_package_is_held_to_the_kit_and_to_no_circles() -> None:
    by_name = {contract["name"]: contract for contract in contracts()["contracts"]}
    assert set(by_name["Plugins see the kit only"]["source_modules"]) == plugin_packages()
    assert set(by_name["No circles among siblings, at any depth"]["ancestors"]) == {
        "questfoundry",
        *plugin_packages(),
    }


def test_every_top_level_package_of_the_core_has_a_place_in_the_layers() -> None:
    layers = contracts()["contracts"][0]["layers"]
    placed = {name.strip() for layer in layers for name in layer.split("|")}
    core = ROOT / "core" / "src" / "questfoundry"
    packages = {f"questfoundry.{p.name}" for p in core.iterdir() if (p / "__init__.py").exists()}
    modules = {f"questfoundry.{p.stem}" for p in core.glob("*.py") if p.stem != "__init__"}
    unplaced = (packages | modules) - placed
    # the built-ins sit beside the layers (held to the kit by contracts of their own); lazy is a
    # helper the package roots use
    assert unplaced == {"questfoundry.builtins", "questfoundry.lazy"}


def plugin_imports() -> list[tuple[str, str]]:
    """Every import of ``questfoundry[.…]`` in the plugins' files (sources, tests, benchmarks),
    ``import`` or ``from … import``: where it is, and the module it names."""
    found = []
    for path in ROOT.glob("plugins/*/**/*.py"):
        if ".tox" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            found += [(where, m) for m in modules if m.split(".")[0] == "questfoundry"]
    return found


def test_plugin_tests_and_benchmarks_reach_the_contracts_through_the_kit() -> None:
    # the kit re-exports every contract; a plugin's tests are the example third parties copy
    reaching = [
        where for where, module in plugin_imports() if module.startswith("questfoundry.contracts")
    ]
    assert reaching == []


def test_plugin_files_reach_the_core_through_the_kit_and_testing() -> None:
    # a plugin's sources import the kit; its tests the kit, questfoundry.testing (whose app
    # module names the application they drive the plugin through) and the command line, the
    # console script's module: nothing a release may move
    allowed = ("questfoundry.kit", "questfoundry.testing", "questfoundry.cli")
    reaching = [
        f"{where} {module}" for where, module in plugin_imports() if not module.startswith(allowed)
    ]
    assert reaching == []
