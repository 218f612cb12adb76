"""Reading an HTTP ``Retry-After`` value, as every provider plugin must."""

from __future__ import annotations

import email.utils
import math
import time


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from an HTTP ``Retry-After`` value (delay-seconds or an HTTP date).

    None when the value is missing, unreadable, not finite, or not in the future: the caller then
    falls back to its own backoff. Provider plugins use it to fill
    :attr:`ProviderRateLimitError.retry_after`.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
            seconds = when.timestamp() - (time.time() if now is None else now)
        except (TypeError, ValueError, OverflowError, IndexError):
            return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None
