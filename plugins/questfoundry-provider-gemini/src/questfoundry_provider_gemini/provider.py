"""The ``gemini`` provider: ``models.generateContent`` through the official ``google-genai`` SDK.

One ``genai.Client`` per provider: its pooled sync transport serves :meth:`generate` and
:meth:`stream`, and its ``aio`` side serves :meth:`agenerate` and :meth:`astream`. The SDK's own
retries are switched off (one attempt): the gateway retries, passing its limiter each time, and a
hidden second layer of retries would multiply waits and spend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from google import genai
from google.genai import types

from questfoundry.errors import ConfigError, NonRetriableProviderError
from questfoundry.interfaces import Capability, Chunk, ProviderReply, ProviderRequest, Usage
from questfoundry_provider_gemini.failures import PROVIDER, translate
from questfoundry_provider_gemini.mapping import (
    finish_reason_of,
    text_of,
    to_config,
    to_contents,
    usage_of,
)
from questfoundry_provider_gemini.settings import CONFIG_PATH, GeminiSettings


@dataclass(frozen=True)
class _Call:
    """A request translated for the SDK."""

    model: str
    contents: list[types.Content]
    config: types.GenerateContentConfig


class GeminiProvider:
    """Text generation with Gemini models; streams, and maps Google's failures onto the core's."""

    name = PROVIDER
    capabilities = frozenset({Capability.STREAMING})

    def __init__(self, settings: GeminiSettings) -> None:
        self.settings = settings
        options = types.HttpOptions(
            base_url=settings.base_url,
            api_version=settings.api_version,
            timeout=max(1, round(settings.timeout_seconds * 1000)),
            retry_options=types.HttpRetryOptions(attempts=1),
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
        call = self._prepare(request)
        with self._errors_mapped():
            response = self._client.models.generate_content(
                model=call.model, contents=call.contents, config=call.config
            )
            return self._reply(call.model, response)

    async def agenerate(self, request: ProviderRequest) -> ProviderReply:
        call = self._prepare(request)
        with self._errors_mapped():
            response = await self._client.aio.models.generate_content(
                model=call.model, contents=call.contents, config=call.config
            )
            return self._reply(call.model, response)

    def stream(self, request: ProviderRequest) -> Iterator[Chunk]:
        """Text chunks as they arrive, then one chunk carrying the usage of the whole call."""
        call = self._prepare(request)
        usage: Usage | None = None
        with self._errors_mapped():
            responses = self._client.models.generate_content_stream(
                model=call.model, contents=call.contents, config=call.config
            )
            for response in responses:
                usage = usage_of(response.usage_metadata) or usage
                text = text_of(response)
                if text:
                    yield Chunk(text=text)
        yield Chunk(usage=usage or Usage())

    async def astream(self, request: ProviderRequest) -> AsyncIterator[Chunk]:
        """Async :meth:`stream`."""
        call = self._prepare(request)
        usage: Usage | None = None
        with self._errors_mapped():
            responses = await self._client.aio.models.generate_content_stream(
                model=call.model, contents=call.contents, config=call.config
            )
            async for response in responses:
                usage = usage_of(response.usage_metadata) or usage
                text = text_of(response)
                if text:
                    yield Chunk(text=text)
        yield Chunk(usage=usage or Usage())

    # ------------------------------------------------------------------ life cycle

    def close(self) -> None:
        """Close the sync transport (the async one needs :meth:`aclose`)."""
        self._client.close()

    async def aclose(self) -> None:
        """Close both transports."""
        await self._client.aio.aclose()
        self._client.close()

    # ------------------------------------------------------------------ helpers

    def _prepare(self, request: ProviderRequest) -> _Call:
        if request.kind != "text":
            raise NonRetriableProviderError(
                f"{request.kind} generation is not supported by Gemini here; use another provider",
                provider=PROVIDER,
            )
        contents, system = to_contents(request)
        config = to_config(request.params, system, request.timeout)
        return _Call(request.model or self.settings.model, contents, config)

    @staticmethod
    def _reply(model: str, response: types.GenerateContentResponse) -> ProviderReply:
        return ProviderReply(
            model=model,
            text=text_of(response),
            usage=usage_of(response.usage_metadata) or Usage(),
            finish_reason=finish_reason_of(response),
        )

    @contextmanager
    def _errors_mapped(self) -> Iterator[None]:
        """Re-raise the SDK's and the transport's errors as the core's provider errors."""
        try:
            yield
        except Exception as error:
            mapped = translate(error, secret=self.settings.api_key)
            if mapped is None or mapped is error:
                raise
            raise mapped from error
