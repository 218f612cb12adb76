"""``Breaker``: stop asking a Redis that is failing, and ask again now and then.

Closed, every call may use Redis. After ``failures`` failures in a row it opens: for ``cooldown``
seconds no call tries Redis. Then the first call to ask is let through as a probe (and the
cooldown starts again for everyone else); its success closes the breaker, its failure keeps it
open for another cooldown. So however long an outage lasts, one process pays for at most one
timeout per cooldown. Time comes from the backend context's clock, so tests move it by hand.
"""

from __future__ import annotations

import threading

from questfoundry.kit import Clock


class Breaker:
    """A circuit breaker over consecutive failures; safe to share between threads."""

    def __init__(self, failures: int, cooldown: float, clock: Clock) -> None:
        self.failures = failures
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._failed = 0  # failures in a row
        self._retry_at: float | None = None  # None: closed

    @property
    def closed(self) -> bool:
        return self._retry_at is None

    def allow(self) -> bool:
        """May this call use Redis? Always when closed; when open, one probe per cooldown."""
        if self._retry_at is None:
            return True
        with self._lock:
            now = self._clock.monotonic()
            if self._retry_at is None or now >= self._retry_at:
                if self._retry_at is not None:
                    self._retry_at = now + self.cooldown  # this call is the probe
                return True
            return False

    def succeeded(self) -> None:
        """Redis answered: close the breaker."""
        if self._failed or self._retry_at is not None:
            with self._lock:
                self._failed = 0
                self._retry_at = None

    def failed(self) -> bool:
        """Redis did not answer; True when this failure opened the breaker (or kept it open)."""
        with self._lock:
            self._failed += 1
            if self._retry_at is None and self._failed < self.failures:
                return False
            self._retry_at = self._clock.monotonic() + self.cooldown
            return True
