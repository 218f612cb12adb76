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
from questfoundry.cli.init import ollama_url, schema_uri
from questfoundry.config import load_config
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


@pytest.mark.parametrize(
    ("value", "url"),
    [
        ("", "http://127.0.0.1:11434"),
        ("0.0.0.0", "http://127.0.0.1:11434"),
        ("ollama.lan:8080", "http://ollama.lan:8080"),
        ("https://ollama.example", "https://ollama.example:11434"),
        ("[::1]:11500", "http://[::1]:11500"),
    ],
)
def test_ollama_host_is_read_as_ollama_reads_it(value: str, url: str) -> None:
    assert ollama_url({"OLLAMA_HOST": value}) == url
