"""Work a call leaves behind: storing its reply in a cache that blocks, then releasing its flight
lock, and reconciling a limiter that blocks. None of it changes the caller's answer, so it runs on
one background thread after the reply is returned.

Nothing is lost by the wait: until a reply is stored, its flight stays on this process's board
(:mod:`~questfoundry.gateway.flights`), so an identical request finds the answer there; another
process finds the flight's lock still held and waits for the answer to reach the cache. Work that
adds up (a limiter's reconciliations) can wait a little longer and run as one
(:meth:`Deferred.later`), so it seldom holds a backend while a caller needs it.
:meth:`Deferred.drain` runs everything queued (the runtime drains before it closes a backend).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("questfoundry.gateway")

_Work = tuple[float, int, Callable[..., Any], tuple[Any, ...]]


class Deferred:
    """One daemon thread running queued calls when they fall due; started on the first one."""

    def __init__(self) -> None:
        self._queue: list[_Work] = []  # a heap by due time, then order of arrival
        self._order = itertools.count()
        self._ready = threading.Condition()
        self._running = 0  #: calls taken off the queue and not finished
        self._rushed = 0  #: drains waiting: everything is due now
        self._thread: threading.Thread | None = None

    def soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the background thread; a failure is logged, never raised."""
        self.later(0.0, fn, *args)

    def later(self, seconds: float, fn: Callable[..., Any], *args: Any) -> None:
        """:meth:`soon`, not before ``seconds`` from now (or a :meth:`drain`)."""
        with self._ready:
            heapq.heappush(self._queue, (time.monotonic() + seconds, next(self._order), fn, args))
            if self._thread is None or not self._thread.is_alive():  # first, or forked
                self._thread = threading.Thread(
                    target=self._work, name="questfoundry-gateway-deferred", daemon=True
                )
                self._thread.start()
            self._ready.notify_all()

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

    def _work(self) -> None:
        while True:
            with self._ready:
                while True:
                    wait = self._queue[0][0] - time.monotonic() if self._queue else None
                    if wait is not None and (wait <= 0 or self._rushed):
                        break
                    self._ready.wait(wait)
                _, _, fn, args = heapq.heappop(self._queue)
                self._running += 1
            try:
                fn(*args)
            except Exception:
                log.exception("deferred gateway work failed")
            finally:
                with self._ready:
                    self._running -= 1
                    self._ready.notify_all()
