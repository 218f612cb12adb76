"""The ``gemini`` provider, driven through the real ``google-genai`` SDK over real HTTP.

Every test talks to :class:`~questfoundry.testing.fakes.FakeGemini` on 127.0.0.1 (nothing patches
the SDK), except the ``live`` class, which runs the same contract against Google's API when
``GEMINI_API_KEY`` is set.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

import pytest
from questfoundry_provider_gemini import plugin
from questfoundry_provider_gemini.plugin import make_gemini_provider
from questfoundry_provider_gemini.provider import GeminiProvider
from questfoundry_provider_gemini.settings import DEFAULT_MODEL, GeminiSettings

from questfoundry.kit import (
    BackendContext,
    Capability,
    ConfigError,
    Message,
    NonRetriableProviderError,
    ProviderRateLimitError,
    ProviderRequest,
    RetriableProviderError,
)
from questfoundry.kit.retry_after import parse_retry_after
from questfoundry.testing.app import get_plugin_manager
from questfoundry.testing.fakes import Fault
from questfoundry.testing.fakes.base import RecordedRequest, Response, estimate_tokens, sse_event
from questfoundry.testing.fakes.gemini import FakeGemini
from questfoundry.testing.provider_contract import ProviderContract

MODEL = "gemini-2.5-flash"
SECRET = "AIzaSy-test-secret-0123456789"


@pytest.fixture
def fake() -> Iterator[FakeGemini]:
    with FakeGemini(api_key=SECRET) as server:
        yield server


@pytest.fixture
def gemini(fake: FakeGemini, backend_context: BackendContext) -> Iterator[GeminiProvider]:
    provider = make_gemini_provider(
        {"api_key": SECRET, "base_url": fake.url, "timeout_seconds": 5}, backend_context
    )
    yield provider
    provider.close()


def ask(prompt: str = "Describe the lighthouse.", **fields: Any) -> ProviderRequest:
    return ProviderRequest(model=fields.pop("model", MODEL), prompt=prompt, **fields)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# ---------------------------------------------------------------------- the contract


class TestGeminiContract(ProviderContract):
    secret = SECRET

    @pytest.fixture
    def server(self) -> Iterator[FakeGemini]:
        with FakeGemini(api_key=SECRET) as server:
            yield server

    @pytest.fixture
    async def provider(
        self, server: FakeGemini, backend_context: BackendContext
    ) -> AsyncIterator[GeminiProvider]:
        settings = {
            "api_key": SECRET,
            "base_url": server.url,
            "timeout_seconds": self.timeout,
            "max_reply_mb": self.max_reply_mb,
        }
        provider = make_gemini_provider(settings, backend_context)
        yield provider
        await provider.aclose()

    @pytest.fixture
    def model(self) -> str:
        return MODEL


@pytest.mark.live
@pytest.mark.skipif(not os.environ.get("GEMINI_API_KEY"), reason="GEMINI_API_KEY is not set")
class TestGeminiLive(ProviderContract):
    """The same contract against Google's API; fault tests skip without the fake."""

    timeout = 60.0
    secret = os.environ.get("GEMINI_API_KEY")

    @pytest.fixture
    def server(self) -> None:
        return None

    @pytest.fixture
    async def provider(self, backend_context: BackendContext) -> AsyncIterator[GeminiProvider]:
        provider = make_gemini_provider({"timeout_seconds": self.timeout}, backend_context)
        yield provider
        await provider.aclose()

    @pytest.fixture
    def model(self) -> str:
        # a model that does not think by default, so 32 output tokens hold an answer
        return os.environ.get("GEMINI_LIVE_MODEL", "gemini-2.5-flash-lite")


# ---------------------------------------------------------------------- what goes on the wire


@pytest.mark.slow
def test_system_messages_become_the_system_instruction(
    gemini: GeminiProvider, fake: FakeGemini
) -> None:
    messages = (
        Message("system", "You are the plotwright."),
        Message("user", "Outline chapter one."),
        Message("system", "Answer in English."),
    )
    gemini.generate(ProviderRequest(model=MODEL, messages=messages))
    body = fake.requests[-1].body
    assert body["systemInstruction"]["parts"] == [
        {"text": "You are the plotwright.\n\nAnswer in English."}
    ]
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Outline chapter one."}]}]


@pytest.mark.slow
def test_assistant_turns_are_sent_with_role_model(gemini: GeminiProvider, fake: FakeGemini) -> None:
    messages = (
        Message("user", "Name the ship."),
        Message("assistant", "The Albatross."),
        Message("user", "Its captain?"),
    )
    gemini.generate(ProviderRequest(model=MODEL, messages=messages))
    roles = [content["role"] for content in fake.requests[-1].body["contents"]]
    assert roles == ["user", "model", "user"]


@pytest.mark.slow
def test_a_prompt_after_messages_is_the_last_user_turn(
    gemini: GeminiProvider, fake: FakeGemini
) -> None:
    gemini.generate(ask("And then?", messages=(Message("user", "Once upon a time"),)))
    texts = [content["parts"][0]["text"] for content in fake.requests[-1].body["contents"]]
    assert texts == ["Once upon a time", "And then?"]


def test_generation_parameters_are_renamed_into_generation_config(
    gemini: GeminiProvider, fake: FakeGemini
) -> None:
    params = {"temperature": 0.3, "max_tokens": 64, "top_p": 0.9, "stop": "THE END", "seed": 7}
    gemini.generate(ask(params=params))
    assert fake.requests[-1].body["generationConfig"] == {
        "temperature": 0.3,
        "maxOutputTokens": 64,
        "topP": 0.9,
        "stopSequences": ["THE END"],
        "seed": 7,
    }


@pytest.mark.slow
def test_parameters_gemini_does_not_know_are_left_out(
    gemini: GeminiProvider, fake: FakeGemini
) -> None:
    gemini.generate(
        ask(params={"size": "1024x1024", "user": "u1", "temperature": None, "top_k": 20})
    )
    assert fake.requests[-1].body["generationConfig"] == {"topK": 20}


def test_the_model_comes_from_settings_when_the_request_names_none(
    fake: FakeGemini, backend_context: BackendContext
) -> None:
    settings = {"api_key": SECRET, "base_url": fake.url, "model": "gemini-2.5-pro"}
    provider = make_gemini_provider(settings, backend_context)
    reply = provider.generate(ask(model=""))
    assert fake.requests[-1].path == "/v1beta/models/gemini-2.5-pro:generateContent"
    assert reply.model == "gemini-2.5-pro"
    provider.close()


@pytest.mark.slow
def test_the_api_key_travels_in_a_header_never_in_the_url(
    gemini: GeminiProvider, fake: FakeGemini
) -> None:
    gemini.generate(ask())
    list(gemini.stream(ask()))
    for request in fake.requests:
        assert request.headers["x-goog-api-key"] == SECRET
        assert SECRET not in request.path and SECRET not in str(request.query)
    assert fake.requests[-1].path == f"/v1beta/models/{MODEL}:streamGenerateContent"
    assert fake.requests[-1].query == {"alt": "sse"}


def test_a_rejected_key_fails_at_once_without_showing_the_key(
    backend_context: BackendContext,
) -> None:
    wrong = "AIzaSy-wrong-key-9876543210"
    with FakeGemini(api_key=SECRET) as server:
        provider = make_gemini_provider({"api_key": wrong, "base_url": server.url}, backend_context)
        with pytest.raises(NonRetriableProviderError) as caught:
            provider.generate(ask())
        provider.close()
    assert caught.value.status_code == 400
    assert "API key not valid" in str(caught.value)
    assert wrong not in str(caught.value) and wrong not in repr(caught.value.args)
    assert len(server.requests) == 1


IMAGE_MODEL = "gemini-2.5-flash-image"


@pytest.mark.slow
def test_an_image_call_returns_png_bytes_from_an_image_model(
    gemini: GeminiProvider, fake: FakeGemini
) -> None:
    params = {"aspect_ratio": "16:9", "temperature": 0.5}
    reply = gemini.generate(
        ask("A lighthouse at dusk", kind="image", model=IMAGE_MODEL, params=params)
    )
    assert reply.image is not None and reply.image.startswith(b"\x89PNG\r\n\x1a\n")
    assert reply.text is None and reply.model == IMAGE_MODEL
    assert reply.usage.output_tokens == 1290 and reply.usage.input_tokens > 0
    config = fake.requests[-1].body["generationConfig"]
    assert config["responseModalities"] == ["IMAGE"]
    assert config["imageConfig"] == {"aspectRatio": "16:9"}
    assert fake.requests[-1].path.endswith(f"/models/{IMAGE_MODEL}:generateContent")


@pytest.mark.asyncio
async def test_image_bytes_are_deterministic_and_depend_on_the_prompt(
    gemini: GeminiProvider,
) -> None:
    first = gemini.generate(ask("A lighthouse at dusk", kind="image", model=IMAGE_MODEL))
    again = await gemini.agenerate(ask("A lighthouse at dusk", kind="image", model=IMAGE_MODEL))
    other = gemini.generate(ask("A harbour at dawn", kind="image", model=IMAGE_MODEL))
    assert first.image == again.image and first.usage == again.usage
    assert other.image != first.image


def test_streaming_an_image_call_is_refused_before_anything_is_sent(
    gemini: GeminiProvider, fake: FakeGemini
) -> None:
    with pytest.raises(NonRetriableProviderError, match="only text calls can be streamed"):
        list(gemini.stream(ask("A lighthouse at dusk", kind="image")))
    assert fake.requests == []


class TextOnlyGemini(FakeGemini):
    """A model that answers an image request with words only, as a text model does."""

    def _generate(self, request: RecordedRequest) -> Response:
        part = {"text": "I cannot draw."}
        candidate = {"content": {"parts": [part], "role": "model"}, "finishReason": "STOP"}
        return Response(json={"candidates": [candidate]})


def test_a_reply_without_an_image_is_a_clear_error(backend_context: BackendContext) -> None:
    with TextOnlyGemini() as server:
        provider = make_gemini_provider(
            {"api_key": SECRET, "base_url": server.url}, backend_context
        )
        with pytest.raises(NonRetriableProviderError, match=r"returned no image \(stop\); is the"):
            provider.generate(ask("A lighthouse", kind="image"))
        provider.close()


def test_a_request_with_only_a_system_message_is_refused_before_sending(
    gemini: GeminiProvider, fake: FakeGemini
) -> None:
    request = ProviderRequest(model=MODEL, messages=(Message("system", "Be brief."),))
    with pytest.raises(NonRetriableProviderError, match="at least one user message"):
        gemini.generate(request)
    assert fake.requests == []


def test_an_invalid_parameter_value_is_refused_before_sending(
    gemini: GeminiProvider, fake: FakeGemini
) -> None:
    with pytest.raises(NonRetriableProviderError, match="temperature"):
        gemini.generate(ask(params={"temperature": "hot"}))
    assert fake.requests == []


# ---------------------------------------------------------------------- what comes back


def test_usage_maps_prompt_candidates_and_cached_tokens(backend_context: BackendContext) -> None:
    preamble = "The lighthouse keeper's log, day one. " * 20
    with FakeGemini(cache_min_tokens=50) as server:
        provider = make_gemini_provider(
            {"api_key": SECRET, "base_url": server.url}, backend_context
        )
        first = provider.generate(ask(preamble + "What did he see?"))
        second = provider.generate(ask(preamble + "What did he hear?"))
        provider.close()
    prompt = preamble + "What did he hear?"
    assert second.usage.input_tokens == estimate_tokens(prompt)  # promptTokenCount as reported
    assert second.usage.output_tokens == estimate_tokens(second.text or "")
    assert first.usage.cached_input_tokens == 0
    assert second.usage.cached_input_tokens >= 50
    assert second.usage.cached_input_tokens < second.usage.input_tokens


def test_max_tokens_cuts_the_reply_and_reads_as_length(
    gemini: GeminiProvider, fake: FakeGemini
) -> None:
    full = gemini.generate(ask())
    cut = gemini.generate(ask(params={"max_tokens": 2}))
    assert full.finish_reason == "stop"
    assert cut.finish_reason == "length"
    assert cut.text and full.text and full.text.startswith(cut.text) and cut.text != full.text
    assert cut.usage.output_tokens <= 2


class ThinkingGemini(FakeGemini):
    """Answers like a thinking model: a thought part before the answer, and thinking tokens."""

    def _generate(self, request: RecordedRequest) -> Response:
        parts = [{"text": "Let me think about ships.", "thought": True}, {"text": "The Albatross."}]
        usage = {"promptTokenCount": 9, "candidatesTokenCount": 4, "thoughtsTokenCount": 30}
        return Response(
            json={
                "candidates": [
                    {"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}
                ],
                "usageMetadata": {**usage, "totalTokenCount": 43},
            }
        )


def test_thoughts_are_left_out_of_the_text_but_billed_as_output(
    backend_context: BackendContext,
) -> None:
    with ThinkingGemini() as server:
        provider = make_gemini_provider(
            {"api_key": SECRET, "base_url": server.url}, backend_context
        )
        reply = provider.generate(ask())
        provider.close()
    assert reply.text == "The Albatross."
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (9, 34)


class BlockingGemini(FakeGemini):
    """Refuses every prompt the way Gemini does: prompt feedback and no candidate."""

    def _generate(self, request: RecordedRequest) -> Response:
        usage = {"promptTokenCount": 5, "totalTokenCount": 5}
        return Response(json={"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": usage})


def test_a_blocked_prompt_is_not_worth_retrying(backend_context: BackendContext) -> None:
    with BlockingGemini() as server:
        provider = make_gemini_provider(
            {"api_key": SECRET, "base_url": server.url}, backend_context
        )
        with pytest.raises(NonRetriableProviderError, match="blocked the prompt"):
            provider.generate(ask())
        provider.close()


def test_a_stream_abandoned_early_leaves_the_provider_usable(
    gemini: GeminiProvider, fake: FakeGemini
) -> None:
    stream = gemini.stream(ask())
    first = next(stream)
    assert isinstance(stream, Generator)
    stream.close()
    assert first.text
    assert gemini.generate(ask()).text


# ---------------------------------------------------------------------- failures


class QuotaGemini(FakeGemini):
    """A 429 like Google's own: no Retry-After header, the delay in a RetryInfo detail."""

    def _generate(self, request: RecordedRequest) -> Response:
        return self.error_response(429, "Quota exceeded for metric: requests.\n* limit: 15")


def test_rate_limit_without_retry_after_reads_retry_info(backend_context: BackendContext) -> None:
    with QuotaGemini(retry_after=17.5) as server:
        provider = make_gemini_provider(
            {"api_key": SECRET, "base_url": server.url}, backend_context
        )
        with pytest.raises(ProviderRateLimitError) as caught:
            provider.generate(ask())
        provider.close()
    assert caught.value.retry_after == pytest.approx(17.5)
    assert str(caught.value) == (
        "gemini: rate limited: Quota exceeded for metric: requests. * limit: 15 (HTTP 429)"
    )


def test_retry_after_may_be_an_http_date() -> None:
    in_a_minute = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))
    assert parse_retry_after(in_a_minute) == pytest.approx(60, abs=2)
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after("soon") is None


class FailingMidStream(FakeGemini):
    """Streams one chunk, then reports an error inside the stream, as Google does mid-flight."""

    def _stream(self, request: RecordedRequest) -> Response:
        chunk = {"candidates": [{"content": {"role": "model", "parts": [{"text": "Once"}]}}]}
        error = self.error_body(503, "The model is overloaded. Please try again later.")
        return Response(
            stream=[sse_event(chunk), sse_event(error)], content_type="text/event-stream"
        )


def test_an_error_inside_a_stream_is_retriable(backend_context: BackendContext) -> None:
    with FailingMidStream() as server:
        provider = make_gemini_provider(
            {"api_key": SECRET, "base_url": server.url}, backend_context
        )
        received = []
        with pytest.raises(RetriableProviderError, match="overloaded") as caught:
            for chunk in provider.stream(ask()):
                received.append(chunk.text)
        provider.close()
    assert received == ["Once"]
    assert caught.value.status_code == 503


@pytest.mark.parametrize("fault", [Fault.MALFORMED_JSON, Fault.SERVER_ERROR, Fault.NOT_FOUND])
def test_stream_faults_map_like_plain_calls(
    gemini: GeminiProvider, fake: FakeGemini, fault: Fault
) -> None:
    fake.fail_next(fault)
    expected = NonRetriableProviderError if fault is Fault.NOT_FOUND else RetriableProviderError
    with pytest.raises(expected):
        list(gemini.stream(ask()))
    assert len(fake.requests) == 1


@pytest.mark.slow
def test_a_request_timeout_overrides_the_configured_one(
    fake: FakeGemini, backend_context: BackendContext
) -> None:
    fake.slow_seconds = 3.0
    settings = {"api_key": SECRET, "base_url": fake.url, "timeout_seconds": 30}
    provider = make_gemini_provider(settings, backend_context)
    fake.fail_next(Fault.SLOW)
    started = time.monotonic()
    with pytest.raises(RetriableProviderError, match=r"no complete reply within 0\.3 s"):
        provider.generate(ask(timeout=0.3))
    assert time.monotonic() - started < 2.0
    provider.close()


def test_an_unreachable_server_is_retriable_in_one_line(backend_context: BackendContext) -> None:
    base_url = f"http://127.0.0.1:{_closed_port()}"
    provider = make_gemini_provider({"api_key": SECRET, "base_url": base_url}, backend_context)
    for call in (provider.generate, lambda request: list(provider.stream(request))):
        with pytest.raises(
            RetriableProviderError, match=f"connection to {base_url} failed"
        ) as caught:
            call(ask())
        assert "\n" not in str(caught.value)
        assert SECRET not in str(caught.value)
    provider.close()


async def test_an_unreachable_server_is_retriable_from_async_calls(
    backend_context: BackendContext,
) -> None:
    base_url = f"http://127.0.0.1:{_closed_port()}"
    provider = make_gemini_provider({"api_key": SECRET, "base_url": base_url}, backend_context)
    with pytest.raises(RetriableProviderError, match=f"connection to {base_url} failed"):
        await provider.agenerate(ask())
    with pytest.raises(RetriableProviderError, match=f"connection to {base_url} failed"):
        _ = [chunk async for chunk in provider.astream(ask())]
    await provider.aclose()


# ---------------------------------------------------------------------- settings and plugin


def test_a_missing_key_is_a_config_error_naming_the_path_and_the_env_var() -> None:
    with pytest.raises(ConfigError) as caught:
        GeminiSettings.from_mapping({"model": MODEL}, environ={})
    assert caught.value.path == "providers.text.gemini.api_key"
    assert "providers.text.gemini.api_key" in str(caught.value)
    assert "GEMINI_API_KEY" in str(caught.value)


def test_the_factory_refuses_to_build_without_a_key(
    monkeypatch: pytest.MonkeyPatch, backend_context: BackendContext
) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="GEMINI_API_KEY"):
        make_gemini_provider({"api_key": ""}, backend_context)


@pytest.mark.parametrize(
    ("configured", "environ", "expected"),
    [
        ("from-config", {"GEMINI_API_KEY": "gemini", "GOOGLE_API_KEY": "google"}, "from-config"),
        (None, {"GEMINI_API_KEY": "gemini", "GOOGLE_API_KEY": "google"}, "gemini"),
        ("  ", {"GOOGLE_API_KEY": "google"}, "google"),
    ],
    ids=["config-wins", "gemini-env-before-google-env", "blank-config-falls-back"],
)
def test_the_key_comes_from_config_then_gemini_then_google_env(
    configured: str | None, environ: dict[str, str], expected: str
) -> None:
    settings = GeminiSettings.from_mapping({"api_key": configured}, environ=environ)
    assert settings.api_key == expected


def test_settings_never_show_the_key() -> None:
    settings = GeminiSettings.from_mapping({"api_key": SECRET}, environ={})
    assert SECRET not in repr(settings)
    assert settings.model == DEFAULT_MODEL


@pytest.mark.parametrize(
    ("settings", "path"),
    [
        ({"timeout_seconds": 0}, "providers.text.gemini.timeout_seconds"),
        ({"timeout_seconds": "soon"}, "providers.text.gemini.timeout_seconds"),
        ({"model": 3}, "providers.text.gemini.model"),
        ({"api_key": 12345}, "providers.text.gemini.api_key"),
    ],
)
def test_bad_settings_name_their_path(settings: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        GeminiSettings.from_mapping({"api_key": SECRET, **settings}, environ={})
    assert caught.value.path == path


@pytest.mark.slow
def test_the_provider_declares_streaming_and_images(gemini: GeminiProvider) -> None:
    assert gemini.name == "gemini"
    assert Capability.STREAMING in gemini.capabilities
    assert Capability.IMAGES in gemini.capabilities


def test_the_plugin_registers_provider_gemini() -> None:
    manager = get_plugin_manager(builtins=False, entry_points=False, plugins=[("gemini", plugin)])
    assert manager.get("provider", "gemini").factory is make_gemini_provider


def test_the_installed_entry_point_provides_gemini() -> None:
    manager = get_plugin_manager(env={"QUESTFOUNDRY_LOAD_PLUGINS": "provider-gemini"})
    assert manager.get("provider", "gemini").distribution == "questfoundry-provider-gemini"


@pytest.mark.slow
def test_loading_the_plugin_does_not_import_google_genai() -> None:
    code = (
        "import sys, questfoundry_provider_gemini.plugin\n"
        "names = ('google.genai', 'httpx', 'httpx2', 'pydantic')\n"
        "loaded = [m for m in names if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
