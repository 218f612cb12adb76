"""``questfoundry init``: a commented config.yml for what the machine has; it always validates.

Each branch is driven by its environment variables; the Ollama branch finds a real HTTP server,
:class:`~questfoundry.testing.fakes.FakeOllama`, through ``OLLAMA_HOST``.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from questfoundry.cli import cli
from questfoundry.cli.init import choose, missing, render, schema_uri
from questfoundry.config import load_config
from questfoundry.kit import Backend, ProviderSetup, hookimpl
from questfoundry.registry import get_plugin_manager
from questfoundry.testing.fakes import FakeOllama

SECRET = "sk-init-test-secret-81f3"


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    for name in ("QUESTFOUNDRY_CONFIG", "OPENAI_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{closed_port()}")  # no Ollama unless a test says
    yield tmp_path / ".questfoundry" / "config.yml"


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def init(*args: str) -> Any:
    return CliRunner().invoke(cli, ["init", *args], catch_exceptions=False)


def written(path: Path) -> tuple[str, dict[str, Any]]:
    """The file's text and its data; it validates with the installed plugins."""
    load_config(path)
    text = path.read_text()
    return text, yaml.safe_load(text)


def test_with_an_openai_key_it_uses_openai_and_writes_only_the_variable(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    result = init()
    assert result.exit_code == 0, result.output
    text, data = written(here)
    assert SECRET not in text
    assert data["providers"]["text"]["default"] == "openai"
    assert data["providers"]["text"]["openai"]["api_key"] == "${OPENAI_API_KEY}"
    assert data["providers"]["image"]["default"] == "openai"
    assert text.splitlines()[0] == f"# yaml-language-server: $schema={schema_uri()}"
    assert "OpenAI" in result.stdout
    config = load_config(here)
    assert config.get("providers.text.openai.api_key") == SECRET  # filled from the environment


def test_with_a_gemini_key_it_uses_gemini(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", SECRET)
    assert init().exit_code == 0
    text, data = written(here)
    assert SECRET not in text
    assert data["providers"]["text"]["default"] == "gemini"
    assert data["providers"]["text"]["gemini"]["api_key"] == "${GEMINI_API_KEY}"
    assert data["providers"]["image"]["gemini"]["model"] == "gemini-2.5-flash-image"


def test_with_a_local_ollama_it_uses_ollama_and_a_model_it_has(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # however long a busy machine keeps the fake from answering
    monkeypatch.setattr("questfoundry_provider_ollama.plugin.PROBE_SECONDS", 30.0)
    with FakeOllama(models=["qwen2.5:7b", "llama3.2:latest"]) as server:
        url = server.url
        monkeypatch.setenv("OLLAMA_HOST", url)
        for proxy in ("http_proxy", "HTTP_PROXY"):  # a proxy is not asked for the local Ollama
            monkeypatch.setenv(proxy, f"http://127.0.0.1:{closed_port()}")
        result = init()
        assert server.requests and server.requests[0].path == "/api/tags"
    assert result.exit_code == 0, result.output
    _, data = written(here)
    ollama = data["providers"]["text"]["ollama"]
    assert data["providers"]["text"]["default"] == "ollama"
    assert (ollama["model"], ollama["base_url"]) == ("qwen2.5:7b", url)
    assert "image" not in data["providers"]  # no image model on Ollama: left as a comment


def test_with_nothing_found_it_sets_up_the_demo(here: Path) -> None:
    result = init()
    assert result.exit_code == 0, result.output
    text, data = written(here)
    openai = data["providers"]["text"]["openai"]
    assert openai["base_url"] == "http://127.0.0.1:8765/v1"
    assert "placeholder text" in text and "python -m questfoundry.testing.fakes openai" in text
    assert "demo" in result.stdout


def test_the_demo_at_a_given_url(here: Path) -> None:
    assert init("--provider", "demo", "--base-url", "http://127.0.0.1:9/v1").exit_code == 0
    _, data = written(here)
    assert data["providers"]["text"]["openai"]["base_url"] == "http://127.0.0.1:9/v1"


def test_it_refuses_to_overwrite_without_force(here: Path) -> None:
    here.parent.mkdir()
    here.write_text("project: {name: mine}\n")
    refused = init()
    assert refused.exit_code == 1 and "--force" in refused.stderr
    assert here.read_text() == "project: {name: mine}\n"
    assert init("--force").exit_code == 0
    assert "yaml-language-server" in here.read_text()


def test_roles_resolve_on_what_init_wrote(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    init()
    result = CliRunner().invoke(cli, ["roles", "--json"], catch_exceptions=False)
    rows = {row["role"]: row for row in json.loads(result.stdout)}
    assert rows["gatekeeper"]["temperature"] == 0.2
    assert rows["illustrator"]["provider"] == "openai" and rows["illustrator"]["error"] is None


class Offering:
    """A provider plugin that offers itself to init when its variable is set."""

    @hookimpl
    def providers(self) -> dict[str, Backend]:
        def offer(env: Any, base_url: str | None, asked: bool) -> ProviderSetup | None:
            if not (env.get("HOUSE_KEY") or asked):
                return None
            return ProviderSetup("the house model", "model: house-1", needs=("HOUSE_KEY",))

        def make(settings: Any, context: Any) -> Any:
            raise AssertionError("init builds no provider")

        return {"house": Backend(make, priority=50, setup=offer)}


def test_a_third_party_provider_is_offered_by_its_own_setup_before_lower_priorities(
    here: Path,
) -> None:
    manager = get_plugin_manager(plugins=[("house", Offering())])
    chosen = choose("auto", None, {"HOUSE_KEY": "x", "OPENAI_API_KEY": SECRET}, manager)
    assert (chosen.provider, chosen.setup.reason) == ("house", "the house model")
    here.parent.mkdir()
    here.write_text(render(chosen, schema_uri()))
    config = load_config(here, manager=manager)  # what init would write validates
    assert config.get("providers.text.default") == "house"
    assert config.get("providers.text.house.model") == "house-1"


def test_a_provider_named_by_provider_answers_without_its_key_and_init_warns() -> None:
    manager = get_plugin_manager(plugins=[("house", Offering())])
    chosen = choose("house", None, {}, manager)
    assert chosen.provider == "house"
    assert missing(chosen.setup, {}) == [
        "HOUSE_KEY is not set: the config reads the key from it, so set it before running "
        "(export HOUSE_KEY=...), or run `questfoundry init --force` for another provider"
    ]


def test_an_unknown_provider_is_refused_naming_the_ones_on_offer(here: Path) -> None:
    result = CliRunner().invoke(cli, ["init", "--provider", "opneai"])
    assert result.exit_code != 0
    assert "auto, openai, gemini, ollama, demo" in result.output
    assert not here.exists()
