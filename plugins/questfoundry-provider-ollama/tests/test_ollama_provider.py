"""The ``ollama`` provider, driven through the real ``ollama`` client over real HTTP.

Every test talks to :class:`~questfoundry.testing.fakes.FakeOllama` on 127.0.0.1 (nothing patches
the SDK), except the ``live`` class, which runs the same contract against a local Ollama when one
answers at ``OLLAMA_HOST`` or ``http://localhost:11434``.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
from questfoundry_provider_ollama import plugin
from questfoundry_provider_ollama.plugin import make_ollama_provider
from questfoundry_provider_ollama.provider import OllamaProvider
from questfoundry_provider_ollama.settings import DEFAULT_BASE_URL

from questfoundry.kit import (
    BackendContext,
    Capability,
    Chunk,
    ConfigError,
    Message,
    NonRetriableProviderError,
    ProviderRateLimitError,
    ProviderRequest,
    RetriableProviderError,
)
from questfoundry.kit.retry_after import parse_retry_after
from questfoundry.testing.app import get_plugin_manager
from questfoundry.testing.fakes import FakeServer, Fault
from questfoundry.testing.fakes.base import RecordedRequest, Response, ndjson_line
from questfoundry.testing.fakes.ollama import FakeOllama
from questfoundry.testing.provider_contract import ProviderContract

MODEL = "llama3.2"


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama() as server:
        yield server


@pytest.fixture
def ollama(fake: FakeOllama, backend_context: BackendContext) -> Iterator[OllamaProvider]:
    provider = make_ollama_provider(
        {"base_url": fake.url, "model": MODEL, "timeout_seconds": 5}, backend_context
    )
    yield provider
    provider.close()


def ask(prompt: str = "Describe the lighthouse.", **fields: Any) -> ProviderRequest:
    return ProviderRequest(model=fields.pop("model", MODEL), prompt=prompt, **fields)


# ---------------------------------------------------------------------- the contract


class TestOllamaContract(ProviderContract):
    #: sent as a bearer token when set: an Ollama behind an authenticating proxy
    secret = "ollama-proxy-key-0123456789abcdef"

    @pytest.fixture
    def server(self) -> Iterator[FakeOllama]:
        with FakeOllama() as server:
            yield server

    @pytest.fixture
    async def provider(
        self, server: FakeOllama, backend_context: BackendContext, monkeypatch: pytest.MonkeyPatch
    ) -> AsyncIterator[OllamaProvider]:
        monkeypatch.setenv("OLLAMA_API_KEY", self.secret)
        settings = {
            "base_url": server.url,
            "timeout_seconds": self.timeout,
            "max_reply_mb": self.max_reply_mb,
        }
        provider = make_ollama_provider(settings, backend_context)
        yield provider
        await provider.aclose()

    @pytest.fixture
    def model(self) -> str:
        return MODEL


# ---------------------------------------------------------------------- what goes on the wire


def test_generation_parameters_become_ollama_options(
    ollama: OllamaProvider, fake: FakeOllama
) -> None:
    params = {"temperature": 0.3, "max_tokens": 64, "top_p": 0.9, "stop": "THE END", "seed": 7}
    ollama.generate(ask(params=params))
    body = fake.requests[-1].body
    assert body["options"] == {
        "temperature": 0.3,
        "num_predict": 64,
        "top_p": 0.9,
        "stop": ["THE END"],
        "seed": 7,
    }


def test_parameters_ollama_has_no_option_for_are_left_out(
    ollama: OllamaProvider, fake: FakeOllama
) -> None:
    ollama.generate(ask(params={"size": "1024x1024", "temperature": None, "top_k": 20}))
    assert fake.requests[-1].body["options"] == {"top_k": 20}


def test_an_explicit_num_predict_wins_over_max_tokens(
    ollama: OllamaProvider, fake: FakeOllama
) -> None:
    ollama.generate(ask(params={"max_tokens": 64, "num_predict": 10}))
    assert fake.requests[-1].body["options"]["num_predict"] == 10


def test_a_call_without_parameters_sends_no_options(
    ollama: OllamaProvider, fake: FakeOllama
) -> None:
    ollama.generate(ask())
    assert "options" not in fake.requests[-1].body


def test_messages_and_prompt_are_sent_in_order_to_api_chat(
    ollama: OllamaProvider, fake: FakeOllama
) -> None:
    request = ask("And then?", messages=(Message("system", "Be brief."), Message("user", "Hi")))
    ollama.generate(request)
    sent = fake.requests[-1]
    assert (sent.method, sent.path) == ("POST", "/api/chat")
    assert sent.body["model"] == MODEL
    assert sent.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "user", "content": "And then?"},
    ]


def test_generate_asks_for_one_reply_and_stream_asks_for_a_stream(
    ollama: OllamaProvider, fake: FakeOllama
) -> None:
    ollama.generate(ask())
    list(ollama.stream(ask()))
    assert [r.body["stream"] for r in fake.requests] == [False, True]


def test_max_tokens_reaches_the_model_and_the_reply_says_it_was_cut(
    ollama: OllamaProvider,
) -> None:
    reply = ollama.generate(ask("A long tale " * 20, params={"max_tokens": 3}))
    assert reply.finish_reason == "length"
    assert reply.usage.output_tokens == 3


def test_usage_comes_from_the_eval_counts_and_nothing_is_cached(
    ollama: OllamaProvider, fake: FakeOllama
) -> None:
    reply = ollama.generate(ask())
    assert reply.finish_reason == "stop"
    assert reply.usage.input_tokens > 0 and reply.usage.output_tokens > 0
    assert reply.usage.cached_input_tokens == 0
    streamed = list(ollama.stream(ask()))
    assert streamed[-1].usage == reply.usage


def test_the_model_from_settings_is_used_when_the_request_names_none(
    ollama: OllamaProvider, fake: FakeOllama
) -> None:
    ollama.generate(ask(model=""))
    assert fake.requests[-1].body["model"] == MODEL


def test_a_request_without_any_model_fails_before_sending(
    fake: FakeOllama, backend_context: BackendContext
) -> None:
    provider = make_ollama_provider({"base_url": fake.url}, backend_context)
    with pytest.raises(NonRetriableProviderError, match=r"providers\.text\.ollama\.model"):
        provider.generate(ask(model=""))
    assert fake.requests == []


def test_a_request_without_messages_or_prompt_fails_before_sending(
    ollama: OllamaProvider, fake: FakeOllama
) -> None:
    with pytest.raises(NonRetriableProviderError, match="no messages and no prompt"):
        ollama.generate(ProviderRequest(model=MODEL))
    assert fake.requests == []


async def test_image_requests_are_refused_without_a_call(
    ollama: OllamaProvider, fake: FakeOllama
) -> None:
    request = ask("a lighthouse at dusk", kind="image")
    with pytest.raises(NonRetriableProviderError, match="does not generate images"):
        ollama.generate(request)
    with pytest.raises(NonRetriableProviderError, match="does not generate images"):
        await ollama.agenerate(request)
    with pytest.raises(NonRetriableProviderError, match="does not generate images"):
        list(ollama.stream(request))
    assert fake.requests == []
    assert Capability.IMAGES not in ollama.capabilities
    assert Capability.STREAMING in ollama.capabilities


# ---------------------------------------------------------------------- settings and plugin


def test_default_base_url_is_the_local_ollama(backend_context: BackendContext) -> None:
    provider = make_ollama_provider({}, backend_context)
    assert provider.base_url == DEFAULT_BASE_URL == "http://localhost:11434"
    assert provider.settings.timeout_seconds > 0


def test_a_trailing_slash_on_base_url_is_ignored(backend_context: BackendContext) -> None:
    provider = make_ollama_provider({"base_url": "http://gpu-box:11434/"}, backend_context)
    assert provider.base_url == "http://gpu-box:11434"


@pytest.mark.parametrize(
    ("settings", "path"),
    [
        ({"timeout_seconds": 0}, "providers.text.ollama.timeout_seconds"),
        ({"timeout_seconds": "soon"}, "providers.text.ollama.timeout_seconds"),
        ({"base_url": 11434}, "providers.text.ollama.base_url"),
        ({"model": ""}, "providers.text.ollama.model"),
    ],
)
def test_bad_settings_are_a_config_error_naming_the_path(
    settings: dict[str, Any], path: str, backend_context: BackendContext
) -> None:
    with pytest.raises(ConfigError) as caught:
        make_ollama_provider(settings, backend_context)
    assert caught.value.path == path


def test_the_plugin_registers_provider_ollama() -> None:
    manager = get_plugin_manager(builtins=False, entry_points=False, plugins=[("ollama", plugin)])
    assert manager.get("provider", "ollama").factory is make_ollama_provider


def test_the_installed_entry_point_provides_ollama() -> None:
    manager = get_plugin_manager(env={"QUESTFOUNDRY_LOAD_PLUGINS": "provider-ollama"})
    registration = manager.get("provider", "ollama")
    assert registration.distribution == "questfoundry-provider-ollama"


@pytest.mark.slow
def test_loading_the_plugin_does_not_import_the_ollama_library() -> None:
    code = (
        "import sys, questfoundry_provider_ollama.plugin\n"
        "loaded = [m for m in ('ollama', 'httpx', 'pydantic') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------- failures


def test_ollama_not_running_reads_as_one_line_naming_the_base_url(
    backend_context: BackendContext,
) -> None:
    base_url = f"http://127.0.0.1:{_closed_port()}"
    provider = make_ollama_provider({"base_url": base_url}, backend_context)
    for call in (provider.generate, lambda r: list(provider.stream(r))):
        with pytest.raises(RetriableProviderError) as caught:
            call(ask())
        message = str(caught.value)
        assert f"cannot connect to Ollama at {base_url}" in message
        assert "\n" not in message


async def test_ollama_not_running_reads_the_same_from_async_calls(
    backend_context: BackendContext,
) -> None:
    base_url = f"http://127.0.0.1:{_closed_port()}"
    provider = make_ollama_provider({"base_url": base_url}, backend_context)
    with pytest.raises(RetriableProviderError, match="cannot connect to Ollama at"):
        await provider.agenerate(ask())
    with pytest.raises(RetriableProviderError, match="cannot connect to Ollama at"):
        _ = [chunk async for chunk in provider.astream(ask())]
    await provider.aclose()


def test_a_model_ollama_does_not_have_keeps_its_own_message(
    backend_context: BackendContext,
) -> None:
    with FakeOllama(models=["qwen2.5"]) as server:
        provider = make_ollama_provider({"base_url": server.url}, backend_context)
        with pytest.raises(NonRetriableProviderError) as caught:
            provider.generate(ask(model="mistral"))
        provider.close()
    assert caught.value.status_code == 404
    assert 'model "mistral" not found, try pulling it first' in str(caught.value)


def test_the_request_timeout_overrides_the_configured_one(
    fake: FakeOllama, backend_context: BackendContext
) -> None:
    provider = make_ollama_provider({"base_url": fake.url, "timeout_seconds": 30}, backend_context)
    fake.slow_seconds = 5
    fake.fail_next(Fault.SLOW)
    started = time.monotonic()
    with pytest.raises(RetriableProviderError, match=r"no complete reply within 0\.2 s"):
        provider.generate(ask(timeout=0.2))
    assert time.monotonic() - started < 2
    assert provider.generate(ask()).text, "the next call uses the configured timeout again"
    provider.close()


class BrokenStreams(FakeOllama):
    """Streams that go wrong after a good start, as a crashing model runner's do."""

    ending = "error"

    def _chat(self, request: RecordedRequest) -> Response:
        lines = [ndjson_line({"model": MODEL, "message": {"role": "assistant", "content": "Once"}})]
        if self.ending == "error":
            lines.append(ndjson_line({"error": "llama runner process has terminated"}))
        return Response(stream=iter(lines), content_type="application/x-ndjson")


def test_an_error_in_the_middle_of_a_stream_is_retriable(backend_context: BackendContext) -> None:
    with BrokenStreams() as server:
        provider = make_ollama_provider({"base_url": server.url}, backend_context)
        chunks: list[Chunk] = []
        with pytest.raises(RetriableProviderError, match="llama runner process has terminated"):
            chunks.extend(provider.stream(ask()))
        provider.close()
    assert [chunk.text for chunk in chunks] == ["Once"]


async def test_a_stream_cut_before_its_final_message_is_retriable(
    backend_context: BackendContext,
) -> None:
    with BrokenStreams() as server:
        server.ending = "cut"
        provider = make_ollama_provider({"base_url": server.url}, backend_context)
        with pytest.raises(RetriableProviderError, match="ended before its final message"):
            list(provider.stream(ask()))
        with pytest.raises(RetriableProviderError, match="ended before its final message"):
            _ = [chunk async for chunk in provider.astream(ask())]
        await provider.aclose()


def test_an_abandoned_stream_leaves_the_provider_usable(
    ollama: OllamaProvider, fake: FakeOllama
) -> None:
    stream = ollama.stream(ask())
    first = next(stream)
    stream.close()
    assert first.text
    assert ollama.generate(ask()).text
    assert len(fake.requests) == 2


def test_a_closed_provider_refuses_calls(ollama: OllamaProvider, fake: FakeOllama) -> None:
    ollama.close()
    with pytest.raises(NonRetriableProviderError, match="closed"):
        ollama.generate(ask())
    assert fake.requests == []


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("3", 3.0), ("0.5", 0.5), ("-2", None), ("", None), (None, None), ("soon", None)],
)
def test_retry_after_is_read_as_seconds(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def test_retry_after_as_an_http_date_counts_from_now() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    header = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(header, now=now.timestamp()) == pytest.approx(30)


def test_a_429_without_retry_after_leaves_it_unknown(backend_context: BackendContext) -> None:
    class Busy(FakeOllama):
        def _chat(self, request: RecordedRequest) -> Response:
            return self.error_response(429, "server busy, please try again")

    with Busy() as server:
        provider = make_ollama_provider({"base_url": server.url}, backend_context)
        with pytest.raises(ProviderRateLimitError) as caught:
            provider.generate(ask())
        provider.close()
    assert caught.value.retry_after is None
    assert "server busy" in str(caught.value)


# ---------------------------------------------------------------------- the fake itself


def test_fake_ollama_streams_ndjson_when_the_request_leaves_stream_out(fake: FakeOllama) -> None:
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]})
    request = urllib.request.Request(f"{fake.url}/api/chat", data=body.encode(), method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["Content-Type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in response.read().splitlines()]
    assert [line["done"] for line in lines] == [False] * (len(lines) - 1) + [True]
    final = lines[-1]
    assert final["done_reason"] == "stop"
    assert final["message"]["content"] == ""
    assert final["eval_count"] > 0 and final["prompt_eval_count"] > 0
    assert final["total_duration"] >= final["eval_duration"] > 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[1, 2]", "the body is not a JSON object"),
        (b'{"messages": []}', "model is required"),
        (b'{"model": "m", "messages": "hi"}', "messages must be a list of objects"),
        (b'{"model": "m", "messages": [], "options": 3}', "options must be an object"),
    ],
)
def test_fake_ollama_refuses_bad_requests_with_ollamas_error_shape(
    fake: FakeOllama, body: bytes, message: str
) -> None:
    request = urllib.request.Request(f"{fake.url}/api/chat", data=body, method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 400
    assert message in json.loads(caught.value.read())["error"]
    assert fake.served == 0


def test_fake_ollama_answers_health_probes_and_lists_its_models() -> None:
    with FakeOllama(models=["qwen2.5", "llama3.2:1b"]) as server:
        with urllib.request.urlopen(server.url + "/", timeout=5) as response:
            assert response.read() == b"Ollama is running"
        with urllib.request.urlopen(server.url + "/api/tags", timeout=5) as response:
            names = [m["name"] for m in json.loads(response.read())["models"]]
    assert names == ["qwen2.5:latest", "llama3.2:1b"]


def test_fake_ollama_stops_at_a_stop_sequence(ollama: OllamaProvider) -> None:
    full = ollama.generate(ask("stop here please")).text
    assert full is not None
    word = full.split()[3]  # a word the reply holds, wherever it comes first
    cut = ollama.generate(ask("stop here please", params={"stop": [word]}))
    assert cut.text == full[: full.index(word)]
    assert cut.finish_reason == "stop"


# ---------------------------------------------------------------------- live


def _local_ollama() -> str | None:
    """The base URL of an Ollama answering at OLLAMA_HOST or localhost:11434, else None."""
    host = os.environ.get("OLLAMA_HOST") or DEFAULT_BASE_URL
    url = host if "://" in host else f"http://{host}"
    parts = urlsplit(url)
    port = parts.port or (11434 if "://" not in host else 443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=0.2):
            pass
    except OSError:
        return None
    return f"{parts.scheme}://{parts.hostname}:{port}{parts.path.rstrip('/')}"


def _live_model(base_url: str) -> str | None:
    if os.environ.get("OLLAMA_MODEL"):
        return os.environ["OLLAMA_MODEL"]
    try:
        with urllib.request.urlopen(f"{base_url}/api/tags", timeout=5) as response:
            models = json.loads(response.read()).get("models") or []
    except (OSError, ValueError):
        return None
    return models[0]["name"] if models else None


@pytest.mark.live
class TestOllamaLive(ProviderContract):
    """The contract against a real local Ollama; set OLLAMA_MODEL to choose the model."""

    timeout = 300.0

    @pytest.fixture
    def base_url(self) -> str:
        base_url = _local_ollama()
        if base_url is None:
            pytest.skip("no Ollama answers at OLLAMA_HOST or http://localhost:11434")
        return base_url

    @pytest.fixture
    def server(self) -> FakeServer | None:
        return None

    @pytest.fixture
    async def provider(
        self, base_url: str, backend_context: BackendContext
    ) -> AsyncIterator[OllamaProvider]:
        settings = {"base_url": base_url, "timeout_seconds": self.timeout}
        provider = make_ollama_provider(settings, backend_context)
        yield provider
        await provider.aclose()

    @pytest.fixture
    def model(self, base_url: str) -> str:
        model = _live_model(base_url)
        if model is None:
            pytest.skip("the local Ollama has no model pulled (or set OLLAMA_MODEL)")
        return model


# ---------------------------------------------------------------------- helpers


def _closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# ---------------------------------------------------------------------- concurrency


def test_threads_share_one_provider_and_each_gets_its_own_reply(ollama: OllamaProvider) -> None:
    from concurrent.futures import ThreadPoolExecutor

    prompts = [f"tell tale number {i}" for i in range(16)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        replies = list(pool.map(lambda p: ollama.generate(ask(p)), prompts))
    alone = [ollama.generate(ask(p)).text for p in prompts]  # one at a time: the reply of each
    assert [reply.text for reply in replies] == alone and len(set(alone)) == len(prompts)


async def test_concurrent_async_calls_each_get_their_own_reply(ollama: OllamaProvider) -> None:
    prompts = [f"tell tale number {i}" for i in range(16)]
    replies = await asyncio.gather(*(ollama.agenerate(ask(p)) for p in prompts))
    alone = [(await ollama.agenerate(ask(p))).text for p in prompts]
    assert [reply.text for reply in replies] == alone and len(set(alone)) == len(prompts)
    await ollama.aclose()
