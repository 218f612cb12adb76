"""``questfoundry ask`` options: ``--json``, ``-`` (the prompt from stdin), ``--system``,
``--param KEY=VALUE``; over real HTTP to :class:`~questfoundry.testing.fakes.FakeOpenAI`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from questfoundry.cli import cli
from questfoundry.testing.fakes import FakeOpenAI

pytest.importorskip("questfoundry_provider_openai")


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def project(in_project: Callable[[str], Path], server: FakeOpenAI) -> Path:
    return in_project(
        "providers:\n  text:\n    default: openai\n    openai:\n"
        f"      base_url: {server.base_url}\n      api_key: test-key\n      model: gpt-4o-mini\n"
        "pricing:\n  providers:\n    openai:\n"
        "      cost_per_input_token: 0.0000001\n      cost_per_output_token: 0.0000002\n"
    )


def ask(*args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(cli, ["ask", *args], input=input, catch_exceptions=False)


@pytest.mark.slow
def test_json_system_and_params_reach_the_provider(project: Path, server: FakeOpenAI) -> None:
    before = len(server.requests)
    result = ask(
        "Open on a storm.", "--system", "You write tersely.", "--param", "temperature=0.3",
        "--param", "max_tokens=40", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    reply = json.loads(result.stdout)
    (request,) = server.requests[before:]
    assert request.body["messages"] == [
        {"role": "system", "content": "You write tersely."},
        {"role": "user", "content": "Open on a storm."},
    ]
    assert request.temperature == 0.3 and request.body["max_tokens"] == 40
    assert reply["text"] and reply["provider"] == "openai" and reply["model"] == "gpt-4o-mini"
    assert reply["cache_hit"] is False and reply["image_bytes"] is None
    assert isinstance(reply["input_tokens"], int) and isinstance(reply["output_tokens"], int)
    assert isinstance(reply["cost"], str) and Decimal(reply["cost"]) > 0  # money: decimal text
    assert "E" not in reply["cost"]  # never 1E-7
    assert isinstance(reply["latency_ms"], int) and result.stderr == ""


def test_a_prompt_of_dash_is_read_from_stdin(project: Path, server: FakeOpenAI) -> None:
    before = len(server.requests)
    result = ask("-", "--json", input="A prompt\nover two lines.\n")
    assert result.exit_code == 0, result.output
    (request,) = server.requests[before:]
    assert request.body["messages"][-1]["content"] == "A prompt\nover two lines.\n"
    assert json.loads(result.stdout)["cache_hit"] is False


@pytest.mark.slow
def test_the_second_ask_is_a_hit_and_the_status_line_says_so(project: Path) -> None:
    pytest.importorskip("questfoundry_cache_file")  # the default cache where installed
    ask("Same words.", "--json")
    again = ask("Same words.")
    assert again.exit_code == 0
    assert "· cached ·" in again.stderr and again.stdout.strip()


def test_debug_after_ask_and_bad_input_are_one_line(project: Path) -> None:
    empty = ask("-", input="  \n")
    assert empty.exit_code == 1 and empty.stderr == "Error: the prompt is empty\n"
    bad = ask("hi", "--param", "temperature")
    assert bad.exit_code == 1 and bad.stderr == "Error: --param 'temperature': expected KEY=VALUE\n"
    traced = ask("hi", "--debug", "--param", "temperature")
    assert "Traceback" in traced.stderr
