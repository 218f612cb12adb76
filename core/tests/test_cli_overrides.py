"""``--set KEY=VALUE``: laid over config.yml before validation, labelled ``--set`` in sources;
``--set`` and ``--debug`` after the subcommand too."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from questfoundry.cli import cli
from questfoundry.cli.app import hoist_global_options
from questfoundry.config import load_config
from questfoundry.contracts.errors import ConfigError

CONFIG = """\
project:
  name: overrides-test
providers:
  text:
    default: openai
    openai:
      api_key: ${QF_TEST_UNSET_KEY}
      model: gpt-4o
    ollama:
      model: llama3
roles:
  gatekeeper:
    model: gpt-4o
    temperature: 0.2
"""


@pytest.fixture
def project(in_project: Callable[[str], Path]) -> Path:
    return in_project(CONFIG)


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def roles(*args: str) -> dict[str, dict[str, Any]]:
    result = run(*args)
    assert result.exit_code == 0, result.output
    return {row["role"]: row for row in json.loads(result.stdout)}


def test_set_before_or_after_the_subcommand_overrides_a_role_and_says_so(project: Path) -> None:
    for args in (
        ("--set", "roles.gatekeeper.model=gpt-4o-mini", "roles", "--json"),
        ("roles", "--json", "--set", "roles.gatekeeper.model=gpt-4o-mini"),
        ("roles", "--set=roles.gatekeeper.model=gpt-4o-mini", "--json"),
    ):
        gatekeeper = roles(*args)["gatekeeper"]
        assert gatekeeper["model"] == "gpt-4o-mini"
        assert gatekeeper["sources"]["model"] == "--set roles.gatekeeper.model"
        assert gatekeeper["sources"]["temperature"] == "roles.gatekeeper"  # untouched


def test_set_the_default_provider_moves_every_role_without_its_own(project: Path) -> None:
    rows = roles("--set", "providers.text.default=ollama", "roles", "--json")
    assert (rows["plotwright"]["provider"], rows["plotwright"]["model"]) == ("ollama", "llama3")
    assert rows["plotwright"]["sources"]["provider"] == "--set providers.text.default"
    assert rows["plotwright"]["sources"]["model"] == "providers.text.ollama"


def test_values_are_yaml_scalars_and_the_last_set_of_a_key_wins(project: Path) -> None:
    rows = roles(
        "--set", "roles.gatekeeper.max_tokens=500",
        "--set", "roles.gatekeeper.temperature=0.5",
        "roles", "--json",
        "--set", "roles.gatekeeper.temperature=0.7",
    )  # fmt: skip
    assert rows["gatekeeper"]["max_tokens"] == 500  # an integer, not the text "500"
    assert rows["gatekeeper"]["temperature"] == 0.7


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            "roles.gatekeeper.temprature=0.5",
            "Error: roles.gatekeeper.temprature: unknown key; did you mean 'temperature'? "
            "(in --set)",
        ),
        (
            "roles.gatekeeper.temperature=3.5",
            "Error: roles.gatekeeper.temperature: 3.5 is greater than the maximum of 2 (in --set)",
        ),
        (
            "roles.gatekeeper.temperature=warm",
            "Error: roles.gatekeeper.temperature: expected a number",
        ),
        (
            "roles.gatekeper.model=x",
            "Error: roles.gatekeper: unknown role; did you mean 'gatekeeper'?",
        ),
        ("roles.gatekeeper.model", "Error: --set 'roles.gatekeeper.model': expected KEY=VALUE"),
        ("=x", "Error: --set '=x': expected KEY=VALUE"),
        ("roles..model=x", "Error: --set 'roles..model': a key is dotted names, none of them"),
        (
            "project.name.first=x",
            "Error: project.name: holds a value, not a section: --set project.name.first cannot",
        ),
        (
            "providers.text.openai.api_key=[sk-secret",
            "Error: --set providers.text.openai.api_key: the value is not valid YAML; quote it",
        ),
    ],
)
def test_a_bad_override_is_one_line_naming_its_key(project: Path, item: str, message: str) -> None:
    result = run("--set", item, "roles")
    assert result.exit_code == 1 and "sk-secret" not in result.output
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith(message[:60]), (
        result.stderr
    )


def test_a_problem_of_the_file_itself_still_names_the_file(project: Path) -> None:
    project.write_text(CONFIG + "caching:\n  ttl_secnds: 5\n")
    result = run("--set", "roles.gatekeeper.model=m", "roles")
    assert result.exit_code == 1 and f"(in {project})" in result.stderr


def test_set_works_without_any_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QUESTFOUNDRY_CONFIG", raising=False)
    rows = roles(
        "--set", "providers.text.default=ollama",
        "--set", "providers.text.ollama.model=llama3.2",
        "roles", "--json",
    )  # fmt: skip
    assert rows["scene_smith"]["model"] == "llama3.2"
    assert rows["scene_smith"]["sources"]["model"] == "--set providers.text.ollama.model"


def test_config_show_and_validate_see_the_overrides(project: Path) -> None:
    shown = run("config", "show", "--sources", "--json", "--set", "caching.ttl_seconds=60")
    data = json.loads(shown.stdout)
    assert data["config"]["caching"]["ttl_seconds"] == 60
    assert data["sources"]["caching.ttl_seconds"] == "--set"
    assert data["sources"]["project.name"] == "config.yml"
    text = run("config", "show", "--set", "caching.ttl_seconds=60").stdout
    assert text.splitlines()[0] == f"# {project}; --set: caching.ttl_seconds"
    bad = run("config", "validate", "--set", "caching.ttl_seconds=-1")
    assert bad.exit_code == 1 and "caching.ttl_seconds" in bad.stderr


def test_load_config_merges_overrides_into_a_copy(project: Path) -> None:
    overrides = {"roles.scene_smith.temperature": 0.9, "project.name": "other"}
    config = load_config(project, overrides=overrides)
    assert config.get("roles.scene_smith.temperature") == 0.9
    assert config.get("roles.gatekeeper.temperature") == 0.2  # the file's, kept
    assert config.namespace == "other"
    assert config.overridden == frozenset(overrides)
    assert load_config(project).get("roles.scene_smith") is None
    with pytest.raises(ConfigError, match=r"\(in --set\)"):
        load_config(project, overrides={"retry.max_attempts": "many"})


def test_debug_after_the_subcommand_shows_the_traceback(project: Path) -> None:
    project.write_text("caching:\n  ttl_secnds: 5\n")
    plain = run("config", "validate")
    debug = run("config", "validate", "--debug")
    assert plain.exit_code == debug.exit_code == 1
    assert "Traceback" not in plain.stderr and "Traceback" in debug.stderr


def test_hoisting_moves_only_global_options_and_stops_at_the_separator() -> None:
    args = ["ask", "--role", "x", "--debug", "--set", "a=1", "hi", "--", "--debug", "--set", "b"]
    assert hoist_global_options(args) == [
        "--debug", "--set", "a=1", "ask", "--role", "x", "hi", "--", "--debug", "--set", "b",
    ]  # fmt: skip
    assert hoist_global_options(["roles", "--set"]) == [
        "roles",
        "--set",
    ]  # click says it lacks a value


def test_a_key_given_by_set_is_never_shown(project: Path) -> None:
    key = "providers.text.openai.api_key=sk-set-secret-5d1e"
    shown = run("config", "show", "--set", key)
    bad = run("roles", "--set", key, "--set", "providers.text.openai.temperature=9")
    assert shown.exit_code == 0 and "api_key: '***'" in shown.stdout
    assert bad.exit_code == 1 and "providers.text.openai.temperature" in bad.stderr
    assert "sk-set-secret" not in shown.output + bad.output
