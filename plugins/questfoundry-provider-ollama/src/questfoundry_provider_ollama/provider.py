"""The ``ollama`` provider: ``/api/chat`` through the official ``ollama`` client.

One :class:`ollama.Client` and one :class:`ollama.AsyncClient` per provider, each made on first
use and holding a pooled httpx client until :meth:`OllamaProvider.close` (or ``aclose``).
The SDK never retries (its httpx transport is built with no retries), which is what the gateway
wants: retries, with backoff, are the gateway's job.

The SDK shows neither response headers nor a per-request timeout, so two httpx event hooks (a public
httpx option the SDK passes through) fill the gap: a request hook applies the call's own timeout,
and a response hook remembers ``Retry-After`` for the error translation. Both talk through context
variables, so concurrent calls on threads or asyncio tasks never see each other's values.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

import httpx
import ollama

from questfoundry.errors import (
    NonRetriableProviderError,
    ProviderError,
    ProviderRateLimitError,
    RetriableProviderError,
)
from questfoundry.interfaces import Capability, Chunk, ProviderReply, ProviderRequest, Usage
from questfoundry.retry import parse_retry_after
from questfoundry_provider_ollama.settings import CONFIG_PATH, OllamaSettings

NAME = "ollama"

#: generic parameter names QuestFoundry uses → Ollama's option names
RENAMED_PARAMS: Mapping[str, str] = {"max_tokens": "num_predict"}
#: every option ``/api/chat`` accepts; parameters meant for other providers are left out
OPTION_NAMES = frozenset(ollama.Options.model_fields)
MAX_MESSAGE_LENGTH = 300

_call_timeout: ContextVar[float | None] = ContextVar("questfoundry_ollama_timeout", default=None)
_retry_after: ContextVar[str | None] = ContextVar("questfoundry_ollama_retry_after", default=None)


class OllamaProvider:
    """Chat with models served by Ollama; text only, streamed or whole."""

    name = NAME
    capabilities: frozenset[str] = frozenset({Capability.STREAMING})

    def __init__(self, settings: OllamaSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._client: ollama.Client | None = None
        self._async_client: ollama.AsyncClient | None = None
        self._closed = False

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    # ------------------------------------------------------------------ calls

    def generate(self, request: ProviderRequest) -> ProviderReply:
        call = self._call(request)
        with self._translating(request), _scoped(_call_timeout, request.timeout):
            response = self._sync_client().chat(**call, stream=False)
        return _reply(response, call["model"])

    async def agenerate(self, request: ProviderRequest) -> ProviderReply:
        call = self._call(request)
        with self._translating(request), _scoped(_call_timeout, request.timeout):
            response = await self._async_client_().chat(**call, stream=False)
        return _reply(response, call["model"])

    def stream(self, request: ProviderRequest) -> Generator[Chunk, None, None]:
        """Yield each piece of text as Ollama sends it, then one chunk with the usage."""
        call = self._call(request)
        with self._translating(request):
            parts = self._sync_client().chat(**call, stream=True)
            try:
                while True:
                    # The request goes out on the first ``next``; each ``next`` stands alone so
                    # the caller may resume the stream from another context.
                    with _scoped(_call_timeout, request.timeout):
                        part = next(parts, None)
                    if part is None:
                        raise _unfinished(self.base_url)
                    yield from _chunks(part)
                    if part.done:
                        return
            finally:
                _close_iterator(parts)

    async def astream(self, request: ProviderRequest) -> AsyncGenerator[Chunk, None]:
        """The asynchronous twin of :meth:`stream`."""
        call = self._call(request)
        with self._translating(request):
            parts = await self._async_client_().chat(**call, stream=True)
            try:
                while True:
                    with _scoped(_call_timeout, request.timeout):
                        part = await anext(parts, None)
                    if part is None:
                        raise _unfinished(self.base_url)
                    for chunk in _chunks(part):
                        yield chunk
                    if part.done:
                        return
            finally:
                await _aclose_iterator(parts)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the pooled sync client. Use :meth:`aclose` when the async methods were used."""
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
        if client is not None:
            client.close()  # type: ignore[no-untyped-call]  # the SDK leaves it unannotated

    async def aclose(self) -> None:
        """Close both pooled clients."""
        with self._lock:
            async_client, self._async_client = self._async_client, None
        self.close()
        if async_client is not None:
            await async_client.close()  # type: ignore[no-untyped-call]

    # ------------------------------------------------------------------ helpers

    def _call(self, request: ProviderRequest) -> dict[str, Any]:
        """The SDK's ``chat`` arguments, or a clear error for a request Ollama cannot serve."""
        if request.kind == "image":
            raise NonRetriableProviderError(
                "ollama provider does not generate images", provider=NAME
            )
        model = request.model or self.settings.model
        if not model:
            raise NonRetriableProviderError(
                f"no model given: set {CONFIG_PATH}.model or the role's model", provider=NAME
            )
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        if request.prompt is not None:
            messages.append({"role": "user", "content": request.prompt})
        if not messages:
            raise NonRetriableProviderError(
                "the request has no messages and no prompt", provider=NAME
            )
        call: dict[str, Any] = {"model": model, "messages": messages}
        options = build_options(request.params)
        if options:
            call["options"] = options
        return call

    def _sync_client(self) -> ollama.Client:
        with self._lock:
            self._check_open()
            if self._client is None:
                self._client = ollama.Client(
                    host=self.base_url,
                    timeout=self.settings.timeout_seconds,
                    event_hooks={"request": [_apply_timeout], "response": [_note_retry_after]},
                )
            return self._client

    def _async_client_(self) -> ollama.AsyncClient:
        with self._lock:
            self._check_open()
            if self._async_client is None:
                self._async_client = ollama.AsyncClient(
                    host=self.base_url,
                    timeout=self.settings.timeout_seconds,
                    event_hooks={
                        "request": [_aapply_timeout],
                        "response": [_anote_retry_after],
                    },
                )
            return self._async_client

    def _check_open(self) -> None:
        if self._closed:
            raise NonRetriableProviderError("the provider is closed", provider=NAME)

    @contextlib.contextmanager
    def _translating(self, request: ProviderRequest) -> Iterator[None]:
        """Turn whatever the SDK or httpx raises into the core's provider errors."""
        try:
            yield
        except ProviderError:
            raise
        except Exception as exc:
            timeout = request.timeout or self.settings.timeout_seconds
            raise translate_error(exc, self.base_url, timeout, _retry_after.get()) from exc


# ---------------------------------------------------------------------- request and reply


def build_options(params: Mapping[str, Any]) -> dict[str, Any]:
    """Ollama ``options`` from generation parameters.

    ``max_tokens`` becomes ``num_predict``; a single ``stop`` string becomes a list; any other
    parameter named like an Ollama option (``temperature``, ``top_p``, ``seed``, ``num_ctx``, …)
    passes as is, and an Ollama name wins over the generic one. Parameters Ollama has no option
    for (an image ``size``, say) are ignored: a role's parameters may be meant for another provider.
    """
    renamed = {RENAMED_PARAMS[k]: v for k, v in params.items() if k in RENAMED_PARAMS}
    direct = {k: v for k, v in params.items() if k in OPTION_NAMES}
    options = {k: v for k, v in {**renamed, **direct}.items() if v is not None}
    if isinstance(options.get("stop"), str):
        options["stop"] = [options["stop"]]
    return options


def _usage(part: ollama.ChatResponse) -> Usage:
    return Usage(input_tokens=part.prompt_eval_count or 0, output_tokens=part.eval_count or 0)


def _reply(response: ollama.ChatResponse, model: str) -> ProviderReply:
    return ProviderReply(
        model=response.model or model,
        text=response.message.content or "",
        usage=_usage(response),
        finish_reason=response.done_reason,
    )


def _chunks(part: ollama.ChatResponse) -> Iterator[Chunk]:
    """The text of one streamed message, and the usage when it is the last one."""
    if part.message.content:
        yield Chunk(text=part.message.content)
    if part.done:
        yield Chunk(usage=_usage(part))


def _unfinished(base_url: str) -> RetriableProviderError:
    return RetriableProviderError(
        f"the stream from Ollama at {base_url} ended before its final message", provider=NAME
    )


def _close_iterator(parts: Iterator[Any]) -> None:
    close = getattr(parts, "close", None)
    if close is not None:
        close()


async def _aclose_iterator(parts: AsyncIterator[Any]) -> None:
    aclose = getattr(parts, "aclose", None)
    if aclose is not None:
        await aclose()


# ---------------------------------------------------------------------- errors


def translate_error(
    exc: BaseException, base_url: str, timeout: float, retry_after: str | None = None
) -> ProviderError:
    """The core's error for what the SDK or httpx raised; every message is one line."""
    if isinstance(exc, ollama.ResponseError):
        return _from_status(exc.status_code, _one_line(str(exc.error)), retry_after)
    if isinstance(exc, (ConnectionError, httpx.ConnectError)):
        return RetriableProviderError(
            f"cannot connect to Ollama at {base_url}: is it running? (start it: ollama serve)",
            provider=NAME,
        )
    if isinstance(exc, httpx.TimeoutException):
        return RetriableProviderError(
            f"Ollama at {base_url} did not answer within {timeout:g}s", provider=NAME
        )
    if isinstance(exc, httpx.TransportError):
        detail = _one_line(str(exc)) or type(exc).__name__
        return RetriableProviderError(
            f"the connection to Ollama at {base_url} failed: {detail}", provider=NAME
        )
    if isinstance(exc, ollama.RequestError):
        return NonRetriableProviderError(_one_line(exc.error), provider=NAME)
    if isinstance(exc, (ValueError, TypeError)):  # bad JSON, or JSON of the wrong shape
        detail = _one_line(str(exc)) or type(exc).__name__
        return RetriableProviderError(
            f"Ollama at {base_url} sent a malformed response: {detail}", provider=NAME
        )
    return NonRetriableProviderError(
        f"unexpected {type(exc).__name__}: {_one_line(str(exc))}", provider=NAME
    )


def _from_status(status: int, message: str, retry_after: str | None) -> ProviderError:
    code = status if status > 0 else None  # -1: an error sent in the middle of a stream
    message = message or "no message"
    if status == 429:
        return ProviderRateLimitError(
            message, provider=NAME, retry_after=parse_retry_after(retry_after)
        )
    if code is None or status == 408 or status >= 500:
        return RetriableProviderError(message, provider=NAME, status_code=code)
    return NonRetriableProviderError(message, provider=NAME, status_code=code)


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_MESSAGE_LENGTH else line[: MAX_MESSAGE_LENGTH - 1] + "…"


# ---------------------------------------------------------------------- httpx hooks


@contextlib.contextmanager
def _scoped(var: ContextVar[float | None], value: float | None) -> Iterator[None]:
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


def _apply_timeout(request: httpx.Request) -> None:
    timeout = _call_timeout.get()
    if timeout is not None:
        request.extensions["timeout"] = httpx.Timeout(timeout).as_dict()


def _note_retry_after(response: httpx.Response) -> None:
    _retry_after.set(response.headers.get("retry-after"))


async def _aapply_timeout(request: httpx.Request) -> None:
    _apply_timeout(request)


async def _anote_retry_after(response: httpx.Response) -> None:
    _note_retry_after(response)
