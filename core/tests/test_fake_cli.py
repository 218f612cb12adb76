"""``python -m questfoundry.testing.fakes``: started as a process, found by the URL it prints, used
by the real SDK, stopped by SIGTERM or Ctrl-C (SIGINT)."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from questfoundry.testing.fakes import reply_text
from questfoundry.testing.fakes.__main__ import main

STARTUP_SECONDS = 30  # a generous bound on a loaded machine; a healthy start takes well under 1 s


@pytest.fixture
def start() -> Iterator[Callable[..., tuple[subprocess.Popen[str], dict[str, str]]]]:
    """Start the fake CLI; returns the process and its ``key: value`` stdout lines."""
    started: list[subprocess.Popen[str]] = []

    def run(*args: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
        process = subprocess.Popen(
            [sys.executable, "-m", "questfoundry.testing.fakes", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": ""},  # the CLI must flush by itself
        )
        started.append(process)
        assert process.stdout is not None
        printed = b""
        while printed.count(b"\n") < 2:  # read the pipe itself: a buffered reader hides lines
            ready, _, _ = select.select([process.stdout], [], [], STARTUP_SECONDS)
            assert ready, f"the fake printed only {printed!r}"
            piece = os.read(process.stdout.fileno(), 4096)
            assert piece, f"the fake ended after printing {printed!r}"
            printed += piece
        lines = dict(line.split(": ", 1) for line in printed.decode().splitlines())
        return process, lines

    yield run
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


def stop(process: subprocess.Popen[str], signum: int) -> str:
    process.send_signal(signum)
    _, err = process.communicate(timeout=STARTUP_SECONDS)
    assert process.returncode == 0, err
    return err


@pytest.mark.slow
def test_openai_fake_serves_the_sdk_until_sigterm(start: Callable[..., tuple]) -> None:
    openai = pytest.importorskip("openai")
    process, lines = start("openai")
    assert lines["base_url"] == lines["url"] + "/v1"
    with openai.OpenAI(api_key="any", base_url=lines["base_url"], max_retries=0) as client:
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello there"}]
        )
    assert reply.choices[0].message.content == reply_text("Hello there", "gpt-4o-mini")
    assert "placeholder" in stop(process, signal.SIGTERM)


@pytest.mark.slow
def test_ollama_fake_answers_a_schema_request_until_ctrl_c(start: Callable[..., tuple]) -> None:
    ollama = pytest.importorskip("ollama")
    process, lines = start("ollama", "--host", "127.0.0.1")
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    reply = ollama.Client(host=lines["base_url"]).chat(
        model="llama3.2", messages=[{"role": "user", "content": "count"}], format=schema
    )
    assert isinstance(json.loads(reply.message.content or "")["n"], int)
    stop(process, signal.SIGINT)


@pytest.mark.slow
def test_gemini_fake_listens_on_the_port_asked_for(start: Callable[..., tuple]) -> None:
    with socket.socket() as probe:  # a port free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    process, lines = start("gemini", "--port", port)
    assert lines["url"] == f"http://127.0.0.1:{port}"
    request = urllib.request.Request(
        f"{lines['base_url']}/v1beta/models/gemini-2.5-flash:generateContent",
        data=json.dumps({"contents": [{"parts": [{"text": "Hi Gemini"}]}]}).encode(),
        headers={"x-goog-api-key": "any", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=STARTUP_SECONDS) as response:
        reply = json.load(response)
    said = reply["candidates"][0]["content"]["parts"][0]["text"]
    assert said == reply_text("Hi Gemini", "gemini-2.5-flash")
    stop(process, signal.SIGTERM)


def test_help_explains_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    assert all(word in shown for word in ("openai", "ollama", "gemini", "--port", "--host"))
    assert "PLACEHOLDER" in shown and "base_url" in shown


@pytest.mark.parametrize(
    ("args", "problem"),
    [(["openai", "--port", "70000"], "--port must be between"), (["nope"], "invalid choice")],
)
def test_bad_arguments_are_one_clear_line(
    args: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(args)
    except SystemExit as exited:  # argparse's own refusal
        code = int(exited.code or 0)
    assert code == 2
    assert problem in capsys.readouterr().err


def test_a_port_in_use_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    from questfoundry.testing.fakes import FakeOllama

    with FakeOllama() as busy:
        port = busy.url.rsplit(":", 1)[1]
        assert main(["ollama", "--port", port]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"Error: cannot listen on 127.0.0.1:{port}") and err.count("\n") == 1
