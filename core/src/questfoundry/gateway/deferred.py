"""Work a call leaves behind: storing its reply in a cache that blocks, then releasing its flight
lock, and reconciling a limiter that blocks. None of it changes the caller's answer, so it runs on
one background thread after the reply is returned.

Nothing is lost by the wait: until a reply is stored, its flight stays on this process's board
(:mod:`~questfoundry.gateway.flights`), so an identical request finds the answer there; another
process finds the flight's lock still held and waits for the answer to reach the cache.
:meth:`Deferred.drain` waits for everything queued (the runtime drains before it closes a backend).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger("questfoundry.gateway")


class Deferred:
    """One daemon thread running queued calls in order; started on the first one."""

    def __init__(self) -> None:
        self._queue: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._ready = threading.Condition()
        self._running = 0  #: calls taken off the queue and not finished
        self._thread: threading.Thread | None = None

    def soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the background thread; a failure is logged, never raised."""
        with self._ready:
            self._queue.append((fn, args))
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
            self._ready.wait_for(lambda: not self._queue and not self._running)

    def _work(self) -> None:
        while True:
            with self._ready:
                self._ready.wait_for(lambda: bool(self._queue))
                fn, args = self._queue.popleft()
                self._running += 1
            try:
                fn(*args)
            except Exception:
                log.exception("deferred gateway work failed")
            finally:
                with self._ready:
                    self._running -= 1
                    self._ready.notify_all()
