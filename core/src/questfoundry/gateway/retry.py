"""When and how long to retry a failed provider call, and the deadline every call keeps.

Retriable failures (network errors, timeouts, 429, 5xx: ``ProviderError.retriable``) are retried
with exponential backoff and full jitter; a ``Retry-After`` from the provider is honoured instead of
the jittered delay. Everything else fails at once. The gateway drives the loop (see
:mod:`questfoundry.gateway.pipeline`) so every attempt passes the rate limiter again.

Every wait is bounded: a ``Retry-After`` longer than ``max_delay`` or than what is left of the
call's deadline ends the call at once with :class:`~questfoundry.contracts.errors.RateLimitError`
(carrying ``retry_after``), and no attempt starts after the deadline. Garbage, infinite, negative
and past ``Retry-After`` values are ignored in favour of the backoff.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from questfoundry.contracts.errors import ProviderError, RateLimitError

DEFAULT_DEADLINE = 600.0


def is_retriable(error: BaseException) -> bool:
    return isinstance(error, ProviderError) and error.retriable


@dataclass(frozen=True)
class RetryPolicy:
    """The ``retry`` section of config.yml; delays in seconds."""

    enabled: bool = True
    max_retries: int = 3
    initial_delay: float = 0.5
    max_delay: float = 30.0
    respect_retry_after: bool = True
    deadline: float = DEFAULT_DEADLINE

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> RetryPolicy:
        return cls(
            enabled=settings.get("enabled", True),
            max_retries=settings.get("max_retries", 3),
            initial_delay=settings.get("initial_delay_ms", 500) / 1000,
            max_delay=settings.get("max_delay_ms", 30_000) / 1000,
            respect_retry_after=settings.get("respect_retry_after", True),
            deadline=float(settings.get("deadline_seconds", DEFAULT_DEADLINE)),
        )

    @property
    def attempts(self) -> int:
        return 1 + (self.max_retries if self.enabled else 0)

    def backoff(self, retry: int) -> float:
        """Full jitter: uniform in [0, min(max_delay, initial_delay · 2^retry)]."""
        ceiling = min(self.max_delay, self.initial_delay * 2.0 ** min(retry, 60))
        return random.uniform(0.0, ceiling)

    def delay(self, error: BaseException, retry: int, remaining: float) -> float:
        """Seconds to wait before retry number ``retry`` (0 for the first) after ``error``.

        Re-raises ``error`` when it is not worth retrying or no attempt is left; raises
        :class:`RateLimitError` when the provider asks for a wait the retry budget cannot give.
        """
        if not is_retriable(error) or retry + 1 >= self.attempts:
            raise error
        retry_after = getattr(error, "retry_after", None)
        if self.respect_retry_after and retry_after is not None and retry_after > 0:
            if retry_after > min(self.max_delay, remaining):
                provider = getattr(error, "provider", "") or "the provider"
                raise RateLimitError(
                    f"{provider} asks to wait longer than the retry budget allows",
                    retry_after=retry_after,
                ) from None
            return float(retry_after)
        wait = self.backoff(retry)
        if wait >= remaining:
            raise error
        return wait
