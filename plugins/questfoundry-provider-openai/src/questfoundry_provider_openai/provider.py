"""Provider ``openai``: chat completions for text, image generation for images, on the openai SDK.

One sync and one async client per provider instance, each made on first use and shared by every
thread and event loop: the async client's transport keeps one connection pool per running loop,
closed on that loop as it ends (see :mod:`questfoundry.kit.transport`). Both clients are made with
``max_retries=0``: the SDK would otherwise retry 429s and 5xx on its own, behind the gateway's
back, doubling waits and hiding calls from the limiter and the ledger.

Each client sends through :mod:`questfoundry.kit.transport`'s transport, so an attempt ends at its
deadline (``request.timeout``, else ``timeout_seconds``) even against a server that trickles its
reply, and a reply larger than ``max_reply_mb`` fails while it is read. Errors leave with no
exception chain: the SDK's exceptions hold the request, and a server may echo the API key back in
its body.

Chat calls go through the client's generic ``post`` (the SDK's own way to reach any endpoint),
with the body built here as the API documents it, and the reply read as the SDK's
``ChatCompletion``: ``chat.completions.create`` walks every argument through its typed-dict
transform first, which cost a third of the SDK's CPU a call (1.1 ms of 3.4 ms, measured on the
studio's own requests at 64 in flight) for a body that is plain JSON already. Auth, headers,
errors, timeouts and streams are the SDK's as before.

``max_tokens`` is sent as ``max_completion_tokens`` to OpenAI itself (newer models refuse the old
name) and as ``max_tokens`` to any other base URL (what OpenAI-compatible servers understand).
``response_schema`` (structured output) becomes ``response_format`` of type ``json_schema`` with
``strict`` on: the schema must then follow OpenAI's strict rules (every object closed with
``additionalProperties: false``, every property required).
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import openai
from openai.types import CompletionUsage, ImagesResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from questfoundry.kit import (
    Capability,
    Chunk,
    NonRetriableProviderError,
    ProviderError,
    ProviderReply,
    ProviderRequest,
    RetriableProviderError,
    Usage,
    async_transport,
    attempt,
    flavour_of,
    provider_error,
    register_secret,
    response_schema,
    sync_transport,
)
from questfoundry_provider_openai.failures import connection_failed, translate
from questfoundry_provider_openai.settings import OpenAISettings

#: generation parameters passed to chat completions as they are
TEXT_PARAMS = (
    "temperature",
    "top_p",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "max_completion_tokens",
    "reasoning_effort",
)
#: image parameters passed to image generation as they are (``size`` and ``quality`` too)
IMAGE_PARAMS = ("size", "quality", "style", "background", "output_format", "moderation")
_TRANSPORT_MODULES = ("httpx", "httpcore", "h11", "anyio")
#: where chat completions are posted (the client's generic ``post``: see the module docstring)
CHAT_PATH = "/chat/completions"
#: the httpx flavour the SDK is built on (``httpx2`` for openai 3)
FLAVOUR = flavour_of(openai.DefaultHttpxClient)


class OpenAIProvider:
    """Talks to OpenAI, or any OpenAI-compatible endpoint, through the official SDK."""

    name = "openai"
    capabilities = frozenset({Capability.STREAMING, Capability.IMAGES})

    def __init__(self, settings: OpenAISettings) -> None:
        self.settings = settings
        register_secret(settings.api_key)
        self._lock = threading.Lock()
        self._client: openai.OpenAI | None = None
        self._async_client: openai.AsyncOpenAI | None = None
        self._async_transport: Any = None

    def __repr__(self) -> str:
        return f"OpenAIProvider(base_url={self.settings.base_url!r}, model={self.settings.model!r})"

    # ------------------------------------------------------------------ calls

    def generate(self, request: ProviderRequest) -> ProviderReply:
        try:
            with attempt(self._seconds(request)):
                if request.kind == "image":
                    images = self._sync().images.generate(**self.image_arguments(request))
                    return _image_reply(request, images)
                completion = self._sync().post(CHAT_PATH, **self.chat_arguments(request))
                return _text_reply(request, completion)
        except Exception as error:
            failure = self._translate(error)
        raise failure  # outside the handler: no chain leads back to the SDK's exception

    async def agenerate(self, request: ProviderRequest) -> ProviderReply:
        try:
            client = self._async()
            with attempt(self._seconds(request)):
                if request.kind == "image":
                    images = await client.images.generate(**self.image_arguments(request))
                    return _image_reply(request, images)
                completion = await client.post(CHAT_PATH, **self.chat_arguments(request))
                return _text_reply(request, completion)
        except Exception as error:
            failure = self._translate(error)
        raise failure

    def stream(self, request: ProviderRequest) -> Iterator[Chunk]:
        """Text as it arrives, then one last chunk with the usage (``include_usage``).

        The reply must start within the attempt's seconds, and each chunk follow the last as soon.
        """
        usage = Usage()
        try:
            with attempt(self._seconds(request), stream=True):
                events = self._sync().post(CHAT_PATH, **self.chat_arguments(request, stream=True))
            with events:
                for event in events:
                    text, event_usage = _event_parts(event)
                    if text:
                        yield Chunk(text=text)
                    usage = event_usage or usage
        except Exception as error:
            failure = self._translate(error)
        else:
            yield Chunk(usage=usage)
            return
        raise failure

    async def astream(self, request: ProviderRequest) -> AsyncIterator[Chunk]:
        """Async :meth:`stream`."""
        usage = Usage()
        try:
            client = self._async()
            with attempt(self._seconds(request), stream=True):
                events = await client.post(
                    CHAT_PATH, **self.chat_arguments(request, stream=True, asynchronous=True)
                )
            async with events:
                async for event in events:
                    text, event_usage = _event_parts(event)
                    if text:
                        yield Chunk(text=text)
                    usage = event_usage or usage
        except Exception as error:
            failure = self._translate(error)
        else:
            yield Chunk(usage=usage)
            return
        raise failure

    # ------------------------------------------------------------------ clients

    def close(self) -> None:
        """Release the sync client and every event loop's connections, each on its own loop.

        Calling it again does nothing; a later call makes new connections.
        """
        with self._lock:
            client, self._client = self._client, None
            transport = self._async_transport
        if client is not None:
            client.close()
        if transport is not None:
            transport.close()

    async def aclose(self) -> None:
        """Release both clients, the running loop's connections at once; twice does nothing."""
        self.close()
        with self._lock:
            client, self._async_client = self._async_client, None
            self._async_transport = None
        if client is not None:
            await client.close()

    def _options(self) -> dict[str, Any]:
        return {
            "api_key": self.settings.api_key,
            "base_url": self.settings.base_url,
            "organization": self.settings.organization,
            "timeout": self.settings.timeout,
            "max_retries": 0,
        }

    def _seconds(self, request: ProviderRequest) -> float:
        return request.timeout if request.timeout is not None else self.settings.timeout

    def _sync(self) -> openai.OpenAI:
        with self._lock:
            if self._client is None:
                sending = sync_transport(
                    FLAVOUR,
                    timeout=self.settings.timeout,
                    max_reply_bytes=self.settings.max_reply_bytes,
                )
                self._client = openai.OpenAI(
                    **self._options(), http_client=openai.DefaultHttpxClient(transport=sending)
                )
            return self._client

    def _async(self) -> openai.AsyncOpenAI:
        with self._lock:
            if self._async_client is None:
                self._async_transport = async_transport(
                    FLAVOUR,
                    timeout=self.settings.timeout,
                    max_reply_bytes=self.settings.max_reply_bytes,
                )
                self._async_client = openai.AsyncOpenAI(
                    **self._options(),
                    http_client=openai.DefaultAsyncHttpxClient(transport=self._async_transport),
                )
            return self._async_client

    # ------------------------------------------------------------------ requests and errors

    def chat_arguments(
        self, request: ProviderRequest, stream: bool = False, asynchronous: bool = False
    ) -> dict[str, Any]:
        """The keyword arguments of the client's ``post`` to :data:`CHAT_PATH` for ``request``:
        its ``body`` as Chat Completions takes it, ``options`` and what the reply is read as."""
        if request.kind != "text":
            raise NonRetriableProviderError("only text calls can be streamed", provider=self.name)
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        if request.prompt is not None:
            messages.append({"role": "user", "content": request.prompt})
        if not messages:
            raise NonRetriableProviderError("the request has no messages", provider=self.name)
        body: dict[str, Any] = {"model": request.model or self.settings.model, "messages": messages}
        body.update(_pick(request.params, TEXT_PARAMS))
        if request.params.get("max_tokens") is not None:
            field = "max_completion_tokens" if self.settings.official else "max_tokens"
            body.setdefault(field, request.params["max_tokens"])
        if structured := response_schema(request.params, self.name):
            body["response_format"] = _response_format(*structured)
        # the credentials ``chat.completions.create`` sends: the API key only, never an admin key
        options: dict[str, Any] = {"security": {"bearer_auth": True}}
        if request.timeout is not None:
            options["timeout"] = request.timeout
        arguments: dict[str, Any] = {"body": body, "options": options, "cast_to": ChatCompletion}
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
            events = openai.AsyncStream if asynchronous else openai.Stream
            arguments.update(stream=True, stream_cls=events[ChatCompletionChunk])
        return arguments

    def image_arguments(self, request: ProviderRequest) -> dict[str, Any]:
        """The keyword arguments of ``images.generate`` for ``request``."""
        prompt = request.prompt or "\n".join(
            m.content for m in request.messages if m.role == "user"
        )
        if not prompt:
            raise NonRetriableProviderError("an image call needs a prompt", provider=self.name)
        model = request.model or self.settings.model
        args: dict[str, Any] = {"model": model, "prompt": prompt, "n": 1}
        args.update(_pick(self.settings.defaults, IMAGE_PARAMS))
        args.update(_pick(request.params, IMAGE_PARAMS))
        if not model.startswith("gpt-image"):  # GPT image models send base64 and refuse the option
            args["response_format"] = "b64_json"
        if request.timeout is not None:
            args["timeout"] = request.timeout
        return args

    def _translate(self, error: Exception) -> ProviderError:
        if isinstance(error, ProviderError):
            return error
        failure = provider_error(error, self.name)
        if failure is not None:
            return failure
        secret, where = self.settings.api_key, self.settings.endpoint
        if type(error).__module__.split(".")[0].rstrip("0123456789") in _TRANSPORT_MODULES:
            return connection_failed(error, self.name, secret, where)
        return translate(error, self.name, secret, self.settings.timeout, where)


def _response_format(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Chat Completions' ``response_format`` for a ``response_schema`` parameter."""
    spec = {"name": name, "schema": schema, "strict": True}
    return {"type": "json_schema", "json_schema": spec}


def _pick(params: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {name: params[name] for name in names if params.get(name) is not None}


def _usage(usage: CompletionUsage | None) -> Usage | None:
    if usage is None:
        return None
    details = usage.prompt_tokens_details
    cached = (details.cached_tokens or 0) if details is not None else 0
    return Usage(
        input_tokens=usage.prompt_tokens or 0,
        output_tokens=usage.completion_tokens or 0,
        cached_input_tokens=cached,
    )


def _text_reply(request: ProviderRequest, completion: ChatCompletion) -> ProviderReply:
    if not getattr(completion, "choices", None):
        raise RetriableProviderError("the reply held no choices", provider=OpenAIProvider.name)
    choice = completion.choices[0]
    message = choice.message
    text = message.content if message.content is not None else (message.refusal or "")
    return ProviderReply(
        model=completion.model or request.model,
        text=text,
        usage=_usage(completion.usage) or Usage(),
        finish_reason=choice.finish_reason,
    )


def _event_parts(event: ChatCompletionChunk) -> tuple[str, Usage | None]:
    text = ""
    if event.choices:
        text = event.choices[0].delta.content or ""
    return text, _usage(event.usage)


def _image_reply(request: ProviderRequest, images: ImagesResponse) -> ProviderReply:
    first = images.data[0] if images.data else None
    if first is None or not first.b64_json:
        what = "a URL instead of image bytes" if first is not None and first.url else "no image"
        raise NonRetriableProviderError(f"the service returned {what}", provider="openai")
    try:
        image = base64.b64decode(first.b64_json, validate=True)
    except (binascii.Error, ValueError) as error:
        raise RetriableProviderError(
            "the image was not valid base64", provider=OpenAIProvider.name
        ) from error
    usage = Usage()
    if images.usage is not None:
        usage = Usage(
            input_tokens=images.usage.input_tokens, output_tokens=images.usage.output_tokens
        )
    return ProviderReply(model=request.model, image=image, usage=usage, finish_reason="stop")
