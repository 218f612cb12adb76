"""A server that echoes the API key back: the key appears nowhere a user or a log can see.

``questfoundry --debug ask`` runs as a real process against a fake provider whose 401 quotes the
credentials it was sent (:attr:`Fault.ECHO_CREDENTIALS`), as a careless proxy does. The full
``--debug`` traceback, chain included, and everything the process logged at DEBUG must hold the
key zero times, while the traceback itself is really printed.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from textwrap import dedent

import pytest
from questfoundry_provider_openai.plugin import make_openai_provider

from questfoundry.contracts.backends import BackendContext
from questfoundry.contracts.records import Message, ProviderRequest
from questfoundry.testing.clock import FakeClock
from questfoundry.testing.fakes import FakeGemini, FakeOpenAI, FakeServer, Fault

KEY_VAR = "QF_ECHO_TEST_KEY"
SECRET = {
    "openai": "sk-qf-echoed-secret-91c4d2e7f0",
    "gemini": "AIzaSy-qf-echoed-secret-91c4d2e7f0",
}
MODEL = {"openai": "gpt-4o-mini", "gemini": "gemini-2.5-flash"}


@pytest.fixture(params=["openai", "gemini"])
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(provider: str) -> Iterator[FakeServer]:
    fake: FakeServer = FakeOpenAI() if provider == "openai" else FakeGemini()
    with fake:
        yield fake


def write_config(root: Path, provider: str, server: FakeServer) -> Path:
    base_url = server.url + ("/v1" if provider == "openai" else "")
    folder = root / ".questfoundry"
    folder.mkdir(parents=True)
    config = folder / "config.yml"
    config.write_text(
        dedent(f"""\
            providers:
              text:
                default: {provider}
                {provider}:
                  api_key: ${{{KEY_VAR}}}
                  base_url: {base_url}
                  model: {MODEL[provider]}
            caching:
              backend: memory
            retry:
              initial_delay_ms: 1
              max_delay_ms: 5
            """),
        encoding="utf-8",
    )
    return config


def ask_with_debug(root: Path, config: Path, secret: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUESTFOUNDRY_")}
    env[KEY_VAR] = secret
    code = (
        "import logging, sys; logging.basicConfig(level=logging.DEBUG, stream=sys.stderr); "
        "from questfoundry.cli import main; sys.argv[0] = 'questfoundry'; main()"
    )
    return subprocess.run(
        [sys.executable, "-c", code, "--debug", "--config", str(config), "ask", "Who goes there?"],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_debug_traceback_and_logs_of_an_echoed_key_never_show_it(
    provider: str, server: FakeServer, tmp_path: Path
) -> None:
    secret = SECRET[provider]
    server.fail_next(Fault.ECHO_CREDENTIALS, times=3)
    done = ask_with_debug(tmp_path, write_config(tmp_path, provider, server), secret)
    sent = " ".join(server.requests[0].headers.values())
    assert secret in sent, "the key went out, so the fake echoed it back"
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr, done.stderr[-2000:]
    assert "401" in done.stderr
    assert (done.stdout + done.stderr).count(secret) == 0


def test_log_records_of_a_failed_call_never_show_an_echoed_key(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """Every record logged at DEBUG during the call (the SDK's and httpx's included), and a
    package logger's ``exception`` record of the error, as the gateway would log it."""
    secret = SECRET["openai"]
    context = BackendContext(project_dir=tmp_path, namespace="t", clock=FakeClock())
    caplog.set_level(logging.DEBUG)
    with FakeOpenAI() as server:
        provider = make_openai_provider({"api_key": secret, "base_url": server.base_url}, context)
        server.fail_next(Fault.ECHO_CREDENTIALS)
        try:
            provider.generate(ProviderRequest("gpt-4o-mini", (Message("user", "Who is it?"),)))
        except Exception as error:
            logging.getLogger("questfoundry.gateway").exception("the call failed: %s", error)
        provider.close()
    assert any(r.name == "questfoundry.gateway" for r in caplog.records)
    shown = caplog.text + "".join(
        f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records
    )
    assert shown.count(secret) == 0
