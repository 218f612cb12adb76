"""What a state key may be: portable between every store, never a way out of one.

A key is a non-empty string of ``/``-separated parts, e.g. ``book/sections/3``. Refused: empty
parts (``a//b``, a trailing ``/``), a leading ``/`` (an absolute path), ``.`` and ``..`` parts,
``\\`` (a Windows separator), NUL and other control characters, and text that is not valid
Unicode (a lone surrogate). Every store applies :func:`check_key`, and import applies it to every
key of a file before writing anything, so a state exported from one store imports into any other.
"""

from __future__ import annotations

import re

from questfoundry.contracts.errors import StateError
from questfoundry.contracts.protocols import INTERNAL_KEY_PREFIX

__all__ = ["INTERNAL_KEY_PREFIX", "check_key", "is_internal", "key_problem"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def key_problem(key: object) -> str | None:
    """Why ``key`` is not a valid state key, or None when it is."""
    if not isinstance(key, str):
        return f"a state key must be a string, not {type(key).__name__}"
    if not key:
        return "a state key cannot be empty"
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return f"state key {key!r} is not valid Unicode text"
    if _CONTROL.search(key):
        return f"state key {key!r} holds a control character"
    if "\\" in key:
        return f"state key {key!r} holds a backslash"
    if key.startswith("/"):
        return f"state key {key!r} is an absolute path"
    if any(part in ("", ".", "..") for part in key.split("/")):
        return f"state key {key!r} has an empty, '.' or '..' part"
    return None


def check_key(key: str) -> str:
    """``key`` itself when it is valid; otherwise :class:`StateError` saying why."""
    problem = key_problem(key)
    if problem is not None:
        raise StateError(problem)
    return key


def is_internal(key: str) -> bool:
    """Whether ``key`` is one of a store's own records (``_qf/…``), hidden from ``list_keys``."""
    return key.startswith(INTERNAL_KEY_PREFIX)
