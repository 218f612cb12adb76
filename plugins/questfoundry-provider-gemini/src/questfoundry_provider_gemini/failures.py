"""Turn what ``google-genai`` raises into the core's provider errors.

The SDK raises ``errors.ClientError`` (4xx) and ``errors.ServerError`` (5xx), both
``errors.APIError`` carrying Google's ``{"error": {"code", "message", "status", "details"}}``;
the transport (QuestFoundry's, on httpx: the provider hands the SDK its clients) raises httpx's
network and timeout errors, and :mod:`questfoundry.kit.transport`'s deadline and size errors;
a body that is not JSON surfaces as a ``ValueError``. The gateway decides on retries from the class
of error this module returns, so the mapping is the whole retry policy of this provider:

* 429 → :class:`ProviderRateLimitError`, ``retry_after`` from ``Retry-After`` or ``RetryInfo``;
* 408, 5xx, network errors, timeouts, malformed replies → :class:`RetriableProviderError`;
* any other 4xx → :class:`NonRetriableProviderError` with Google's message.

The API key travels in the ``x-goog-api-key`` header; it is scrubbed from every message anyway.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from typing import Any

import pydantic
from google.genai import errors as genai_errors

from questfoundry.kit import (
    MASK,
    NonRetriableProviderError,
    ProviderError,
    ProviderRateLimitError,
    RetriableProviderError,
    parse_retry_after,
    redact,
)

PROVIDER = "gemini"
_RETRY_INFO = "google.rpc.RetryInfo"


def _httpx_errors(*names: str) -> tuple[type[BaseException], ...]:
    """Error classes ``names`` of whichever httpx flavours are installed (httpx2, httpx)."""
    found: list[type[BaseException]] = []
    for module_name in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        found += [getattr(module, name) for name in names]
    return tuple(found)


#: aiohttp's timeouts subclass asyncio.TimeoutError (not yet the built-in one on Python 3.10)
TIMEOUT_ERRORS: tuple[type[BaseException], ...] = (
    TimeoutError,
    asyncio.TimeoutError,
    *_httpx_errors("TimeoutException"),
)
TRANSPORT_ERRORS = _httpx_errors("TransportError", "DecodingError")
MALFORMED_ERRORS: tuple[type[BaseException], ...] = (
    genai_errors.UnknownApiResponseError,
    json.JSONDecodeError,
    pydantic.ValidationError,
)


def translate(error: BaseException, *, secret: str = "", where: str = "") -> ProviderError | None:
    """The core's error for ``error``, or None when it is not a provider failure (a bug).

    ``where`` is the base URL called, as messages may show it: a connection failure names it.
    """
    if isinstance(error, ProviderError):
        return error
    if isinstance(error, genai_errors.APIError):
        return _from_api_error(error, secret)
    if isinstance(error, TIMEOUT_ERRORS):
        return RetriableProviderError("request timed out", provider=PROVIDER)
    if isinstance(error, TRANSPORT_ERRORS) or _is_aiohttp_error(error):
        detail = _one_line(str(error), secret) or type(error).__name__
        to = f" to {where}" if where else ""
        return RetriableProviderError(f"connection{to} failed: {detail}", provider=PROVIDER)
    if isinstance(error, MALFORMED_ERRORS):
        return RetriableProviderError("malformed response from the Gemini API", provider=PROVIDER)
    return None


def _from_api_error(error: genai_errors.APIError, secret: str) -> ProviderError:
    code = error.code if isinstance(error.code, int) else 0
    message = _one_line(str(error.message or error.status or "request failed"), secret)
    if code == 429:
        return ProviderRateLimitError(
            f"rate limited: {message}",
            provider=PROVIDER,
            retry_after=_retry_after(error),
        )
    if code == 408 or code >= 500 or code < 400:
        return RetriableProviderError(message, provider=PROVIDER, status_code=code or None)
    return NonRetriableProviderError(message, provider=PROVIDER, status_code=code)


def _retry_after(error: genai_errors.APIError) -> float | None:
    """Seconds to wait: the ``Retry-After`` header if present, else Google's ``RetryInfo``."""
    headers = getattr(getattr(error, "response", None), "headers", None)
    header = headers.get("retry-after") if headers is not None else None
    seconds = parse_retry_after(header) if isinstance(header, str) else None
    return seconds if seconds is not None else _retry_info_delay(error.details)


def _retry_info_delay(details: Any) -> float | None:
    """``retryDelay`` of a ``google.rpc.RetryInfo`` in the error details (``"17s"``, ``"0.5s"``)."""
    error = details.get("error", details) if isinstance(details, dict) else None
    items = error.get("details") if isinstance(error, dict) else None
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or not str(item.get("@type", "")).endswith(_RETRY_INFO):
            continue
        delay = item.get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return max(0.0, float(delay[:-1]))
            except ValueError:
                return None
    return None


def _is_aiohttp_error(error: BaseException) -> bool:
    """aiohttp serves async calls when installed; recognised without importing it."""
    return any(
        cls.__module__.startswith("aiohttp") and cls.__name__ == "ClientError"
        for cls in type(error).__mro__
    )


def _one_line(text: str, secret: str) -> str:
    """Google's messages may span lines (quota lists); a user sees one line, never the key."""
    text = " ".join(text.split())
    return redact(text.replace(secret, MASK) if secret else text)
