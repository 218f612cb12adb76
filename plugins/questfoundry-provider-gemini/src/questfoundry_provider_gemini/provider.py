"""The ``gemini`` provider: ``models.generateContent`` through the official ``google-genai`` SDK.

Text, streamed or whole, and images from Gemini's image models (``kind="image"``: the same
``generateContent`` asking for the ``IMAGE`` modality; images are not streamed).

One ``genai.Client`` per provider: its sync side serves :meth:`generate` and :meth:`stream`, its
``aio`` side :meth:`agenerate` and :meth:`astream`, from any thread and any event loop. The SDK is
handed httpx clients that send through :mod:`questfoundry.kit.transport`'s transports: an attempt
ends at its deadline (``request.timeout``, else ``timeout_seconds``), a reply larger than
``max_reply_mb`` fails while it is read, and the async transport keeps one connection pool per
running loop, closed on that loop as it ends. The SDK's own retries are switched off (one attempt):
the gateway retries, passing its limiter each time, and a hidden second layer of retries would
multiply waits and spend. Errors leave with no exception chain: a server may echo the API key back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
from google import genai
from google.genai import types

from questfoundry.kit import (
    Capability,
    Chunk,
    ConfigError,
    NonRetriableProviderError,
    ProviderError,
    ProviderReply,
    ProviderRequest,
    Usage,
    async_transport,
    attempt,
    provider_error,
    register_secret,
    sync_transport,
)
from questfoundry_provider_gemini.failures import PROVIDER, translate
from questfoundry_provider_gemini.mapping import (
    finish_reason_of,
    image_of,
    text_of,
    to_config,
    to_contents,
    usage_of,
)
from questfoundry_provider_gemini.settings import CONFIG_PATH, GeminiSettings

#: the SDK takes httpx or httpx2 clients; httpx is the one the other providers share
FLAVOUR = "httpx"


@dataclass(frozen=True)
class _Call:
    """A request translated for the SDK."""

    model: str
    contents: list[types.ContentDict]
    config: types.GenerateContentConfig
    image: bool = False


class GeminiProvider:
    """Text and images from Gemini models; streams text; maps Google's failures onto the core's."""

    name = PROVIDER
    capabilities = frozenset({Capability.STREAMING, Capability.IMAGES})

    def __init__(self, settings: GeminiSettings) -> None:
        self.settings = settings
        register_secret(settings.api_key)
        seconds, cap = settings.timeout_seconds, settings.max_reply_bytes
        self._async_transport = async_transport(FLAVOUR, timeout=seconds, max_reply_bytes=cap)
        sending = sync_transport(FLAVOUR, timeout=seconds, max_reply_bytes=cap)
        self._http = httpx.Client(transport=sending, follow_redirects=True)
        self._async_http = httpx.AsyncClient(transport=self._async_transport, follow_redirects=True)
        options = types.HttpOptions(
            base_url=settings.base_url,
            api_version=settings.api_version,
            timeout=max(1, round(settings.timeout_seconds * 1000)),
            retry_options=types.HttpRetryOptions(attempts=1),
            httpx_client=self._http,
            httpx_async_client=self._async_http,
        )
        try:
            self._client = genai.Client(
                api_key=settings.api_key, vertexai=False, http_options=options
            )
        except ValueError as error:
            message = f"cannot set up the Gemini client: {error}"
            raise ConfigError(message, path=CONFIG_PATH) from None

    # ------------------------------------------------------------------ calls

    def generate(self, request: ProviderRequest) -> ProviderReply:
        try:
            call = self._prepare(request)
            with attempt(self._seconds(request)):
                response = self._client.models.generate_content(
                    model=call.model, contents=call.contents, config=call.config
                )
            return self._reply(call, response)
        except Exception as error:
            failure = self._translate(error)
            if failure is None:
                raise
        raise failure  # outside the handler: no chain leads back to the SDK's exception

    async def agenerate(self, request: ProviderRequest) -> ProviderReply:
        try:
            call = self._prepare(request)
            with attempt(self._seconds(request)):
                response = await self._client.aio.models.generate_content(
                    model=call.model, contents=call.contents, config=call.config
                )
            return self._reply(call, response)
        except Exception as error:
            failure = self._translate(error)
            if failure is None:
                raise
        raise failure

    def stream(self, request: ProviderRequest) -> Iterator[Chunk]:
        """Text chunks as they arrive, then one chunk carrying the usage of the whole call.

        The reply must start within the attempt's seconds, and each event follow the last as soon.
        """
        usage: Usage | None = None
        try:
            call = self._prepare(request, stream=True)
            responses = self._client.models.generate_content_stream(
                model=call.model, contents=call.contents, config=call.config
            )
            while True:
                with attempt(self._seconds(request), stream=True):  # sent on the first next
                    response = next(responses, None)
                if response is None:
                    break
                usage = usage_of(response.usage_metadata) or usage
                text = text_of(response)
                if text:
                    yield Chunk(text=text)
        except Exception as error:
            failure = self._translate(error)
            if failure is None:
                raise
        else:
            yield Chunk(usage=usage or Usage())
            return
        raise failure

    async def astream(self, request: ProviderRequest) -> AsyncIterator[Chunk]:
        """Async :meth:`stream`."""
        usage: Usage | None = None
        try:
            call = self._prepare(request, stream=True)
            with attempt(self._seconds(request), stream=True):
                responses = await self._client.aio.models.generate_content_stream(
                    model=call.model, contents=call.contents, config=call.config
                )
            while True:
                with attempt(self._seconds(request), stream=True):  # sent on the first
                    response = await anext(responses, None)
                if response is None:
                    break
                usage = usage_of(response.usage_metadata) or usage
                text = text_of(response)
                if text:
                    yield Chunk(text=text)
        except Exception as error:
            failure = self._translate(error)
            if failure is None:
                raise
        else:
            yield Chunk(usage=usage or Usage())
            return
        raise failure

    # ------------------------------------------------------------------ life cycle

    def close(self) -> None:
        """Close the sync connections, and every event loop's, each on its own loop."""
        self._http.close()
        self._async_transport.close()

    async def aclose(self) -> None:
        """Close both sides, the running loop's connections at once."""
        self.close()
        await self._async_http.aclose()

    # ------------------------------------------------------------------ helpers

    def _seconds(self, request: ProviderRequest) -> float:
        return request.timeout if request.timeout is not None else self.settings.timeout_seconds

    def _prepare(self, request: ProviderRequest, *, stream: bool = False) -> _Call:
        image = request.kind == "image"
        if image and stream:
            raise NonRetriableProviderError("only text calls can be streamed", provider=PROVIDER)
        contents, system = to_contents(request)
        config = to_config(request.params, system, request.timeout, image=image)
        return _Call(request.model or self.settings.model, contents, config, image)

    @staticmethod
    def _reply(call: _Call, response: types.GenerateContentResponse) -> ProviderReply:
        usage = usage_of(response.usage_metadata) or Usage()
        finish = finish_reason_of(response)
        if call.image:
            return ProviderReply(
                call.model, image=image_of(response), usage=usage, finish_reason=finish
            )
        return ProviderReply(call.model, text=text_of(response), usage=usage, finish_reason=finish)

    def _translate(self, error: Exception) -> ProviderError | None:
        """The core's error for what the SDK or its transport raised; None for a bug."""
        settings = self.settings
        return provider_error(error, PROVIDER) or translate(
            error, secret=settings.api_key, where=settings.endpoint
        )
