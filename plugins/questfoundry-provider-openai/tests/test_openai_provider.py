"""Provider ``openai``: the contract suite and OpenAI specifics, real SDK over real HTTP.

Every test talks to :class:`~questfoundry.testing.fakes.FakeOpenAI` on 127.0.0.1 through the
unpatched openai SDK; the ``live`` class runs the same contract against the real API.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from questfoundry_provider_openai.failures import clean, retry_after
from questfoundry_provider_openai.plugin import make_openai_provider
from questfoundry_provider_openai.provider import OpenAIProvider

from questfoundry.kit import (
    BackendContext,
    ConfigError,
    Message,
    NonRetriableProviderError,
    ProviderRateLimitError,
    ProviderRequest,
    RetriableProviderError,
)
from questfoundry.testing.app import get_plugin_manager
from questfoundry.testing.fakes import FakeOpenAI, Fault, RecordedRequest, Response
from questfoundry.testing.provider_contract import ProviderContract

SECRET = "sk-test-0123456789abcdef0123456789abcdef"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class TestOpenAIContract(ProviderContract):
    secret = SECRET

    @pytest.fixture
    def server(self) -> Iterator[FakeOpenAI]:
        with FakeOpenAI(api_key=SECRET) as server:
            yield server

    @pytest.fixture
    def provider(
        self, server: FakeOpenAI, backend_context: BackendContext
    ) -> Iterator[OpenAIProvider]:
        settings = {
            "api_key": SECRET,
            "base_url": server.base_url,
            "timeout_seconds": self.timeout,
            "max_reply_mb": self.max_reply_mb,
        }
        provider = make_openai_provider(settings, backend_context)
        yield provider
        provider.close()

    @pytest.fixture
    def model(self) -> str:
        return "gpt-4o-mini"


@pytest.mark.live
@pytest.mark.skipif(not os.environ.get("OPENAI_API_KEY"), reason="OPENAI_API_KEY is not set")
class TestOpenAILiveContract(ProviderContract):
    timeout = 60.0
    secret = os.environ.get("OPENAI_API_KEY")

    @pytest.fixture
    def server(self) -> None:
        return None

    @pytest.fixture
    def provider(self, backend_context: BackendContext) -> Iterator[OpenAIProvider]:
        provider = make_openai_provider({"timeout_seconds": self.timeout}, backend_context)
        yield provider
        provider.close()

    @pytest.fixture
    def model(self) -> str:
        return os.environ.get("QUESTFOUNDRY_LIVE_OPENAI_MODEL", "gpt-4o-mini")


# ---------------------------------------------------------------------- fixtures and helpers


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=SECRET) as server:
        yield server


def build(server: FakeOpenAI, context: BackendContext, **settings: Any) -> OpenAIProvider:
    return make_openai_provider(
        {"api_key": SECRET, "base_url": server.base_url, "timeout_seconds": 2, **settings},
        context,
    )


@pytest.fixture
def provider(server: FakeOpenAI, backend_context: BackendContext) -> Iterator[OpenAIProvider]:
    provider = build(server, backend_context)
    yield provider
    provider.close()


def ask(text: str, **changes: Any) -> ProviderRequest:
    fields: dict[str, Any] = {"model": "gpt-4o-mini", "messages": (Message("user", text),)}
    fields.update(changes)
    return ProviderRequest(**fields)


def image_request(model: str = "dall-e-3", **params: Any) -> ProviderRequest:
    return ProviderRequest(model=model, prompt="a lighthouse at dusk", kind="image", params=params)


# ---------------------------------------------------------------------- settings


def test_missing_api_key_fails_at_start_naming_the_config_path_and_env_var(
    monkeypatch: pytest.MonkeyPatch, backend_context: BackendContext
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError) as caught:
        make_openai_provider({"model": "gpt-4o"}, backend_context)
    assert caught.value.path == "providers.text.openai.api_key"
    assert "OPENAI_API_KEY" in str(caught.value)


def test_empty_api_key_counts_as_missing(
    monkeypatch: pytest.MonkeyPatch, backend_context: BackendContext
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"providers\.text\.openai\.api_key"):
        make_openai_provider({"api_key": "  "}, backend_context)


def test_api_key_falls_back_to_the_environment(
    monkeypatch: pytest.MonkeyPatch, backend_context: BackendContext
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    with FakeOpenAI(api_key="sk-from-env") as server:
        provider = make_openai_provider({"base_url": server.base_url}, backend_context)
        try:
            assert provider.generate(ask("hello")).text
        finally:
            provider.close()
        assert server.requests[-1].headers["authorization"] == "Bearer sk-from-env"


def test_zero_timeout_is_a_config_error(backend_context: BackendContext) -> None:
    with pytest.raises(ConfigError, match=r"providers\.text\.openai\.timeout_seconds"):
        make_openai_provider({"api_key": SECRET, "timeout_seconds": 0}, backend_context)


def test_repr_never_shows_the_api_key(provider: OpenAIProvider) -> None:
    assert SECRET not in repr(provider)
    assert SECRET not in repr(provider.settings)


def test_plugin_is_discovered_through_its_entry_point(backend_context: BackendContext) -> None:
    manager = get_plugin_manager(env={"QUESTFOUNDRY_LOAD_PLUGINS": "provider-openai"})
    registration = manager.get("provider", "openai")
    assert registration.distribution == "questfoundry-provider-openai"
    assert registration.factory is make_openai_provider


@pytest.mark.slow
def test_importing_the_plugin_module_does_not_import_the_sdk() -> None:
    code = "import sys, questfoundry_provider_openai.plugin; print('openai' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


# ---------------------------------------------------------------------- what is sent


def test_calls_go_to_the_configured_base_url(
    server: FakeOpenAI, backend_context: BackendContext
) -> None:
    with FakeOpenAI(api_key=SECRET) as other:
        provider = build(other, backend_context)
        try:
            provider.generate(ask("where do you go?"))
        finally:
            provider.close()
        assert [r.path for r in other.requests] == ["/v1/chat/completions"]
    assert server.requests == []


def test_organization_is_sent_as_a_header(
    server: FakeOpenAI, backend_context: BackendContext
) -> None:
    provider = build(server, backend_context, organization="org-questfoundry")
    try:
        provider.generate(ask("hello"))
    finally:
        provider.close()
    assert server.requests[-1].headers["openai-organization"] == "org-questfoundry"


def test_generation_parameters_reach_the_server(
    provider: OpenAIProvider, server: FakeOpenAI
) -> None:
    params = {"temperature": 0.3, "top_p": 0.9, "stop": ["\n\n"], "seed": 7, "max_tokens": 50}
    provider.generate(ask("hello", params=params))
    body = server.requests[-1].body
    assert body["temperature"] == 0.3
    assert body["top_p"] == 0.9
    assert body["stop"] == ["\n\n"]
    assert body["seed"] == 7
    assert body["max_tokens"] == 50, "an OpenAI-compatible server gets max_tokens"
    assert body["messages"] == [{"role": "user", "content": "hello"}]


def test_openai_itself_gets_max_completion_tokens(backend_context: BackendContext) -> None:
    provider = make_openai_provider({"api_key": SECRET}, backend_context)
    body = provider.chat_arguments(ask("hello", params={"max_tokens": 50}))["body"]
    assert body["max_completion_tokens"] == 50
    assert "max_tokens" not in body


@pytest.mark.parametrize("face", ["sync", "async", "stream"])
def test_a_chat_call_sends_the_api_key_and_no_admin_key_from_the_environment(
    provider: OpenAIProvider, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, face: str
) -> None:
    monkeypatch.setenv("OPENAI_ADMIN_KEY", "sk-admin-never-sent")
    request = ask("hello")
    if face == "sync":
        provider.generate(request)
    elif face == "async":
        asyncio.run(provider.agenerate(request))
    else:
        assert "".join(chunk.text for chunk in provider.stream(request))
    assert server.requests[-1].headers["authorization"] == f"Bearer {SECRET}"


def test_prompt_follows_the_messages_as_the_last_user_message(
    provider: OpenAIProvider, server: FakeOpenAI
) -> None:
    request = ask("first", prompt="and then")
    provider.generate(request)
    assert server.requests[-1].body["messages"][-1] == {"role": "user", "content": "and then"}


def test_request_without_messages_or_prompt_is_refused_without_a_call(
    provider: OpenAIProvider, server: FakeOpenAI
) -> None:
    with pytest.raises(NonRetriableProviderError, match="no messages"):
        provider.generate(ask("", messages=()))
    assert server.requests == []


def test_max_tokens_cut_is_reported_as_length(provider: OpenAIProvider) -> None:
    reply = provider.generate(ask("a long story about the sea " * 10, params={"max_tokens": 5}))
    assert reply.finish_reason == "length"
    assert reply.usage.output_tokens <= 5


# ---------------------------------------------------------------------- usage


def test_cached_prompt_tokens_are_mapped_to_cached_input(provider: OpenAIProvider) -> None:
    long_prompt = "The lighthouse keeper's logbook, page after page. " * 100
    first = provider.generate(ask(long_prompt))
    second = provider.generate(ask(long_prompt))
    assert first.usage.cached_input_tokens == 0
    assert second.usage.cached_input_tokens > 0
    assert second.usage.cached_input_tokens % 128 == 0
    assert second.usage.cached_input_tokens <= second.usage.input_tokens


def test_streamed_usage_includes_cached_tokens(provider: OpenAIProvider) -> None:
    long_prompt = "Chapter one of the harbour chronicle. " * 120
    provider.generate(ask(long_prompt))
    chunks = list(provider.stream(ask(long_prompt)))
    usage = chunks[-1].usage
    assert usage is not None and usage.cached_input_tokens > 0


def test_stream_asks_for_usage(provider: OpenAIProvider, server: FakeOpenAI) -> None:
    list(provider.stream(ask("hello")))
    body = server.requests[-1].body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_abandoned_stream_leaves_the_provider_usable(provider: OpenAIProvider) -> None:
    chunks = provider.stream(ask("a story in several pieces"))
    first = next(chunks)
    chunks.close()  # type: ignore[attr-defined]
    assert first.text
    assert provider.generate(ask("again")).text


# ---------------------------------------------------------------------- images


def test_image_call_returns_png_bytes_asked_as_base64(
    provider: OpenAIProvider, server: FakeOpenAI
) -> None:
    reply = provider.generate(image_request(size="1024x1024", quality="hd", style="vivid"))
    assert reply.image is not None and reply.image.startswith(PNG_SIGNATURE)
    assert reply.text is None
    body = server.requests[-1].body
    assert server.requests[-1].path == "/v1/images/generations"
    assert body["response_format"] == "b64_json"
    assert (body["size"], body["quality"], body["style"]) == ("1024x1024", "hd", "vivid")


def test_same_image_prompt_gives_the_same_image_and_another_prompt_another(
    provider: OpenAIProvider,
) -> None:
    first = provider.generate(image_request()).image
    assert first == provider.generate(image_request()).image
    other = ProviderRequest(model="dall-e-3", prompt="a harbour at dawn", kind="image")
    assert provider.generate(other).image != first


def test_image_defaults_come_from_settings(
    server: FakeOpenAI, backend_context: BackendContext
) -> None:
    provider = build(server, backend_context, size="512x512", quality="standard")
    try:
        provider.generate(image_request(quality="hd"))
    finally:
        provider.close()
    body = server.requests[-1].body
    assert (body["size"], body["quality"]) == ("512x512", "hd")


def test_gpt_image_models_are_not_sent_response_format_and_report_usage(
    provider: OpenAIProvider, server: FakeOpenAI
) -> None:
    reply = provider.generate(image_request("gpt-image-1"))
    assert "response_format" not in server.requests[-1].body
    assert reply.image is not None and reply.image.startswith(PNG_SIGNATURE)
    assert reply.usage.input_tokens > 0 and reply.usage.output_tokens > 0


async def test_async_image_call_returns_png_bytes(provider: OpenAIProvider) -> None:
    reply = await provider.agenerate(image_request())
    assert reply.image is not None and reply.image.startswith(PNG_SIGNATURE)
    await provider.aclose()


def test_image_fault_is_classified(provider: OpenAIProvider, server: FakeOpenAI) -> None:
    server.fail_next(Fault.RATE_LIMIT)
    with pytest.raises(ProviderRateLimitError):
        provider.generate(image_request())
    assert len(server.requests) == 1


def test_streaming_an_image_call_is_refused(provider: OpenAIProvider) -> None:
    with pytest.raises(NonRetriableProviderError):
        list(provider.stream(image_request()))


# ---------------------------------------------------------------------- errors


def test_rate_limit_reads_fractional_retry_after(
    provider: OpenAIProvider, server: FakeOpenAI
) -> None:
    server.retry_after = 0.25
    server.fail_next(Fault.RATE_LIMIT)
    with pytest.raises(ProviderRateLimitError) as caught:
        provider.generate(ask("hello"))
    assert caught.value.retry_after == pytest.approx(0.25)


def test_wrong_api_key_is_not_retriable_and_not_revealed(
    server: FakeOpenAI, backend_context: BackendContext
) -> None:
    wrong = "sk-wrong-key-abcdefabcdefabcdefabcdef"
    provider = make_openai_provider(
        {"api_key": wrong, "base_url": server.base_url}, backend_context
    )
    try:
        with pytest.raises(NonRetriableProviderError) as caught:
            provider.generate(ask("hello"))
    finally:
        provider.close()
    assert caught.value.status_code == 401
    assert wrong not in str(caught.value)


class _ProxyInFront(FakeOpenAI):
    """A proxy that answers 502 with an HTML page, or a reply with no choices."""

    def chat_completions(self, request: RecordedRequest) -> Response:
        if request.body["messages"][-1]["content"] == "empty":
            return Response(json={"id": "x", "object": "chat.completion", "choices": []})
        page = b"<html>\n<body>\n<h1>502 Bad Gateway</h1>\n</body>\n</html>"
        return Response(status=502, body=page, content_type="text/html")


def test_html_gateway_error_is_retriable_with_a_one_line_message(
    backend_context: BackendContext,
) -> None:
    with _ProxyInFront(api_key=SECRET) as proxy:
        provider = build(proxy, backend_context)
        try:
            with pytest.raises(RetriableProviderError) as caught:
                provider.generate(ask("hello"))
            with pytest.raises(RetriableProviderError, match="no choices"):
                provider.generate(ask("empty"))
        finally:
            provider.close()
    assert caught.value.status_code == 502
    assert "\n" not in str(caught.value)
    assert "502 Bad Gateway" in str(caught.value)


def test_retry_after_prefers_milliseconds_then_seconds_then_a_date() -> None:
    assert retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after({"retry-after": "9"}) == 9.0
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None  # past: back off
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None


def test_a_failed_call_keeps_the_status_and_request_id_but_no_exception_chain(
    provider: OpenAIProvider, server: FakeOpenAI
) -> None:
    server.fail_next(Fault.UNAUTHORIZED)
    with pytest.raises(NonRetriableProviderError) as caught:
        provider.generate(ask("with a bad key"))
    assert caught.value.status_code == 401
    assert caught.value.request_id is not None and caught.value.request_id.startswith("req_")
    assert caught.value.__cause__ is None and caught.value.__context__ is None


def test_clean_masks_the_key_and_keys_echoed_by_openai() -> None:
    echoed = "Incorrect API key provided: sk-proj-abc*********xyz.\nSee the docs."
    assert clean(echoed, SECRET) == "Incorrect API key provided: ***. See the docs."
    assert SECRET not in clean(f"failed for {SECRET}", SECRET)
    assert len(clean("x" * 1000, SECRET)) <= 300


# ---------------------------------------------------------------------- clients


def test_one_pooled_connection_serves_many_calls(
    provider: OpenAIProvider, server: FakeOpenAI
) -> None:
    for n in range(5):
        provider.generate(ask(f"call {n}"))
    assert server.served == 5
    assert provider._client is not None  # one client, made once and kept


def test_closed_provider_makes_a_new_client_on_next_use(provider: OpenAIProvider) -> None:
    provider.generate(ask("before"))
    provider.close()
    assert provider.generate(ask("after")).text


def test_async_calls_work_from_successive_event_loops(provider: OpenAIProvider) -> None:
    first = asyncio.run(provider.agenerate(ask("loop one")))
    second = asyncio.run(provider.agenerate(ask("loop two")))
    assert first.text and second.text and first.text != second.text


def wait_for_no_connections(server: FakeOpenAI) -> int:
    """The fake's open connections once closes have reached it (a hang-up takes a moment)."""
    deadline = time.monotonic() + 2
    while server.open_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    return server.open_connections


def test_close_releases_the_connections_of_an_idle_event_loop(
    provider: OpenAIProvider, server: FakeOpenAI
) -> None:
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(provider.agenerate(ask("from an idle loop")))
        assert server.open_connections == 1, "the pooled connection stays open between calls"
        provider.close()
        assert wait_for_no_connections(server) == 0
    finally:
        loop.close()


def test_an_ended_event_loop_has_closed_its_connections(
    provider: OpenAIProvider, server: FakeOpenAI
) -> None:
    asyncio.run(provider.agenerate(ask("from a loop that ends")))
    assert wait_for_no_connections(server) == 0


async def test_close_from_async_code_closes_the_connections_on_their_loop(
    provider: OpenAIProvider, server: FakeOpenAI
) -> None:
    await provider.agenerate(ask("from a running loop"))
    assert server.open_connections == 1
    provider.close()
    for _ in range(100):  # let the loop run the scheduled close; no time needs to pass
        await asyncio.sleep(0)
        if not server.open_connections:
            break
    assert await asyncio.to_thread(wait_for_no_connections, server) == 0


# ---------------------------------------------------------------------- the fake, seen by the SDK


def test_fake_streams_usage_only_when_asked(server: FakeOpenAI) -> None:
    client = openai.OpenAI(api_key=SECRET, base_url=server.base_url, max_retries=0)
    try:
        messages: Any = [{"role": "user", "content": "hello"}]
        plain = list(client.chat.completions.create(model="m", messages=messages, stream=True))
        counted = list(
            client.chat.completions.create(
                model="m", messages=messages, stream=True, stream_options={"include_usage": True}
            )
        )
    finally:
        client.close()
    assert all(chunk.usage is None for chunk in plain)
    assert counted[-1].choices == [] and counted[-1].usage is not None
    assert all(chunk.usage is None for chunk in counted[:-1])
    assert plain[-1].choices[0].finish_reason == "stop"


def test_fake_answers_an_image_url_when_asked(server: FakeOpenAI) -> None:
    client = openai.OpenAI(api_key=SECRET, base_url=server.base_url, max_retries=0)
    try:
        images = client.images.generate(model="dall-e-2", prompt="a fox", response_format="url")
    finally:
        client.close()
    assert images.data is not None
    assert images.data[0].url and images.data[0].url.startswith(server.url)
    assert images.data[0].b64_json is None
