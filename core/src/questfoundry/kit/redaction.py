"""Keep API keys out of what QuestFoundry prints: messages, log records, ``--debug`` tracebacks.

Providers register the keys they were built with (:func:`register_secret`); :func:`redact` masks
those, and anything shaped like a credential — ``Authorization: Bearer …``, an ``x-goog-api-key``
header, ``sk-…`` OpenAI keys, ``AIza…`` Google keys — with ``***``.

A key need not appear whole to leak: a server may echo it less its first characters, a
proxy may cut it. So every run of :data:`FRAGMENT` or more characters of a secret's private part
(the secret less a known public prefix such as ``sk-proj-``, which every key of its kind shares)
is masked too (:class:`Fragments`). Finding them costs one pass over the text that looks up
every fourth position in a set: 25 to 60 ms for 1 MB of text, however many secrets.

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
from collections.abc import Iterable, Iterator

__all__ = [
    "MASK",
    "Fragments",
    "RedactingFilter",
    "format_exception",
    "install",
    "redact",
    "register_secret",
]

MASK = "***"
#: shorter values are not treated as secrets: masking them would garble ordinary text
MIN_SECRET_LENGTH = 6
#: the shortest run of a secret's private part that is masked wherever it appears
FRAGMENT = 8
#: public prefixes of API keys, longest first: every key of its kind starts so, none is secret
PUBLIC_PREFIXES = ("sk-svcacct-", "sk-admin-", "sk-proj-", "sk-", "AIza")
#: the fragment search looks at every STRIDE-th position for a PROBE-long piece of a secret;
#: STRIDE + PROBE - 1 <= FRAGMENT, so a fragment anywhere holds one such piece
STRIDE = 4
PROBE = 5

_PATTERNS = (
    # Authorization: Bearer <token> / Authorization: <token>, in headers, reprs and JSON
    re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?(?:bearer|basic|token)?\s*)[^\s'\",;]+"),
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=\-]+"),
    re.compile(r"(?i)((?:x-goog-api-key|api-key|api_key)['\"]?\s*[:=]\s*['\"]?)[^\s'\",;]+"),
    re.compile(r"()\bsk-[A-Za-z0-9_\-*]{3,}"),  # OpenAI echoes a key half-masked in its 401
    re.compile(r"()\bAIza[0-9A-Za-z_\-]{20,}"),
)


class Fragments:
    """Finds, in a text, every run of :data:`FRAGMENT` or more characters of some secrets'
    private parts (see the module), and masks each run as one ``***``.

    The secrets' windows of :data:`FRAGMENT` characters are kept in a set, and their
    :data:`PROBE`-character pieces in another. Only every :data:`STRIDE`-th position of a
    text is looked up among the pieces: a fragment covers :data:`FRAGMENT` positions, so one of
    its pieces starts at such a position, and the windows around a piece found are then checked.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        privates = {private_part(secret) for secret in secrets}
        privates = {p for p in privates if len(p) >= FRAGMENT}
        self._windows = frozenset(_pieces(privates, FRAGMENT))
        self._probes = frozenset(_pieces(privates, PROBE))

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where fragments are in ``text``, as sorted, separate ``(start, end)`` pairs."""
        found: list[list[int]] = []
        windows, probes, last = self._windows, self._probes, len(text) - FRAGMENT
        for at in range(0, len(text) - PROBE + 1, STRIDE):
            if text[at : at + PROBE] not in probes:
                continue
            for start in range(max(0, at + PROBE - FRAGMENT), min(at, last) + 1):
                if text[start : start + FRAGMENT] in windows:
                    if found and start <= found[-1][1]:
                        found[-1][1] = start + FRAGMENT
                    else:
                        found.append([start, start + FRAGMENT])
        return [(start, end) for start, end in found]

    def mask(self, text: str) -> str:
        """``text`` with every fragment replaced by ``***``."""
        if not self._windows:
            return text
        pieces: list[str] = []
        done = 0
        for start, end in self.spans(text):
            pieces += [text[done:start], MASK]
            done = end
        return "".join(pieces) + text[done:] if pieces else text


def private_part(secret: str) -> str:
    """``secret`` less the public prefix its kind of key shares (see :data:`PUBLIC_PREFIXES`)."""
    for prefix in PUBLIC_PREFIXES:
        if secret.startswith(prefix):
            return secret[len(prefix) :]
    return secret


def _pieces(texts: Iterable[str], size: int) -> Iterator[str]:
    for text in texts:
        yield from (text[at : at + size] for at in range(len(text) - size + 1))


class _Registry:
    """The secrets registered so far, and their fragments, rebuilt when a new one comes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.secrets: list[str] = []  # longest first
        self.fragments = Fragments(())

    def add(self, secret: str) -> None:
        with self.lock:
            if secret not in self.secrets:
                self.secrets = sorted({*self.secrets, secret}, key=len, reverse=True)
                self.fragments = Fragments(self.secrets)


_registry = _Registry()


def register_secret(value: str | None) -> None:
    """Mask ``value`` wherever :func:`redact` runs from now on (an API key a provider uses)."""
    if value and len(value.strip()) >= MIN_SECRET_LENGTH:
        _registry.add(value.strip())
    install()


def redact(text: str) -> str:
    """``text`` with every registered secret, every fragment of one (see the module) and every
    credential-shaped value replaced by ``***``."""
    with _registry.lock:
        secrets, fragments = _registry.secrets, _registry.fragments
    for secret in secrets:
        text = text.replace(secret, MASK)
    text = fragments.mask(text)
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
