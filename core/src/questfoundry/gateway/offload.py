"""Blocking calls carried off the event loop, the calls of one moment in one trip.

``asyncio.to_thread`` hands each call to a worker thread on its own: a future, a hand-over to the
thread, and a wake-up of the loop when it returns. Under fan-out (dozens of calls in flight, each
reading the cache, taking a flight lock and storing its reply) those trips cost more CPU than the
backend calls they carry (measured at 64 calls in flight on the stand-in: the same calls made on
the loop itself cost the gateway 1.4 ms less CPU a call). Here a call asked while a trip waits to
leave joins that trip: one hand-over and one wake-up carry them all (the gateway's CPU over the
raw SDK's fell from 1.88x to 1.63x). Alone, a call leaves at once, as with ``to_thread``.

A trip that has left holds up no later call: those leave in the next trip, on another thread, so
a slow call (a lock another process holds) delays only the calls that shared its trip. A
:class:`Lane` is the ordered kind: one trip out at a time, each call run after every call asked
before it (a run's state store, :mod:`questfoundry.studio.state_queue`). Each call runs in a copy
of its caller's context, as with ``to_thread``.
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
    return await trips.call(fn, args)


class Lane:
    """Calls carried off the event loop one trip at a time, run in the order they were asked.

    While a trip is out, the calls asked wait for the next, which takes all of them; so a call
    sees what every call asked before it did (a run's state: a task reads what an earlier one
    saved). Bound to the running loop at its first call.
    """

    def __init__(self) -> None:
        self._trips: _Trips | None = None

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on a worker thread, after every call asked before it."""
        trips = self._trips
        loop = asyncio.get_running_loop()
        if trips is None or trips.loop is not loop:
            trips = self._trips = _Trips(loop, serial=True)
        return await trips.call(fn, args)


class _Trips:
    """The calls of one event loop waiting for a trip to a worker thread; ``serial``: one trip
    out at a time (a :class:`Lane`), else a trip per moment."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, serial: bool = False) -> None:
        self.loop = loop
        self._serial = serial
        self._lock = threading.Lock()
        self._waiting: list[_Call] = []
        self._busy = False  #: a trip waits to leave (serial: a trip is out)

    def call(self, fn: Callable[..., T], args: tuple[Any, ...]) -> asyncio.Future[T]:
        future: asyncio.Future[T] = self.loop.create_future()
        asked: _Call = (contextvars.copy_context(), fn, args, future)
        with self._lock:
            self._waiting.append(asked)
            leaving, self._busy = not self._busy, True
        if leaving:
            try:
                _executor().submit(self._run)
            except RuntimeError:  # the interpreter is shutting down: no trip leaves again
                with self._lock:  # the call fails here, so no later trip may run it
                    self._waiting.remove(asked)
                    self._busy = False
                raise
        return future

    def _run(self) -> None:
        """Carry every call waiting now; serial: again while calls were asked meanwhile."""
        while True:
            with self._lock:
                calls, self._waiting = self._waiting, []
                if not self._serial:
                    self._busy = False
            self._carry(calls)
            if not self._serial:
                return
            with self._lock:
                if not self._waiting:
                    self._busy = False
                    return

    def _carry(self, calls: list[_Call]) -> None:
        """One trip: run ``calls`` in order, then hand all their outcomes to the loop at once."""
        outcomes: list[_Outcome] = []
        for context, fn, args, future in calls:
            try:
                outcomes.append((future, context.run(fn, *args), None))
            except BaseException as exc:  # handed to its own caller, as to_thread does
                outcomes.append((future, None, exc))
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody awaits these
            self.loop.call_soon_threadsafe(_deliver, outcomes)


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
