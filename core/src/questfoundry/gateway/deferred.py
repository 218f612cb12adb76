"""Work a call can leave for later: reconciling a limiter that blocks with what calls really used.

A limiter is reconciled after each reply (the estimate took more tokens than the call used, or
fewer). For a limiter whose every write is a transaction on a shared file (``sqlite``) or a round
trip (``redis``), one write per call would hold the limiter while the next caller acquires from it
(measured: the sqlite limiter's acquire took 2.5x as long with its reconciliation running beside
it); the reconciliations of a moment are summed into one write instead, made on one background
thread (:meth:`Deferred.later`). Limits err on the safe side meanwhile: a call's estimate is taken
before the call and given back a moment after. :meth:`Deferred.drain` runs what is queued at once
(the runtime drains before it closes a backend).

Replies are never stored later: a store is made before the call's flight lands and its lock is
released, so whoever reads the cache next finds the answer there.
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

    def later(self, seconds: float, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the background thread ``seconds`` from now (or at a drain); a
        failure is logged, never raised."""
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
