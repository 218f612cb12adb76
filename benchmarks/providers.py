"""Provider comparison: what each provider plugin adds to its own SDK, OpenAI, Ollama and Gemini
side by side, against the local fake servers (the seed's "provider comparison").

    python benchmarks/providers.py [--quick] [--check]

For each provider its fake server runs in a process of its own (zero latency, as in
``gateway.py``), and three calls of one new question each are timed in turns: the provider's own
SDK called directly (``openai``, ``ollama``, ``google-genai``), the QuestFoundry provider plugin
(its ``generate``: the SDK plus the plugin's request mapping, transport with a deadline and a size
cap, reply and usage mapping), and the whole gateway with the cache off (plugin, plan, journal,
ledger). Ratios are the plugin's and the gateway's over the SDK; ``--check`` exits 1 when one is
above its target. A provider whose SDK is not installed is skipped with a note. The SDK called
directly is called as its users call it (for OpenAI ``chat.completions.create``); the OpenAI plugin
posts through the same client's generic ``post``, which skips ``create``'s transform of the
arguments, so it can cost less than that floor (``gateway.py`` times that path too).
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from questfoundry.config import Config
from questfoundry.contracts.backends import BackendContext
from questfoundry.contracts.records import Message, ProviderRequest, Request
from questfoundry.registry import get_plugin_manager
from questfoundry.runtime import open_gateway

sys.path.insert(0, str(Path(__file__).parent))
from rows import Row, finish, interleaved, ratio_row, timed_row

PROMPT = "Describe the lighthouse keeper's lantern room at dusk, in the voice of the book."
MAX_TOKENS = 300
KEY = "sk-bench"
#: what the plugin may add to its SDK, and the whole gateway (cache off)
PLUGIN_TARGET = 1.05
GATEWAY_TARGET = 1.10

SERVER = (
    "import sys; from questfoundry.testing import fakes; "
    "server = getattr(fakes, sys.argv[1])().start(); print(server.url, flush=True); "
    "sys.stdin.read()"
)


@dataclass(frozen=True)
class Provider:
    """One provider: its plugin name, fake server, model, settings and raw SDK call."""

    name: str
    fake: str
    model: str
    suffix: str  #: what the plugin's base_url adds to the server's address
    sdk: Callable[[str, str], Callable[[str], Any]]  #: (url, model) -> ask(question)


def openai_sdk(url: str, model: str) -> Callable[[str], Any]:
    import openai

    client = openai.OpenAI(api_key=KEY, base_url=f"{url}/v1", max_retries=0)
    return lambda text: client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}], max_tokens=MAX_TOKENS
    )


def ollama_sdk(url: str, model: str) -> Callable[[str], Any]:
    import ollama

    client = ollama.Client(host=url)
    return lambda text: client.chat(
        model=model,
        messages=[{"role": "user", "content": text}],
        options={"num_predict": MAX_TOKENS},
    )


def gemini_sdk(url: str, model: str) -> Callable[[str], Any]:
    from google import genai
    from google.genai import types

    options = types.HttpOptions(base_url=url, retry_options=types.HttpRetryOptions(attempts=1))
    client = genai.Client(api_key=KEY, http_options=options)
    config = types.GenerateContentConfig(max_output_tokens=MAX_TOKENS)
    return lambda text: client.models.generate_content(model=model, contents=text, config=config)


PROVIDERS = [
    Provider("openai", "FakeOpenAI", "gpt-4o-mini", "/v1", openai_sdk),
    Provider("ollama", "FakeOllama", "llama3.2", "", ollama_sdk),
    Provider("gemini", "FakeGemini", "gemini-2.5-flash", "", gemini_sdk),
]


@contextmanager
def fake(server: str) -> Iterator[str]:
    """The address of a fake provider server running in a process of its own."""
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE}
    with subprocess.Popen([sys.executable, "-c", SERVER, server], text=True, **pipes) as process:
        assert process.stdout is not None and process.stdin is not None
        try:
            yield process.stdout.readline().strip()
        finally:
            process.stdin.close()


def provider_rows(provider: Provider, root: Path, runs: int) -> list[Row]:
    """The SDK, the plugin and the gateway on one provider's fake server, in turns."""
    try:
        with fake(provider.fake) as url:
            sdk = provider.sdk(url, provider.model)
            settings = {"model": provider.model, "api_key": KEY, "base_url": url + provider.suffix}
            data = {
                "providers": {"text": {"default": provider.name, provider.name: settings}},
                "caching": {"enabled": False},
            }
            config = Config(data, None, root / ".questfoundry", frozenset())
            manager = get_plugin_manager()
            plugin = manager.create(
                "provider", provider.name, {**settings, "kind": "text"}, BackendContext(root)
            )
            gateway = open_gateway(config, manager)
            count = itertools.count()

            def new() -> str:  # a new question each time
                return f"{PROMPT} (take {next(count)})"

            def through_plugin() -> None:
                message = (Message("user", new()),)
                params = {"max_tokens": MAX_TOKENS}
                plugin.generate(ProviderRequest(provider.model, message, None, "text", params))

            def through_gateway() -> None:
                messages = [{"role": "user", "content": new()}]
                gateway.generate(Request(messages, params={"max_tokens": MAX_TOKENS}))

            taken = interleaved(
                {"sdk": lambda: sdk(new()), "plugin": through_plugin, "gateway": through_gateway},
                runs,
                warm=20,
            )
            plugin.close()
            gateway.close()
    except ImportError as exc:
        return [{"operation": f"{provider.name}: skipped", "note": f"not installed: {exc}"}]
    floor = timed_row(f"  {provider.name}: its SDK, called directly", taken["sdk"])
    ours = timed_row(f"{provider.name}: the provider plugin", taken["plugin"])
    whole = timed_row(f"{provider.name}: the gateway, cache off", taken["gateway"])
    return [
        floor,
        ours,
        whole,
        ratio_row(f"{provider.name}: plugin / SDK", ours, floor, PLUGIN_TARGET),
        ratio_row(f"{provider.name}: gateway / SDK", whole, floor, GATEWAY_TARGET),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when a ratio misses its target"
    )
    args = parser.parse_args(argv)
    runs = 150 if args.quick else 1_000
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as name:
        for provider in PROVIDERS:
            rows += provider_rows(provider, Path(name) / provider.name, runs)
    return finish(rows, args.check)


if __name__ == "__main__":
    sys.exit(main())
