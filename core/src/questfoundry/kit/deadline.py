"""The deadline of one attempt, enforced on every socket operation of a request.

:func:`attempt` gives the requests sent inside it a budget (a context variable the provider sets
around the SDK call). The network backends here wrap httpcore's: each connect, write and read
takes a timeout shrunk to the time left, so an attempt ends at its deadline even when the server
trickles its headers one byte at a time. :mod:`.transport` builds the transports on them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Attempt",
    "DeadlineExceeded",
    "ReplyTooLarge",
    "attempt",
    "current_attempt",
    "transport_failure",
]


class DeadlineExceeded(Exception):
    """The attempt's deadline passed before the reply was complete."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"no complete reply within {seconds:.3g} s")


class ReplyTooLarge(Exception):
    """The reply body is larger than the provider's ``max_reply_mb``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"the reply is larger than {limit / 1024 / 1024:g} MiB (max_reply_mb)")


@dataclass(frozen=True)
class Attempt:
    """The budget of one attempt: ``seconds`` to complete (to start and between chunks when
    ``stream``)."""

    seconds: float
    stream: bool = False


_attempt: ContextVar[Attempt | None] = ContextVar("questfoundry_http_attempt", default=None)


@contextlib.contextmanager
def attempt(seconds: float, *, stream: bool = False) -> Iterator[None]:
    """Give the requests sent inside the block ``seconds`` each (see the module docstring)."""
    token = _attempt.set(Attempt(seconds, stream))
    try:
        yield
    finally:
        _attempt.reset(token)


def transport_failure(error: BaseException) -> DeadlineExceeded | ReplyTooLarge | None:
    """The :class:`DeadlineExceeded` or :class:`ReplyTooLarge` behind ``error``, if any.

    SDKs wrap transport errors in their own; this walks the ``__cause__``/``__context__`` chain.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, (DeadlineExceeded, ReplyTooLarge)):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


# ---------------------------------------------------------------------- the clock of one request


class Deadline:
    """A point in time on the monotonic clock, movable for a stream's idle bound."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def extend(self) -> None:
        self.at = time.monotonic() + self.seconds

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def clamp(self, timeout: float | None) -> float:
        """``timeout`` shrunk to the time left; raises once nothing is left."""
        left = self.remaining()
        if left <= 0:
            raise DeadlineExceeded(self.seconds)
        return left if timeout is None else min(timeout, left)


#: a timeout that fires this close to the deadline is the deadline's (timers round differently)
_SLACK = 0.005
#: the deadline of the request whose socket I/O runs now (set by the transport around it)
_active: ContextVar[Deadline | None] = ContextVar("questfoundry_http_deadline", default=None)


@contextlib.contextmanager
def governed(deadline: Deadline) -> Iterator[None]:
    """Socket I/O inside the block obeys ``deadline``; a timeout past it is the deadline's."""
    token = _active.set(deadline)
    try:
        yield
    except (DeadlineExceeded, ReplyTooLarge):
        raise
    except Exception:
        if deadline.remaining() <= _SLACK:
            raise DeadlineExceeded(deadline.seconds) from None
        raise
    finally:
        _active.reset(token)


def _clamp(timeout: float | None) -> float | None:
    deadline = _active.get()
    return timeout if deadline is None else deadline.clamp(timeout)


# ---------------------------------------------------------------------- network backends


class NetworkStream:
    """A sync network stream whose every operation obeys the active deadline."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data: bytes = self._inner.read(max_bytes, timeout=_clamp(timeout))
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout=_clamp(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> NetworkStream:
        return NetworkStream(
            self._inner.start_tls(ssl_context, server_hostname, timeout=_clamp(timeout))
        )

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class NetworkBackend:
    """A sync network backend handing out :class:`NetworkStream`\\ s."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, **options: Any
    ) -> NetworkStream:
        return NetworkStream(
            self._inner.connect_tcp(host, port, timeout=_clamp(timeout), **options)
        )

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, **options: Any
    ) -> NetworkStream:
        return NetworkStream(
            self._inner.connect_unix_socket(path, timeout=_clamp(timeout), **options)
        )

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class AsyncNetworkStream:
    """The async twin of :class:`NetworkStream`."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data: bytes = await self._inner.read(max_bytes, timeout=_clamp(timeout))
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout=_clamp(timeout))

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> AsyncNetworkStream:
        inner = await self._inner.start_tls(ssl_context, server_hostname, timeout=_clamp(timeout))
        return AsyncNetworkStream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class AsyncNetworkBackend:
    """The async twin of :class:`NetworkBackend`."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, **options: Any
    ) -> AsyncNetworkStream:
        inner = await self._inner.connect_tcp(host, port, timeout=_clamp(timeout), **options)
        return AsyncNetworkStream(inner)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, **options: Any
    ) -> AsyncNetworkStream:
        inner = await self._inner.connect_unix_socket(path, timeout=_clamp(timeout), **options)
        return AsyncNetworkStream(inner)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def current_attempt(default_seconds: float) -> Attempt:
    """The budget :func:`attempt` set around this request, else ``default_seconds`` whole."""
    return _attempt.get() or Attempt(default_seconds)
