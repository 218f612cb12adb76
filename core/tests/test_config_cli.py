"""``questfoundry config validate|show|schema`` on valid configurations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from questfoundry.cli import cli
from questfoundry.config import load_schema
from questfoundry.plugins import get_plugin_manager

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
        "providers:\n  text:\n    ollama:\n      api_key: ${MY_API_KEY}\n"
        "      organization: ${ORG_SECRET}\n      model: llama3\n"
        "state:\n  redis_url: redis://:pw-in-url@localhost:6379/0\n",
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
    assert result.stderr.startswith(
        "Error: providers.text.ollama: provider 'ollama' is not installed"
    )
    assert API_KEY not in result.output


def test_validate_accepts_an_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "config.yml"
    empty.write_text("")
    result = run("config", "validate", str(empty))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("OK: ")


def test_validate_accepts_the_seed_example_where_its_plugins_are_installed() -> None:
    manager = get_plugin_manager()
    needed = {("provider", "openai"), ("provider", "ollama"), ("cache backend", "file")}
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
    assert "llama3" in result.stdout
    assert "redis://:***@localhost:6379/0" in result.stdout


def test_show_json_redacts_secrets(project: Path) -> None:
    result = run("config", "show", "--json", env={"MY_API_KEY": API_KEY, "ORG_SECRET": "x"})
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["providers"]["text"]["ollama"] == {
        "api_key": "***",
        "organization": "***",
        "model": "llama3",
    }


def test_show_reports_a_missing_variable_on_one_line(project: Path) -> None:
    result = run("config", "show", env={"MY_API_KEY": None, "ORG_SECRET": "x"})
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"Error: providers.text.ollama.api_key: environment variable MY_API_KEY is not set "
        f"(in {project})"
    ]


def test_schema_prints_the_shipped_schema_as_json() -> None:
    result = run("config", "schema")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == load_schema()
