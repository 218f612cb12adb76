"""Keep API keys out of what QuestFoundry prints: messages, log records, ``--debug`` tracebacks.

Providers register the keys they were built with (:func:`register_secret`); :func:`redact` masks
those, and anything shaped like a credential — ``Authorization: Bearer …``, an ``x-goog-api-key``
header, ``sk-…`` OpenAI keys, ``AIza…`` Google keys — with ``***``.

Log records: a logger's filter sees only the records logged to that very logger, not those its
children propagate, so :func:`install` puts one :class:`RedactingFilter` on ``questfoundry`` and
on every ``questfoundry.*`` / ``questfoundry_*`` logger that exists. Registering a secret installs
it again, which covers the modules imported by then (the providers and everything that calls them).
"""

from __future__ import annotations

import logging
import re
import threading
import traceback

__all__ = [
    "MASK",
    "RedactingFilter",
    "format_exception",
    "install",
    "redact",
    "register_secret",
]

MASK = "***"
#: shorter values are not treated as secrets: masking them would garble ordinary text
MIN_SECRET_LENGTH = 6

_PATTERNS = (
    # Authorization: Bearer <token> / Authorization: <token>, in headers, reprs and JSON
    re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?(?:bearer|basic|token)?\s*)[^\s'\",;]+"),
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=\-]+"),
    re.compile(r"(?i)((?:x-goog-api-key|api-key|api_key)['\"]?\s*[:=]\s*['\"]?)[^\s'\",;]+"),
    re.compile(r"()\bsk-[A-Za-z0-9_\-*]{3,}"),  # OpenAI echoes a key half-masked in its 401
    re.compile(r"()\bAIza[0-9A-Za-z_\-]{20,}"),
)

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Mask ``value`` wherever :func:`redact` runs from now on (an API key a provider uses)."""
    if value and len(value.strip()) >= MIN_SECRET_LENGTH:
        with _lock:
            _secrets.add(value.strip())
    install()


def redact(text: str) -> str:
    """``text`` with every registered secret and credential-shaped value replaced by ``***``."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda match: match.group(1) + MASK, text)
    return text


def format_exception(error: BaseException) -> str:
    """``error``'s full traceback, chain included, with secrets masked: what ``--debug`` prints."""
    return redact("".join(traceback.format_exception(type(error), error, error.__traceback__)))


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message, arguments, traceback and stack before any handler.

    The message is formatted once here (``msg % args``) so a secret passed as an argument is
    masked too. When the traceback held a secret, the exception itself is dropped from the record
    (``exc_info``) and only the masked text (``exc_text``) kept, so no handler can format it again.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = redact(message), None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        if record.exc_text:
            masked = redact(record.exc_text)
            if masked != record.exc_text:
                record.exc_text, record.exc_info = masked, None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FILTER = RedactingFilter()


def install() -> None:
    """Put the filter on the package's loggers (see the module docstring); idempotent."""
    names = ["questfoundry"] + [
        name
        for name in list(logging.Logger.manager.loggerDict)
        if name.startswith(("questfoundry.", "questfoundry_"))
    ]
    for name in names:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
