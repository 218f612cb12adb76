"""openai SDK exceptions → :mod:`questfoundry.kit` errors, with the service's message and no
secrets.

==========================================  =====================================================
SDK raises                                  QuestFoundry raises
==========================================  =====================================================
``RateLimitError`` (429)                    ``ProviderRateLimitError``, ``retry_after`` from
                                            ``retry-after-ms`` or ``Retry-After``
``APITimeoutError``, ``APIConnectionError``  ``RetriableProviderError`` (naming the URL tried)
``APIStatusError`` 5xx, 408, 409            ``RetriableProviderError``
``APIStatusError`` other 4xx                ``NonRetriableProviderError`` with the message
a body that is not JSON, a reply without    ``RetriableProviderError``: a glitch of the service
choices, ``APIResponseValidationError``     or of a proxy in front of it, worth one more try
==========================================  =====================================================
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import openai

from questfoundry.kit import (
    MASK,
    NonRetriableProviderError,
    ProviderError,
    ProviderRateLimitError,
    RetriableProviderError,
    parse_retry_after,
    redact,
)

#: statuses worth retrying besides 5xx: request timeout, and conflicts OpenAI calls transient
RETRIABLE_STATUSES = frozenset({408, 409})
MAX_MESSAGE = 300


def translate(
    error: BaseException, provider: str, secret: str, timeout: float, where: str
) -> ProviderError:
    """The QuestFoundry error for ``error`` raised by the SDK during a call to ``provider`` at
    ``where`` (its base URL, as messages may show it)."""
    if isinstance(error, openai.RateLimitError):
        return ProviderRateLimitError(
            _status_message(error, secret),
            provider=provider,
            status_code=error.status_code,
            retry_after=retry_after(error.response.headers),
            request_id=error.request_id,
        )
    if isinstance(error, openai.APITimeoutError):
        return RetriableProviderError(f"no reply within {timeout:g}s", provider=provider)
    if isinstance(error, openai.APIConnectionError):
        return connection_failed(error.__cause__ or error, provider, secret, where)
    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        kind = (
            RetriableProviderError
            if status >= 500 or status in RETRIABLE_STATUSES
            else NonRetriableProviderError
        )
        message = _status_message(error, secret)
        return kind(message, provider=provider, status_code=status, request_id=error.request_id)
    if isinstance(error, (json.JSONDecodeError, openai.APIResponseValidationError)):
        return RetriableProviderError("the reply was not valid JSON", provider=provider)
    if isinstance(error, openai.APIError):  # e.g. an error event in the middle of a stream
        return RetriableProviderError(clean(error.message, secret), provider=provider)
    return NonRetriableProviderError(clean(str(error), secret), provider=provider)


def connection_failed(
    error: BaseException, provider: str, secret: str, where: str
) -> RetriableProviderError:
    """No reply because the connection to ``where`` failed: the message names that URL, so a
    server that is not running (or a wrong ``base_url``) shows which address was tried."""
    detail = clean(str(error) or type(error).__name__, secret)
    return RetriableProviderError(f"connection to {where} failed: {detail}", provider=provider)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the service asks to wait: ``retry-after-ms`` first, then ``Retry-After``."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    return parse_retry_after(headers.get("retry-after"))


def clean(message: str, secret: str) -> str:
    """One short line with the API key (and anything shaped like a key) masked out."""
    message = redact(message.replace(secret, MASK) if secret else message)
    message = " ".join(message.split())
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


def _status_message(error: openai.APIStatusError, secret: str) -> str:
    """The service's own message from the error body, not the SDK's ``Error code: …`` wrapper."""
    body = error.body
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str) or not message:
        text = error.response.text if error.response is not None else ""
        message = text or error.message
    return clean(message, secret)
