"""docs/configuration.md is generated from the schema and must match the generator's output."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from questfoundry.config import load_schema

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "configuration.md"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_config_docs", REPO / "tools" / "gen_config_docs.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configuration_docs_match_the_schema() -> None:
    expected = generator().render()
    assert DOCS.read_text(encoding="utf-8") == expected, (
        "docs/configuration.md is out of date: run `python tools/gen_config_docs.py`"
    )


def test_docs_have_a_table_for_every_section_and_a_row_for_every_key() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for name, section in load_schema()["properties"].items():
        assert f"### `{name}`" in text
        for key in section.get("properties", {}):
            assert f"| `{key}` |" in text, f"{name}.{key}"


def test_generator_check_mode_fails_when_the_docs_are_stale(tmp_path: Path) -> None:
    module = generator()
    target = tmp_path / "configuration.md"
    expected = module.render()
    module.outputs = lambda: {target: expected}  # type: ignore[attr-defined] # write nothing in the repo
    target.write_text("stale\n")
    assert module.main(["--check"]) == 1
    assert module.main([]) == 0
    assert module.main(["--check"]) == 0
    assert target.read_text(encoding="utf-8") == expected


def test_generated_readmes_and_known_plugins_are_up_to_date() -> None:
    stale = [
        str(path.relative_to(REPO))
        for path, text in generator().outputs().items()
        if path.read_text(encoding="utf-8") != text
    ]
    assert stale == [], "out of date: run `python tools/gen_config_docs.py`"


def test_each_plugin_readme_lists_every_setting_of_its_fragment() -> None:
    from questfoundry.registry import BACKEND_HOOKS, get_plugin_manager

    manager = get_plugin_manager(env={})
    for kind in BACKEND_HOOKS:
        for reg in manager.backends(kind).values():
            readme = REPO / "plugins" / reg.distribution / "README.md"
            if not readme.is_file() or set(reg.settings) == {"$ref"}:
                continue
            text = readme.read_text(encoding="utf-8")
            for key in reg.settings.get("properties", {}):
                assert f"| `{key}` |" in text, f"{reg.distribution} README lacks {key}"
                assert f"| `{key}` |" in DOCS.read_text(encoding="utf-8")
