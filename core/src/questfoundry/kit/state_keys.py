"""What a state key may be: portable between every store, never a way out of one.

A key is a non-empty string of ``/``-separated parts, e.g. ``book/sections/3``, normalised to
Unicode NFC, so the two spellings of ``é`` (one code point, or ``e`` and a combining accent) are
one key. Refused: empty parts (``a//b``, a trailing ``/``), a leading ``/`` (an absolute path),
``.`` and ``..`` parts, ``\\`` (a Windows separator), control characters (C0 with NUL, DEL, C1,
and the line and paragraph separators U+2028 and U+2029), text that is not valid Unicode (a lone
surrogate), a part longer than :data:`MAX_PART_BYTES` and a key longer than
:data:`MAX_KEY_BYTES` (in UTF-8). A store's own records (``_qf/…``) may be
:data:`INTERNAL_ROOM` bytes longer: they wrap a key (``_qf/stage/<key>``).

Every store applies :func:`check_key` and uses the key it returns, and import applies
:func:`key_problem` to every key of a file before writing anything, so a state exported from one
store imports into any other.
"""

from __future__ import annotations

import re
import unicodedata

from questfoundry.contracts.bounded import shown
from questfoundry.contracts.errors import StateError
from questfoundry.contracts.protocols import INTERNAL_KEY_PREFIX

__all__ = [
    "INTERNAL_KEY_PREFIX",
    "MAX_KEY_BYTES",
    "MAX_PART_BYTES",
    "check_key",
    "is_internal",
    "key_problem",
]

#: the longest part of a key, in UTF-8 bytes (a file name holds it on every file system)
MAX_PART_BYTES = 200
#: the longest key, in UTF-8 bytes
MAX_KEY_BYTES = 1024
#: how much longer an internal key may be than :data:`MAX_KEY_BYTES`
INTERNAL_ROOM = 64

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def key_problem(key: object) -> str | None:
    """Why ``key`` is not a valid state key, or None when it is (see the module)."""
    if not isinstance(key, str):
        return f"a state key must be a string, not {type(key).__name__}"
    if not key:
        return "a state key cannot be empty"
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return f"state key {shown(key)} is not valid Unicode text"
    key = unicodedata.normalize("NFC", key)
    control = _CONTROL.search(key)
    if control:
        return f"state key {shown(key)} holds a control character (U+{ord(control[0]):04X})"
    if "\\" in key:
        return f"state key {shown(key)} holds a backslash"
    if key.startswith("/"):
        return f"state key {shown(key)} is an absolute path"
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return f"state key {shown(key)} has an empty, '.' or '..' part"
    longest = max(parts, key=lambda part: len(part.encode()))
    if len(longest.encode()) > MAX_PART_BYTES:
        return (
            f"state key {shown(key)} has a part of {len(longest.encode())} bytes; a part may "
            f"have at most {MAX_PART_BYTES} (in UTF-8)"
        )
    limit = MAX_KEY_BYTES + (INTERNAL_ROOM if is_internal(key) else 0)
    if len(key.encode()) > limit:
        return (
            f"state key {shown(key)} is {len(key.encode())} bytes long; a key may have at most "
            f"{limit} (in UTF-8)"
        )
    return None


def check_key(key: str) -> str:
    """``key`` in NFC when it is valid (what a store keeps it as); else :class:`StateError`."""
    problem = key_problem(key)
    if problem is not None:
        raise StateError(problem)
    return unicodedata.normalize("NFC", key)


def is_internal(key: str) -> bool:
    """Whether ``key`` is one of a store's own records (``_qf/…``), hidden from ``list_keys``."""
    return key.startswith(INTERNAL_KEY_PREFIX)
