"""Flight locks: which process on this machine is calling the provider for a cache key.

One file per cache folder (``<cache folder>/locks/flights``); a key's lock is a record lock on
one byte of it, at an offset drawn from the key's hash, taken with ``fcntl.lockf``
(``msvcrt.locking`` on Windows) through the one descriptor each process keeps on the file. Taking
and releasing one is a system call each: no file made, no database transaction, nothing that
waits on another process's write. The system drops a process's record locks when it ends, so a
process killed mid-call frees its keys at once. Record locks do not exclude each other within a
process, so a table here says which keys this process holds, each for ``ttl`` seconds at most;
across processes a lock lasts until released or its process ends (a caller waiting on one gives
up after ``caching.coalesce_seconds``). Locks are an optimisation: any failure answers "proceed
without one".
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger("questfoundry.cache.file")

#: offsets stay below this, so every platform's lock call can reach them
SPAN = 1 << 31

if sys.platform == "win32":  # pragma: no cover - Windows
    import msvcrt

    def _lock(descriptor: int, offset: int, take: bool) -> None:
        os.lseek(descriptor, offset, os.SEEK_SET)  # under _guard: one position at a time
        msvcrt.locking(descriptor, msvcrt.LK_NBLCK if take else msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(descriptor: int, offset: int, take: bool) -> None:
        mode = fcntl.LOCK_EX | fcntl.LOCK_NB if take else fcntl.LOCK_UN
        fcntl.lockf(descriptor, mode, 1, offset, os.SEEK_SET)  # OSError when another holds it


def _offset(key: str) -> int:
    """The byte of the lock file that stands for ``key``."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % SPAN


class _Held(NamedTuple):
    token: str
    until: float  #: monotonic seconds


class _File:
    """This process's descriptor on one lock file, and the locks it holds through it."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self.held: dict[int, _Held] = {}


#: never closed while the process runs: closing any descriptor of a file drops every record lock
#: the process holds on it
_files: dict[Path, _File] = {}
_guard = threading.Lock()


def _forget_parent_locks() -> None:
    """In a forked child: the parent's locks are its own (the child inherits none)."""
    global _guard  # noqa: PLW0603 - a lock held by another thread at fork is never released
    _guard = threading.Lock()
    for file in _files.values():
        file.held.clear()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_parent_locks)


class FlightLocks:
    """Owner-released locks by key, shared by every process using the folder."""

    def __init__(self, directory: Path, timeout: float) -> None:
        self.path = directory / "locks" / "flights"
        self._mine: set[tuple[int, str]] = set()  # (offset, token) taken through this object
        self._warned = False

    def lock(self, key: str, ttl: float) -> str | None:
        """A token when this caller now holds ``key``'s lock; None when another does;
        ``""`` when locks cannot be used here (the caller goes ahead without one)."""
        offset = _offset(key)
        now = time.monotonic()
        with _guard:
            try:
                file = _files.get(self.path) or _files.setdefault(self.path, _File(self.path))
            except OSError as exc:
                self._warn(exc)
                return ""
            held = file.held.get(offset)
            if held is not None and held.until > now:
                return None
            if held is None:  # else ours already, its holder past its time: taken over
                try:
                    _lock(file.descriptor, offset, True)
                except OSError:
                    return None
            token = secrets.token_hex(8)
            file.held[offset] = _Held(token, now + ttl)
            self._mine.add((offset, token))
            return token

    def unlock(self, key: str, token: str) -> None:
        """Release ``key`` if ``token`` still holds it; never raises."""
        with _guard:
            self._release(_offset(key), token)

    def close(self) -> None:
        """Release every lock taken through this object."""
        with _guard:
            for offset, token in list(self._mine):
                self._release(offset, token)

    def _release(self, offset: int, token: str) -> None:
        self._mine.discard((offset, token))
        file = _files.get(self.path)
        held = None if file is None else file.held.get(offset)
        if file is None or held is None or held.token != token:
            return
        del file.held[offset]
        try:
            _lock(file.descriptor, offset, False)
        except OSError as exc:
            self._warn(exc)

    def _warn(self, exc: BaseException) -> None:
        if not self._warned:
            self._warned = True
            log.warning(
                "file cache %s: flight locks unavailable, identical calls in other processes "
                "are not coalesced: %s",
                self.path.parent.parent,
                exc,
            )
