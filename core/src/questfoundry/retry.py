"""When and how long to retry a failed provider call.

Retriable failures (network errors, timeouts, 429, 5xx: ``ProviderError.retriable``) are retried
with exponential backoff and full jitter; a ``Retry-After`` from the provider is honoured instead of
the jittered delay. Everything else fails at once. The gateway drives the loop so that every attempt
passes the rate limiter again.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from questfoundry.errors import ProviderError
from questfoundry.interfaces import Clock

if TYPE_CHECKING:
    import tenacity


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from an HTTP ``Retry-After`` value (delay-seconds or an HTTP date); None if bad.

    Provider plugins use it to fill :attr:`ProviderRateLimitError.retry_after`.
    """
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def is_retriable(error: BaseException) -> bool:
    return isinstance(error, ProviderError) and error.retriable


@dataclass(frozen=True)
class RetryPolicy:
    """The ``retry`` section of config.yml."""

    enabled: bool = True
    max_retries: int = 3
    initial_delay: float = 0.5
    max_delay: float = 30.0
    respect_retry_after: bool = True

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> RetryPolicy:
        return cls(
            enabled=settings.get("enabled", True),
            max_retries=settings.get("max_retries", 3),
            initial_delay=settings.get("initial_delay_ms", 500) / 1000,
            max_delay=settings.get("max_delay_ms", 30_000) / 1000,
            respect_retry_after=settings.get("respect_retry_after", True),
        )

    @property
    def attempts(self) -> int:
        return 1 + (self.max_retries if self.enabled else 0)

    def _options(self) -> dict[str, Any]:
        import tenacity

        jitter = tenacity.wait_random_exponential(multiplier=self.initial_delay, max=self.max_delay)

        def wait(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            retry_after = getattr(error, "retry_after", None)
            if self.respect_retry_after and retry_after is not None:
                return float(retry_after)
            return float(jitter(state))

        return {
            "stop": tenacity.stop_after_attempt(self.attempts),
            "wait": wait,
            "retry": tenacity.retry_if_exception(is_retriable),
            "reraise": True,
        }

    def retrying(self, clock: Clock) -> tenacity.Retrying:
        """A tenacity loop: ``for attempt in policy.retrying(clock): with attempt: ...``."""
        import tenacity

        return tenacity.Retrying(sleep=clock.sleep, **self._options())

    def aretrying(self, clock: Clock) -> tenacity.AsyncRetrying:
        """The asyncio twin of :meth:`retrying`; sleeps with ``clock.asleep``."""
        import tenacity

        return tenacity.AsyncRetrying(sleep=clock.asleep, **self._options())
