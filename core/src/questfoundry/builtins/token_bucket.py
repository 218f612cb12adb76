"""Built-in limiter strategy ``token_bucket``: in-process buckets, safe for threads and asyncio.

Each :class:`~questfoundry.contracts.records.Rate` is a bucket holding up to ``limit`` units that
refills continuously at ``limit / period`` units per second. Acquiring several buckets is
all-or-nothing. It counts this process only: the default ``sqlite`` strategy shares its buckets with
every process on the machine, and ``redis`` across machines.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from questfoundry.kit import BackendContext, BucketLevel, Capability, Clock, Rate, hookimpl


class _Bucket:
    __slots__ = ("level", "limit", "per_second", "period", "stamp")

    def __init__(self, rate: Rate, now: float) -> None:
        self.limit = rate.limit
        self.period = rate.period
        self.per_second = rate.limit / rate.period
        self.level = rate.limit
        self.stamp = now

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.level = min(self.limit, self.level + (now - self.stamp) * self.per_second)
            self.stamp = now


class TokenBucketLimiter:
    """Token buckets keyed by :attr:`Rate.key`; keys without a rate are unlimited."""

    capabilities: frozenset[str] = frozenset({Capability.NON_BLOCKING})

    def __init__(self, rates: Iterable[Rate], clock: Clock | None = None) -> None:
        self._clock = clock or Clock()
        now = self._clock.monotonic()
        self._buckets = {rate.key: _Bucket(rate, now) for rate in rates}
        self._lock = threading.Lock()

    def acquire(self, amounts: Mapping[str, float]) -> float:
        now = self._clock.monotonic()
        buckets = self._buckets
        wait = 0.0
        with self._lock:
            for key, amount in amounts.items():
                bucket = buckets.get(key)
                if bucket is None:
                    continue
                bucket.refill(now)
                if amount > bucket.level:
                    if amount > bucket.limit:
                        return math.inf
                    wait = max(wait, (amount - bucket.level) / bucket.per_second)
            if wait:
                return wait
            for key, amount in amounts.items():
                bucket = buckets.get(key)
                if bucket is not None:
                    bucket.level -= amount
        return 0.0

    def adjust(self, amounts: Mapping[str, float]) -> None:
        now = self._clock.monotonic()
        with self._lock:
            for key, amount in amounts.items():
                bucket = self._buckets.get(key)
                if bucket is not None:
                    bucket.refill(now)
                    bucket.level = min(bucket.limit, bucket.level - amount)

    def levels(self) -> Sequence[BucketLevel]:
        now = self._clock.monotonic()
        with self._lock:
            for bucket in self._buckets.values():
                bucket.refill(now)
            return [
                BucketLevel(key, b.level, b.limit, b.period) for key, b in self._buckets.items()
            ]

    def close(self) -> None:
        """Nothing to release."""


def make_token_bucket(settings: Mapping[str, Any], context: BackendContext) -> TokenBucketLimiter:
    return TokenBucketLimiter(settings.get("rates", ()), context.clock)


@hookimpl
def limiter_strategies() -> dict[str, Any]:
    return {"token_bucket": make_token_bucket}
