"""``questfoundry roles``: every role of the catalogue, its settings and their sources."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from questfoundry.builtins.roles import ROLES
from questfoundry.cli import cli

CONFIG = """\
providers:
  text:
    default: openai
    openai:
      model: gpt-4o
      temperature: 0.7
    ollama:
      model: llama3
roles:
  gatekeeper:
    provider: ollama
    temperature: 0.2
    max_tokens: 1000
"""


@pytest.fixture
def project(in_project: Callable[[str], Path]) -> Path:
    return in_project(CONFIG)


def rows(*args: str) -> dict[str, dict[str, Any]]:
    result = CliRunner().invoke(cli, ["roles", "--json", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return {row["role"]: row for row in json.loads(result.stdout)}


def test_every_role_with_its_settings_and_where_each_came_from(project: Path) -> None:
    found = rows()
    assert list(found) == [spec.name for spec in ROLES]
    gatekeeper = found["gatekeeper"]
    assert {
        k: gatekeeper[k] for k in ("kind", "provider", "model", "temperature", "max_tokens")
    } == {
        "kind": "text",
        "provider": "ollama",
        "model": "llama3",
        "temperature": 0.2,
        "max_tokens": 1000,
    }
    assert gatekeeper["sources"] == {
        "provider": "roles.gatekeeper",
        "model": "providers.text.ollama",
        "kind": "role catalogue",
        "temperature": "roles.gatekeeper",
        "max_tokens": "roles.gatekeeper",
    }
    smith = found["scene_smith"]
    assert (smith["provider"], smith["model"], smith["temperature"]) == ("openai", "gpt-4o", 0.7)
    assert smith["max_tokens"] is None and "max_tokens" not in smith["sources"]
    assert smith["sources"]["temperature"] == "providers.text.openai"
    assert smith["error"] is None and smith["description"]


def test_a_role_that_cannot_resolve_is_listed_with_the_reason(project: Path) -> None:
    illustrator = rows()["illustrator"]  # an image role; no image provider is configured
    assert illustrator["kind"] == "image" and illustrator["provider"] is None
    assert "set roles.illustrator.provider or providers.image.default" in illustrator["error"]


def test_a_role_on_a_provider_that_is_not_installed_says_so(project: Path) -> None:
    args = ["--set", "roles.gatekeeper.provider=olama", "--set", "roles.gatekeeper.model=m"]
    result = CliRunner().invoke(cli, ["roles", "--json", *args])
    assert result.exit_code == 1  # a provider nothing provides is a mistake: exit status 1
    row = {row["role"]: row for row in json.loads(result.stdout)}["gatekeeper"]
    assert (
        row["provider"] == "olama"
        and row["sources"]["provider"] == "--set roles.gatekeeper.provider"
    )
    assert "provider 'olama' is not installed" in row["error"]
    assert "did you mean 'ollama'" in row["error"]


def test_without_a_roles_section_every_role_takes_the_provider_default(project: Path) -> None:
    project.write_text(CONFIG.split("roles:", maxsplit=1)[0])
    for name, row in rows().items():
        if row["kind"] == "text":
            assert (row["provider"], row["model"]) == ("openai", "gpt-4o"), name
            assert row["sources"]["provider"] == "providers.text.default"


def test_with_no_config_at_all_each_role_says_what_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QUESTFOUNDRY_CONFIG", raising=False)
    assert all(row["error"] and row["provider"] is None for row in rows().values())


def test_the_table_is_not_cut_when_output_is_not_a_terminal(project: Path) -> None:
    result = CliRunner().invoke(cli, ["roles"], catch_exceptions=False)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    reason = "no provider for role 'illustrator': set roles.illustrator.provider or "
    assert any(reason in line for line in lines)  # a long reason, whole on one line
    assert any("temperature: roles.gatekeeper" in line for line in lines)
