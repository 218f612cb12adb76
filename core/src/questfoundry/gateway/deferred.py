"""Work a call leaves behind: storing its reply in a cache that blocks, then releasing its flight
lock, and reconciling a limiter that blocks. None of it changes the caller's answer, so it runs on
one background thread after the reply is returned.

*When* it runs matters as much: Python runs one thread at a time, and a background thread busy
while the caller plans its next call, reads the cache and acquires from the limiter makes each of
those steps wait for it (measured: the steps before a miss took 3x as long). So the thread works
while a caller is waiting on a provider (:meth:`Deferred.waiting`, around every attempt), which is
most of a call, or once :data:`PATIENCE` seconds have passed, or on :meth:`Deferred.drain`.

Nothing is lost by the wait: until a reply is stored, its flight stays on this process's board
(:mod:`~questfoundry.gateway.flights`), so an identical request finds the answer there; another
process finds the flight's lock still held and waits for the answer to reach the cache. Work that
adds up (a limiter's reconciliations) can wait longer and run as one (:meth:`Deferred.later`).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("questfoundry.gateway")

#: the most seconds work waits for a caller to wait on a provider
PATIENCE = 0.05

_Work = tuple[float, int, Callable[..., Any], tuple[Any, ...]]


class Deferred:
    """One daemon thread running queued calls when they fall due; started on the first one."""

    def __init__(self) -> None:
        self._queue: list[_Work] = []  # a heap by due time, then order of arrival
        self._order = itertools.count()
        self._ready = threading.Condition()
        self._running = 0  #: calls taken off the queue and not finished
        self._rushed = 0  #: drains waiting: everything is due now
        self._waiting = 0  #: callers waiting on a provider: the work is welcome now
        self._thread: threading.Thread | None = None

    def soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the background thread, while a caller waits on a provider or
        within :data:`PATIENCE` seconds; a failure is logged, never raised."""
        self._queued(PATIENCE, True, fn, args)

    def later(self, seconds: float, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the background thread ``seconds`` from now (or at a drain)."""
        self._queued(seconds, False, fn, args)

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """Around a wait on a provider: queued work runs meanwhile."""
        with self._ready:
            self._waiting += 1
            if self._queue:
                self._ready.notify_all()
        try:
            yield
        finally:
            with self._ready:
                self._waiting -= 1

    def drain(self) -> None:
        """Wait until everything queued so far has run (at once when called from the thread)."""
        if threading.current_thread() is self._thread:
            return
        with self._ready:
            self._rushed += 1
            self._ready.notify_all()
            try:
                self._ready.wait_for(lambda: not self._queue and not self._running)
            finally:
                self._rushed -= 1

    def _queued(self, seconds: float, eager: bool, fn: Callable[..., Any], args: Any) -> None:
        # an eager one's order is negative: it may run before its time, while a caller waits
        order = -next(self._order) if eager else next(self._order)
        with self._ready:
            heapq.heappush(self._queue, (time.monotonic() + seconds, order, fn, args))
            if self._thread is None or not self._thread.is_alive():  # first, or forked
                self._thread = threading.Thread(
                    target=self._work, name="questfoundry-gateway-deferred", daemon=True
                )
                self._thread.start()
            self._ready.notify_all()

    def _next(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        """The next work due (eager work first while a caller waits, in order), waiting for it."""
        while True:
            now = time.monotonic()
            eager = [work for work in self._queue if work[1] < 0] if self._waiting else []
            if eager:
                chosen = max(eager, key=lambda work: work[1])  # the earliest queued
                self._queue.remove(chosen)
                heapq.heapify(self._queue)
                return chosen[2], chosen[3]
            if self._queue and (self._rushed or self._queue[0][0] <= now):
                _, _, fn, args = heapq.heappop(self._queue)
                return fn, args
            self._ready.wait(self._queue[0][0] - now if self._queue else None)

    def _work(self) -> None:
        while True:
            with self._ready:
                fn, args = self._next()
                self._running += 1
            try:
                fn(*args)
            except Exception:
                log.exception("deferred gateway work failed")
            finally:
                with self._ready:
                    self._running -= 1
                    self._ready.notify_all()
