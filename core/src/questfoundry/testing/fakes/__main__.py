"""``python -m questfoundry.testing.fakes openai|ollama|gemini``: a stand-in provider server.

It serves until Ctrl-C or SIGTERM. Standard output gets two lines, flushed at once, so a script
can start it and read where it listens::

    url: http://127.0.0.1:8765
    base_url: http://127.0.0.1:8765/v1

``base_url`` is the value for the provider's ``base_url`` in ``.questfoundry/config.yml``.
Everything else (what it is, how to stop it) goes to standard error.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import TextIO

from questfoundry.testing.fakes import FakeGemini, FakeOllama, FakeOpenAI, FakeServer

SERVERS: dict[str, type[FakeServer]] = {
    "openai": FakeOpenAI,
    "ollama": FakeOllama,
    "gemini": FakeGemini,
}

DESCRIPTION = """\
Run a stand-in for a provider's API on this machine: the OpenAI Chat Completions and Images API,
Ollama's /api/chat, or Gemini's generateContent. It speaks the provider's documented wire format,
so the real SDKs (and QuestFoundry's provider plugins) talk to it unchanged. Its replies are
PLACEHOLDER TEXT: prose that means nothing, as long as the prompt asks, or for a structured-output
request an arbitrary instance of the JSON Schema asked for; images are small patterned PNGs. No
network, no API key needed (any key is accepted). It prints "url: ..." and "base_url: ..." on
standard output, then serves until Ctrl-C or SIGTERM."""

EPILOG = """\
example:
  python -m questfoundry.testing.fakes openai --port 8765
  # then in .questfoundry/config.yml, under providers.text.openai (or .ollama, .gemini):
  #   base_url: <the base_url printed>
  #   api_key: any-key"""


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m questfoundry.testing.fakes``."""
    commands = argparse.ArgumentParser(
        prog="python -m questfoundry.testing.fakes",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands.add_argument("provider", choices=sorted(SERVERS), help="which API to stand in for")
    commands.add_argument(
        "--port", type=int, default=0, help="port to listen on (default: a free one)"
    )
    commands.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    return commands


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen fake until interrupted; 0 on a clean stop, 2 when it cannot listen."""
    options = parser().parse_args(argv)
    if not 0 <= options.port <= 65535:
        return _fail(f"--port must be between 0 and 65535, not {options.port}")
    server = SERVERS[options.provider](host=options.host, port=options.port)
    try:
        server.start()
    except OSError as error:
        return _fail(f"cannot listen on {options.host}:{options.port}: {error.strerror or error}")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        _say(sys.stdout, f"url: {server.url}\nbase_url: {server.base_url}")
        _say(sys.stderr, f"Fake {options.provider} server: placeholder replies. Ctrl-C to stop.")
        stop.wait()  # a signal's handler runs while the main thread waits here
    finally:
        server.stop()
    return 0


def _say(stream: TextIO, text: str) -> None:
    stream.write(text + "\n")
    stream.flush()


def _fail(problem: str) -> int:
    _say(sys.stderr, f"Error: {problem}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
