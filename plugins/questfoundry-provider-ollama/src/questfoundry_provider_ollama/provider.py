"""The ``ollama`` provider: ``/api/chat`` through the official ``ollama`` client.

One :class:`ollama.Client` and one :class:`ollama.AsyncClient` per provider, each made on first use
and shared by every thread and event loop: the async client's transport keeps one connection pool
per running loop, closed on that loop as it ends (see :mod:`questfoundry.kit.transport`).
The SDK never retries (its httpx transport is built with no retries), which is what the gateway
wants: retries, with backoff, are the gateway's job.

The SDK passes extra keyword arguments to its httpx client, so each client sends through
:mod:`questfoundry.kit.transport`'s transport: an attempt ends at its deadline (``request.timeout``,
else ``timeout_seconds``), and a reply larger than ``max_reply_mb`` fails while it is read. The SDK
shows no response headers, so an httpx response hook (a public httpx option) remembers
``Retry-After`` for the error translation, through a context variable so that concurrent calls on
threads or asyncio tasks never see each other's. Errors leave with no exception chain.

``response_schema`` (structured output) is sent as the chat's ``format``: the JSON Schema itself.
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

import httpx
import ollama

from questfoundry.kit import (
    Capability,
    Chunk,
    NonRetriableProviderError,
    ProviderError,
    ProviderRateLimitError,
    ProviderReply,
    ProviderRequest,
    RetriableProviderError,
    Usage,
    async_transport,
    attempt,
    parse_retry_after,
    provider_error,
    redact,
    register_secret,
    response_schema,
    sync_transport,
)
from questfoundry_provider_ollama.settings import CONFIG_PATH, OllamaSettings

NAME = "ollama"
#: the SDK sends this variable's value as a bearer token (an Ollama behind an authenticating proxy)
API_KEY_ENV = "OLLAMA_API_KEY"

#: generic parameter names QuestFoundry uses → Ollama's option names
RENAMED_PARAMS: Mapping[str, str] = {"max_tokens": "num_predict"}
#: every option ``/api/chat`` accepts; parameters meant for other providers are left out
OPTION_NAMES = frozenset(ollama.Options.model_fields)
MAX_MESSAGE_LENGTH = 300

_retry_after: ContextVar[str | None] = ContextVar("questfoundry_ollama_retry_after", default=None)


class OllamaProvider:
    """Chat with models served by Ollama; text only, streamed or whole."""

    name = NAME
    capabilities: frozenset[str] = frozenset({Capability.STREAMING})

    def __init__(self, settings: OllamaSettings) -> None:
        self.settings = settings
        register_secret(os.environ.get(API_KEY_ENV))  # the SDK sends it when set
        self._lock = threading.Lock()
        self._client: ollama.Client | None = None
        self._async_client: ollama.AsyncClient | None = None
        self._async_transport: Any = None
        self._closed = False

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    # ------------------------------------------------------------------ calls

    def generate(self, request: ProviderRequest) -> ProviderReply:
        try:
            call = self._call(request)
            with attempt(self._seconds(request)):
                response = self._sync_client().chat(**call, stream=False)
            return _reply(response, call["model"])
        except Exception as error:
            failure = self._translate(error, request)
        raise failure  # outside the handler: no chain leads back to the SDK's exception

    async def agenerate(self, request: ProviderRequest) -> ProviderReply:
        try:
            call = self._call(request)
            client = self._async()
            with attempt(self._seconds(request)):
                response = await client.chat(**call, stream=False)
            return _reply(response, call["model"])
        except Exception as error:
            failure = self._translate(error, request)
        raise failure

    def stream(self, request: ProviderRequest) -> Generator[Chunk, None, None]:
        """Yield each piece of text as Ollama sends it, then one chunk with the usage.

        The reply must start within the attempt's seconds, and each line follow the last as soon.
        """
        try:
            call = self._call(request)
            parts = self._sync_client().chat(**call, stream=True)
            try:
                while True:
                    # The request goes out on the first ``next``, inside the attempt.
                    with attempt(self._seconds(request), stream=True):
                        part = next(parts, None)
                    if part is None:
                        raise _unfinished(self.base_url)
                    yield from _chunks(part)
                    if part.done:
                        return
            finally:
                _close_iterator(parts)
        except Exception as error:
            failure = self._translate(error, request)
        raise failure

    async def astream(self, request: ProviderRequest) -> AsyncGenerator[Chunk, None]:
        """The asynchronous twin of :meth:`stream`."""
        try:
            call = self._call(request)
            client = self._async()
            with attempt(self._seconds(request), stream=True):
                parts = await client.chat(**call, stream=True)
            try:
                while True:
                    with attempt(self._seconds(request), stream=True):
                        part = await anext(parts, None)
                    if part is None:
                        raise _unfinished(self.base_url)
                    for chunk in _chunks(part):
                        yield chunk
                    if part.done:
                        return
            finally:
                await _aclose_iterator(parts)
        except Exception as error:
            failure = self._translate(error, request)
        raise failure

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the sync client and every event loop's connections, each on its own loop."""
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
            transport = self._async_transport
        if client is not None:
            client.close()  # type: ignore[no-untyped-call]  # the SDK leaves it unannotated
        if transport is not None:
            transport.close()

    async def aclose(self) -> None:
        """Close both clients, the running loop's connections at once."""
        self.close()
        with self._lock:
            client, self._async_client = self._async_client, None
            self._async_transport = None
        if client is not None:
            await client.close()  # type: ignore[no-untyped-call]

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
        if structured := response_schema(request.params, NAME):
            call["format"] = structured[1]  # Ollama's format: the JSON Schema itself
        return call

    def _seconds(self, request: ProviderRequest) -> float:
        return request.timeout if request.timeout is not None else self.settings.timeout_seconds

    def _transport_options(self) -> dict[str, Any]:
        return {
            "timeout": self.settings.timeout_seconds,
            "max_reply_bytes": self.settings.max_reply_bytes,
        }

    def _sync_client(self) -> ollama.Client:
        with self._lock:
            self._check_open()
            if self._client is None:
                self._client = ollama.Client(
                    host=self.base_url,
                    timeout=self.settings.timeout_seconds,
                    transport=sync_transport("httpx", **self._transport_options()),
                    event_hooks={"response": [_note_retry_after]},
                )
            return self._client

    def _async(self) -> ollama.AsyncClient:
        with self._lock:
            self._check_open()
            if self._async_client is None:
                self._async_transport = async_transport("httpx", **self._transport_options())
                self._async_client = ollama.AsyncClient(
                    host=self.base_url,
                    timeout=self.settings.timeout_seconds,
                    transport=self._async_transport,
                    event_hooks={"response": [_anote_retry_after]},
                )
            return self._async_client

    def _check_open(self) -> None:
        if self._closed:
            raise NonRetriableProviderError("the provider is closed", provider=NAME)

    def _translate(self, error: Exception, request: ProviderRequest) -> ProviderError:
        """What the SDK or httpx raised, as the core's provider error."""
        if isinstance(error, ProviderError):
            return error
        return provider_error(error, NAME) or translate_error(
            error, self.base_url, self._seconds(request), _retry_after.get()
        )


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
    line = " ".join(redact(text).split())
    return line if len(line) <= MAX_MESSAGE_LENGTH else line[: MAX_MESSAGE_LENGTH - 1] + "…"


# ---------------------------------------------------------------------- httpx hooks


def _note_retry_after(response: httpx.Response) -> None:
    _retry_after.set(response.headers.get("retry-after"))


async def _anote_retry_after(response: httpx.Response) -> None:
    _note_retry_after(response)
