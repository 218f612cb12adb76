"""``Breaker``: stop asking a Redis that is failing, and ask again now and then.

Closed, every call may use Redis. After ``failures`` failures in a row it opens: for ``cooldown``
seconds no call tries Redis. Then the first call to ask is let through as a probe (and the
cooldown starts again for everyone else); its success closes the breaker, its failure keeps it
open for another cooldown. So however long an outage lasts, one process pays for at most one
timeout per cooldown. Time comes from the backend context's clock, so tests move it by hand.

With ``shared``, the open state lives in that small file (JSON: which Redis, open until when, on
the wall clock) instead of in the process, so every process of the machine that uses the same
Redis sees it: a short process started during an outage skips Redis at once instead of paying
the timeouts that open its own breaker, and the probe after a cooldown is one for them all. The
file is read only when it changed (its size and modification time); a file that cannot be read,
names another Redis, or says "open" further ahead than one cooldown opens nothing. Where the
file cannot be written the process keeps the state itself, as without ``shared``.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from questfoundry.kit import Clock


class Breaker:
    """A circuit breaker over consecutive failures; safe to share between threads."""

    def __init__(
        self,
        failures: int,
        cooldown: float,
        clock: Clock,
        *,
        shared: Path | None = None,
        name: str = "",
    ) -> None:
        self.failures = failures
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._failed = 0  # failures in a row, in this process
        #: open until then (None: closed); with ``shared``, only while the file cannot be written
        self._retry_at: float | None = None
        self._shared = None if shared is None else _SharedState(shared, name)

    @property
    def closed(self) -> bool:
        return self._open_until() is None

    def allow(self) -> bool:
        """May this call use Redis? Always when closed; when open, one probe per cooldown."""
        if self._open_until() is None:
            return True
        with self._lock:
            until, now = self._open_until(), self._now()
            if until is None or now >= until:
                if until is not None:
                    self._set(now + self.cooldown)  # this call is the probe
                return True
            return False

    def succeeded(self) -> None:
        """Redis answered: close the breaker."""
        if self._failed or self._open_until() is not None:
            with self._lock:
                self._failed = 0
                self._set(None)

    def failed(self) -> bool:
        """Redis did not answer; True when this failure opened the breaker (or kept it open)."""
        with self._lock:
            self._failed += 1
            if self._open_until() is None and self._failed < self.failures:
                return False
            self._set(self._now() + self.cooldown)
            return True

    def _now(self) -> float:
        return self._clock.time() if self._shared else self._clock.monotonic()

    def _open_until(self) -> float | None:
        until = None if self._shared is None else self._shared.read()
        if until is None or until > self._now() + self.cooldown:  # none, or a clock set back
            return self._retry_at
        return until

    def _set(self, until: float | None) -> None:
        written = self._shared is not None and self._shared.write(until)
        self._retry_at = None if written else until


class _SharedState:
    """The breaker's "open until" in a file every process of the machine reads."""

    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.name = name
        self._seen: tuple[int, int] | None = None  # (size, mtime_ns) of the file last read
        self._until: float | None = None

    def read(self) -> float | None:
        try:
            stat = self.path.stat()
        except OSError:
            self._seen = self._until = None
            return None
        seen = (stat.st_size, stat.st_mtime_ns)
        if seen != self._seen:
            self._seen, self._until = seen, self._parse()
        return self._until

    def write(self, until: float | None) -> bool:
        """Store ``until`` (None: closed, the file goes); False when the file cannot be written."""
        self._seen = None  # the next read looks at the file again
        try:
            if until is None:
                self.path.unlink(missing_ok=True)
                return True
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            partial.write_text(json.dumps({"redis": self.name, "until": until}), "utf-8")
            partial.replace(self.path)  # whole or not at all
        except OSError:
            return False
        return True

    def _parse(self) -> float | None:
        try:
            data = json.loads(self.path.read_text("utf-8"))
            until = data["until"] if data.get("redis") == self.name else None
        except (OSError, ValueError, TypeError, AttributeError, KeyError):
            return None
        return float(until) if isinstance(until, (int, float)) else None
