"""HTTP transports for the provider SDKs: a deadline for the whole attempt, and a reply size cap.

An SDK's ``timeout`` bounds each socket read, not the call: a server trickling one byte a second
keeps every read short and holds the call for as long as it likes. The transports here take the
attempt's budget from :func:`attempt` (a context variable the provider sets around the SDK call)
and enforce it on every socket operation — connect, write, each read of the headers and of the
body — with each timeout shrunk to the time left, so the attempt ends at its deadline even when
the server sends the headers themselves one byte at a time.

* A whole reply (``stream=False``) must arrive completely before ``seconds`` have passed.
* A streamed reply must start (headers and the first chunk of body) within ``seconds``; after
  that each chunk must follow the previous one within ``seconds`` (an idle bound), so a long
  generation that keeps talking is not cut, and a stalled one is.
* A body larger than ``max_reply_bytes`` fails while it is read (``Content-Length`` is checked
  first): nothing larger than the cap is ever held in memory.

Past the deadline the transport raises :class:`DeadlineExceeded`; past the cap,
:class:`ReplyTooLarge`. SDKs wrap what their transport raises, so a provider finds these with
:func:`transport_failure`. Two httpx flavours are in use (``openai`` sits on ``httpx2``, ``ollama``
on ``httpx``; ``google-genai`` takes either): :func:`transport` and :func:`async_transport` build
one for the flavour named, on that flavour's ``httpcore`` with a network backend that enforces the
budget. The async transport keeps one connection pool per running event loop, closed on that
loop as the loop ends (:class:`questfoundry.kit.aio.PerLoop`), so one SDK client serves successive
``asyncio.run`` calls and loops on several threads. Proxies come from the environment as httpx's
own transport takes them (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``; http and
https proxies only).

Nothing here imports httpx until a transport is built, so ``import questfoundry`` stays light.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from questfoundry.contracts.errors import (
    ConfigError,
    NonRetriableProviderError,
    ProviderError,
    RetriableProviderError,
)
from questfoundry.kit.aio import PerLoop
from questfoundry.kit.deadline import (
    AsyncNetworkBackend,
    Deadline,
    DeadlineExceeded,
    NetworkBackend,
    ReplyTooLarge,
    attempt,
    current_attempt,
    governed,
    transport_failure,
)

__all__ = [
    "DEFAULT_MAX_REPLY_BYTES",
    "DeadlineExceeded",
    "ReplyTooLarge",
    "async_transport",
    "attempt",
    "flavour_of",
    "http_settings_schema",
    "max_reply_bytes",
    "provider_error",
    "public_url",
    "sync_transport",
    "transport_failure",
]

#: ``max_reply_mb`` when the settings give none: 32 MiB
DEFAULT_MAX_REPLY_BYTES = 32 * 1024 * 1024
_CORE_OF = {"httpx": "httpcore", "httpx2": "httpcore2"}
#: the connection pool the openai SDK gives its clients: 100 kept open between calls, so a fan-out
#: of up to 100 (``studio.concurrency``) reuses its connections rather than opening one a call
#: (httpx's own default keeps 20: at 64 in flight, 44 calls in each wave connected anew)
_POOL_LIMITS: dict[str, Any] = {
    "max_connections": 1000,
    "max_keepalive_connections": 100,
    "keepalive_expiry": 5.0,
}


# ---------------------------------------------------------------------- transports


class _Flavour:
    """One httpx flavour and its httpcore: requests, responses and exceptions of the pair.

    httpx checks that a body is its own ``SyncByteStream``/``AsyncByteStream``, so the body and
    transport classes below are mixed with the flavour's base classes here, once per flavour.
    """

    def __init__(self, name: str) -> None:
        if name not in _CORE_OF:
            raise ValueError(f"unknown httpx flavour {name!r}; expected one of {sorted(_CORE_OF)}")
        self.httpx: ModuleType = importlib.import_module(name)
        self.httpcore: ModuleType = importlib.import_module(_CORE_OF[name])
        self.body: type[_Body] = type("Body", (_Body, self.httpx.SyncByteStream), {})
        self.async_body: type[_AsyncBody] = type(
            "AsyncBody", (_AsyncBody, self.httpx.AsyncByteStream), {}
        )
        self.transport: type[_Transport] = type(
            "DeadlineTransport", (_Transport, self.httpx.BaseTransport), {}
        )
        self.async_transport: type[_AsyncTransport] = type(
            "AsyncDeadlineTransport", (_AsyncTransport, self.httpx.AsyncBaseTransport), {}
        )

    def ssl_context(self) -> Any:
        """httpx's default TLS context, made once per flavour: making one reads every CA file."""
        return _ssl_context(self.httpx.__name__)

    def pool(self, proxy: str | None, *, sync: bool) -> Any:
        """An httpcore pool whose network backend obeys the deadlines; through ``proxy`` if set."""
        core = self.httpcore
        backend = (
            NetworkBackend(core.SyncBackend()) if sync else AsyncNetworkBackend(core.AnyIOBackend())
        )
        options = {"ssl_context": self.ssl_context(), "network_backend": backend, **_POOL_LIMITS}
        if proxy is None:
            return (core.ConnectionPool if sync else core.AsyncConnectionPool)(**options)
        url = self.httpx.URL(proxy)
        if url.scheme not in ("http", "https"):
            raise ConfigError(f"proxy {proxy!r}: only http:// and https:// proxies are supported")
        target = core.URL(
            scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
        )
        auth = (url.username, url.password) if url.username else None
        kind = core.HTTPProxy if sync else core.AsyncHTTPProxy
        return kind(proxy_url=target, proxy_auth=auth, **options)

    def core_request(self, request: Any, deadline: Deadline) -> Any:
        """The httpcore request for httpx's ``request``, every timeout shrunk to the deadline."""
        extensions = dict(request.extensions)
        timeouts = dict(extensions.get("timeout") or {})
        extensions["timeout"] = {
            key: deadline.clamp(timeouts.get(key)) for key in ("connect", "read", "write", "pool")
        }
        url = request.url
        return self.httpcore.Request(
            method=request.method,
            url=self.httpcore.URL(
                scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=extensions,
        )

    def response(self, core: Any, stream: Any) -> Any:
        return self.httpx.Response(
            status_code=core.status, headers=core.headers, stream=stream, extensions=core.extensions
        )

    @contextlib.contextmanager
    def mapped(self) -> Iterator[None]:
        """httpcore's exceptions as the same-named httpx ones, as httpx's own transport does."""
        core = self.httpcore
        try:
            yield
        except (core.TimeoutException, core.NetworkError, core.ProtocolError) as error:
            raise self._httpx_error(error) from error
        except (core.ProxyError, core.UnsupportedProtocol) as error:
            raise self._httpx_error(error) from error

    def _httpx_error(self, error: Exception) -> Exception:
        for cls in type(error).__mro__:
            target = getattr(self.httpx, cls.__name__, None)
            if isinstance(target, type) and issubclass(target, self.httpx.TransportError):
                return target(str(error))  # type: ignore[no-any-return]
        return self.httpx.TransportError(str(error))  # type: ignore[no-any-return]


@functools.cache
def _flavour(name: str) -> _Flavour:
    return _Flavour(name)


@functools.cache
def _ssl_context(flavour: str) -> Any:
    return importlib.import_module(flavour).create_ssl_context()


@dataclass(frozen=True)
class _Policy:
    """What a transport enforces when the caller set no :func:`attempt`."""

    timeout: float
    max_reply_bytes: int

    def deadline(self) -> tuple[Deadline, bool]:
        budget = current_attempt(self.timeout)
        return Deadline(budget.seconds), budget.stream

    def check_length(self, headers: list[tuple[bytes, bytes]]) -> None:
        """Refuse at once a body whose announced length passes the cap."""
        for name, value in headers:
            announced = name.lower() == b"content-length" and value.strip().isdigit()
            if announced and int(value) > self.max_reply_bytes:
                raise ReplyTooLarge(self.max_reply_bytes)


class _Body:
    """A sync response body read under the request's deadline and the size cap."""

    def __init__(
        self, chunks: Any, flavour: _Flavour, deadline: Deadline, stream: bool, cap: int
    ) -> None:
        self._chunks, self._flavour, self._deadline = chunks, flavour, deadline
        self._stream, self._cap = stream, cap

    def __iter__(self) -> Iterator[bytes]:
        received = 0
        chunks = iter(self._chunks)
        while True:
            with governed(self._deadline), self._flavour.mapped():
                chunk = next(chunks, None)
            if chunk is None:
                return
            received += len(chunk)
            if received > self._cap:
                raise ReplyTooLarge(self._cap)
            if self._stream:
                self._deadline.extend()
            yield chunk

    def close(self) -> None:
        with self._flavour.mapped():
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()


class _AsyncBody:
    """The async twin of :class:`_Body`."""

    def __init__(
        self, chunks: Any, flavour: _Flavour, deadline: Deadline, stream: bool, cap: int
    ) -> None:
        self._chunks, self._flavour, self._deadline = chunks, flavour, deadline
        self._stream, self._cap = stream, cap

    async def __aiter__(self) -> AsyncIterator[bytes]:
        received = 0
        chunks = self._chunks.__aiter__()
        while True:
            with governed(self._deadline), self._flavour.mapped():
                chunk = await anext(chunks, None)
            if chunk is None:
                return
            received += len(chunk)
            if received > self._cap:
                raise ReplyTooLarge(self._cap)
            if self._stream:
                self._deadline.extend()
            yield chunk

    async def aclose(self) -> None:
        with self._flavour.mapped():
            aclose = getattr(self._chunks, "aclose", None)
            if aclose is not None:
                await aclose()


class _Transport:
    """A sync httpx(2) transport enforcing the attempt's deadline and the reply size cap."""

    def __init__(self, flavour: _Flavour, policy: _Policy) -> None:
        self._flavour, self._policy = flavour, policy
        self._routes = _Routes(flavour, sync=True)

    def handle_request(self, request: Any) -> Any:
        deadline, stream = self._policy.deadline()
        pool = self._routes.pool_for(request.url)
        with governed(deadline), self._flavour.mapped():
            core = pool.handle_request(self._flavour.core_request(request, deadline))
        try:
            self._policy.check_length(core.headers)
        except ReplyTooLarge:
            core.close()
            raise
        body = self._flavour.body(
            core.stream, self._flavour, deadline, stream, self._policy.max_reply_bytes
        )
        return self._flavour.response(core, body)

    def close(self) -> None:
        for pool in self._routes.take_all():
            pool.close()

    def __enter__(self) -> _Transport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _AsyncTransport:
    """The async twin of :class:`_Transport`, with one connection pool per running event loop.

    Pooled connections belong to the loop that opened them, so each loop gets its own pool,
    closed on that loop when it ends (:class:`questfoundry.kit.aio.PerLoop`): one SDK client, and
    the transport under it, serve successive ``asyncio.run`` calls and loops on several threads.
    """

    def __init__(self, flavour: _Flavour, policy: _Policy) -> None:
        self._flavour, self._policy = flavour, policy
        self._pools: PerLoop[_Routes] = PerLoop(lambda: _Routes(flavour, sync=False), _close_routes)

    async def handle_async_request(self, request: Any) -> Any:
        deadline, stream = self._policy.deadline()
        pool = (await self._pools.get()).pool_for(request.url)
        with governed(deadline), self._flavour.mapped():
            core = await pool.handle_async_request(self._flavour.core_request(request, deadline))
        try:
            self._policy.check_length(core.headers)
        except ReplyTooLarge:
            await core.aclose()
            raise
        body = self._flavour.async_body(
            core.stream, self._flavour, deadline, stream, self._policy.max_reply_bytes
        )
        return self._flavour.response(core, body)

    async def aclose(self) -> None:
        await self._pools.aclose()

    def close(self) -> None:
        """From sync code: close every loop's pool on its loop (see :meth:`PerLoop.close`)."""
        self._pools.close()

    async def __aenter__(self) -> _AsyncTransport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


async def _close_routes(routes: _Routes) -> None:
    for pool in routes.take_all():
        await pool.aclose()


class _Routes:
    """The connection pools of one transport (of one event loop, for the async one): a direct
    pool, and one through each proxy that ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY`` name for
    hosts ``NO_PROXY`` does not exempt, read when the transport is made, as httpx does."""

    def __init__(self, flavour: _Flavour, *, sync: bool) -> None:
        self._flavour, self._sync = flavour, sync
        import urllib.request  # only when a transport is built: it pulls in http.client and ssl

        self._proxies = urllib.request.getproxies_environment()
        self._pools: dict[str | None, Any] = {}
        self._lock = threading.Lock()

    def pool_for(self, url: Any) -> Any:
        proxy = self._proxies.get(url.scheme) or self._proxies.get("all")
        if proxy and _exempt(url.host, self._proxies.get("no", "")):
            proxy = None
        with self._lock:
            if proxy not in self._pools:
                self._pools[proxy] = self._flavour.pool(proxy, sync=self._sync)
            return self._pools[proxy]

    def take_all(self) -> list[Any]:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        return pools


def _exempt(host: str, no_proxy: str) -> bool:
    """``NO_PROXY``: ``*``, or a host or domain (``example.com`` covers ``api.example.com``)."""
    host = host.lower()
    for entry in (part.strip().lower().lstrip(".") for part in no_proxy.split(",")):
        if entry == "*" or (entry and (host == entry or host.endswith("." + entry))):
            return True
    return False


def sync_transport(
    flavour: str, *, timeout: float, max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES
) -> Any:
    """A sync transport for an ``httpx.Client`` (``flavour="httpx"``) or ``httpx2.Client``.

    ``timeout`` seconds is the budget of a request sent outside any :func:`attempt` block.
    """
    kind = _flavour(flavour)
    return kind.transport(kind, _Policy(timeout, max_reply_bytes))


def async_transport(
    flavour: str, *, timeout: float, max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES
) -> Any:
    """The async twin of :func:`transport`, for an ``AsyncClient``; serves any event loop."""
    kind = _flavour(flavour)
    return kind.async_transport(kind, _Policy(timeout, max_reply_bytes))


def flavour_of(client_class: type) -> str:
    """``"httpx"`` or ``"httpx2"``: the flavour an SDK's client class is built on."""
    for cls in client_class.__mro__:
        package = cls.__module__.split(".")[0]
        if package in _CORE_OF:
            return package
    raise ValueError(f"{client_class.__name__} is not an httpx or httpx2 client")


def provider_error(error: BaseException, provider: str) -> ProviderError | None:
    """The provider error for a :func:`transport_failure` behind ``error``, or None.

    Past the deadline: retriable, "no complete reply within 3 s". Past the size cap: not
    retriable — the same request would get the same reply.
    """
    failure = transport_failure(error)
    if isinstance(failure, DeadlineExceeded):
        return RetriableProviderError(str(failure), provider=provider)
    if isinstance(failure, ReplyTooLarge):
        return NonRetriableProviderError(str(failure), provider=provider)
    return None


def public_url(url: str) -> str:
    """``url`` as a message may show it (an endpoint that could not be reached): scheme, host,
    port and path, without the user name, password, query or fragment, which may hold a key."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def http_settings_schema(
    *, timeout_default: float, url_example: str, url_default: str | None = None
) -> dict[str, Any]:
    """The settings every HTTP provider takes, as JSON Schema properties for its fragment:
    ``base_url``, ``timeout_seconds`` (the attempt deadline above) and ``max_reply_mb``."""
    base_url: dict[str, Any] = {
        "type": "string",
        "pattern": "^[A-Za-z][A-Za-z0-9+.-]*://\\S+$",
        "examples": [url_example],
        "description": "Endpoint to call instead of the service's default.",
    }
    if url_default is not None:
        base_url["default"] = url_default
    return {
        "base_url": base_url,
        "timeout_seconds": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": timeout_default,
            "description": (
                "Deadline of one attempt, in seconds: a whole reply must have arrived by then, "
                "and a streamed one must have started, each later chunk following the last "
                "within as long (not a per-read timeout). Past it the attempt fails as retriable."
            ),
        },
        "max_reply_mb": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": DEFAULT_MAX_REPLY_BYTES // (1024 * 1024),
            "description": (
                "Largest reply body accepted, in MiB; a larger one fails the call instead of "
                "filling memory."
            ),
        },
    }


def max_reply_bytes(settings: Mapping[str, Any], path: str) -> int:
    """Bytes from the ``max_reply_mb`` setting (MiB, default 32) at config path ``path``."""
    value = settings.get("max_reply_mb")
    if value is None:
        return DEFAULT_MAX_REPLY_BYTES
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(
            f"must be a number of MiB above 0, not {value!r}", path=f"{path}.max_reply_mb"
        )
    return max(1, int(value * 1024 * 1024))
