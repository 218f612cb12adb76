"""Blocking calls carried off the event loop, the calls of one moment in one trip.

``asyncio.to_thread`` hands each call to a worker thread on its own: a future, a hand-over to the
thread, and a wake-up of the loop when it returns. Under fan-out (dozens of calls in flight, each
reading the cache, taking a flight lock and storing its reply) those trips cost more CPU than the
backend calls they carry (measured with ``benchmarks/studio.py``: 1.4 ms of the gateway's CPU a
call at 64 in flight). Here a call asked while a trip waits to leave joins that trip: one
hand-over and one wake-up carry them all. Alone, a call leaves at once, as with ``to_thread``.

A trip that has left holds up no later call: those leave in the next trip, on another thread, so
a slow call (a lock another process holds) delays only the calls that shared its trip. Each call
runs in a copy of its caller's context, as with ``to_thread``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

#: a queued call: its context, the function and its arguments, and the future its caller awaits
_Call = tuple[contextvars.Context, Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]"]
#: what a call came to: its future, then its value or the exception it raised
_Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]

_WORKERS = min(32, (os.cpu_count() or 1) + 4)  # asyncio's default executor's size


async def offload(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on a worker thread, sharing a trip with the calls asked beside it."""
    loop = asyncio.get_running_loop()
    trips = _trips.get(loop)
    if trips is None:
        trips = _trips_of(loop)
    future: asyncio.Future[T] = loop.create_future()
    trips.send((contextvars.copy_context(), fn, args, future))
    return await future


class _Trips:
    """The calls of one event loop waiting for a trip to a worker thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._waiting: list[_Call] = []

    def send(self, call: _Call) -> None:
        with self._lock:
            self._waiting.append(call)
            leaving = len(self._waiting) == 1  # else a trip is already waiting to leave
        if leaving:
            _executor().submit(self._trip)

    def _trip(self) -> None:
        """Run every call waiting now, then hand all their outcomes back to the loop at once."""
        with self._lock:
            calls, self._waiting = self._waiting, []
        outcomes: list[_Outcome] = []
        for context, fn, args, future in calls:
            try:
                outcomes.append((future, context.run(fn, *args), None))
            except BaseException as exc:  # handed to its own caller, as to_thread does
                outcomes.append((future, None, exc))
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody awaits these
            self._loop.call_soon_threadsafe(_deliver, outcomes)


def _deliver(outcomes: list[_Outcome]) -> None:
    for future, value, error in outcomes:
        if future.done():  # its caller was cancelled: the call ran all the same
            continue
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)


_trips: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Trips] = weakref.WeakKeyDictionary()
_made = threading.Lock()
_pool: list[ThreadPoolExecutor] = []


def _trips_of(loop: asyncio.AbstractEventLoop) -> _Trips:
    with _made:
        return _trips.setdefault(loop, _Trips(loop))


def _forget_parent_threads() -> None:
    """In a forked child: the parent's worker threads and queues are not the child's."""
    global _made  # noqa: PLW0603 - a lock held by another thread at fork is never released
    _made = threading.Lock()
    _pool.clear()
    _trips.clear()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_parent_threads)


def _executor() -> ThreadPoolExecutor:
    if not _pool:
        with _made:
            if not _pool:
                _pool.append(ThreadPoolExecutor(_WORKERS, thread_name_prefix="questfoundry-io"))
    return _pool[0]
