"""``questfoundry config validate|show|schema`` on valid configurations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from questfoundry.cli import cli
from questfoundry.config import load_schema
from questfoundry.registry import get_plugin_manager

SEED = Path(__file__).parent / "configs" / "seed.yml"
API_KEY = "sk-cli-test-never-printed"


def run(*args: str, env: dict[str, str | None] | None = None) -> Result:
    base: dict[str, str | None] = {"QUESTFOUNDRY_CONFIG": None, "QUESTFOUNDRY_DISABLE_PLUGINS": "*"}
    return CliRunner().invoke(cli, list(args), env={**base, **(env or {})})


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose config reads its API key from the environment."""
    folder = tmp_path / ".questfoundry"
    folder.mkdir()
    (folder / "config.yml").write_text(
        "providers:\n  text:\n    acme:\n      api_key: ${MY_API_KEY}\n"
        "      organization: ${ORG_SECRET}\n      model: acme-1\n"
        "      base_url: https://:pw-in-url@acme.example/v1\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    return folder / "config.yml"


def test_validate_accepts_a_file_naming_only_installed_backends(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(
        "caching:\n  backend: memory\n  max_entries: ${ENTRIES:-100}\n"
        "state:\n  backend: file\nretry:\n  max_retries: 5\n"
    )
    result = run("config", "validate", str(path))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == f"OK: {path} is valid"


def test_validate_reports_a_provider_that_is_not_installed(project: Path) -> None:
    result = run("config", "validate", env={"MY_API_KEY": API_KEY, "ORG_SECRET": "o"})
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: providers.text.acme: provider 'acme' is not installed")
    assert API_KEY not in result.output


def test_validate_accepts_an_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "config.yml"
    empty.write_text("")
    result = run("config", "validate", str(empty))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("OK: ")


def test_validate_accepts_the_seed_example_where_its_plugins_are_installed() -> None:
    manager = get_plugin_manager()
    needed = {("provider", "openai"), ("provider", "acme"), ("cache backend", "file")}
    missing = [name for kind, name in needed if name not in manager.backends(kind)]
    if missing:
        pytest.skip(f"plugins not installed here: {', '.join(sorted(missing))}")
    result = CliRunner().invoke(
        cli,
        ["config", "validate", str(SEED)],
        env={"OPENAI_API_KEY": API_KEY, "QUESTFOUNDRY_CONFIG": None},
    )
    assert result.exit_code == 0, result.stderr


def test_show_redacts_secrets_from_env_keys_and_urls(project: Path) -> None:
    result = run("config", "show", env={"MY_API_KEY": API_KEY, "ORG_SECRET": "org-hidden"})
    assert result.exit_code == 0, result.stderr
    for secret in (API_KEY, "org-hidden", "pw-in-url"):
        assert secret not in result.output
    assert "acme-1" in result.stdout
    assert "https://:***@acme.example/v1" in result.stdout


def test_show_json_redacts_secrets(project: Path) -> None:
    result = run("config", "show", "--json", env={"MY_API_KEY": API_KEY, "ORG_SECRET": "x"})
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["providers"]["text"]["acme"] == {
        "api_key": "***",
        "organization": "***",
        "model": "acme-1",
        "base_url": "https://:***@acme.example/v1",
    }


def test_show_works_with_a_variable_unset_and_says_so_with_sources(project: Path) -> None:
    result = run("config", "show", "--sources", env={"MY_API_KEY": None, "ORG_SECRET": "x"})
    assert result.exit_code == 0, result.stderr
    assert "api_key: '***'  # ${MY_API_KEY} (not set)" in result.stdout


def test_validate_reports_a_missing_variable_on_one_line(project: Path) -> None:
    result = run("config", "validate", env={"MY_API_KEY": None, "ORG_SECRET": "x"})
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"Error: providers.text.acme.api_key: environment variable MY_API_KEY is not set "
        f"(in {project})"
    ]


def test_show_without_a_file_prints_the_defaults_in_effect_and_their_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("config", "show", "--sources")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == "# no config file found; defaults apply"
    assert "  backend: memory  # built-in default" in result.stdout
    assert "  max_entries: 10000  # built-in default" in result.stdout
    assert "{}" not in result.stdout


def test_show_sources_name_the_layer_that_set_each_role_value(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(
        "providers:\n  text:\n    default: acme\n    acme:\n      model: a-1\n"
        "      temperature: 0.3\nroles:\n  scene_smith:\n    model: a-2\n"
    )
    result = run("--config", str(path), "config", "show", "--sources", "--json")
    assert result.exit_code == 0, result.stderr
    sources = json.loads(result.stdout)["sources"]
    assert sources["roles.scene_smith.provider"] == "providers.text.default"
    assert sources["roles.scene_smith.model"] == "roles.scene_smith"
    assert sources["roles.scene_smith.temperature"] == "providers.text.acme"
    assert sources["roles.scene_smith.kind"] == "role catalogue"
    assert sources["retry.max_retries"] == "built-in default"
    assert sources["providers.text.acme.model"] == "config.yml"


def test_schema_prints_the_shipped_schema_as_json() -> None:
    result = run("config", "schema")
    assert result.exit_code == 0, result.stderr
    builtins_only = get_plugin_manager(env={"QUESTFOUNDRY_DISABLE_PLUGINS": "*"})
    assert json.loads(result.stdout) == load_schema(builtins_only)


def test_schema_includes_the_settings_of_installed_plugins() -> None:
    result = run("config", "schema", env={"QUESTFOUNDRY_DISABLE_PLUGINS": None})
    schema = json.loads(result.stdout)
    if "file" not in get_plugin_manager().backends("cache backend"):
        pytest.skip("questfoundry-cache-file is not installed here")
    file_settings = schema["$defs"]["backend_settings"]["cache_backend"]["file"]
    assert set(file_settings["properties"]) == {"cache_dir", "max_cache_size_mb", "eviction_policy"}
