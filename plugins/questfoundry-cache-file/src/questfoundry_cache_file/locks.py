"""Flight locks: which process on this machine is calling the provider for a cache key.

A lock is a row in a small diskcache of its own (``<cache folder>/locks``) holding a random token,
added with diskcache's atomic ``add`` and an expiry, so a process killed mid-call frees its keys
once the expiry passes. Only the holder of the token releases it (compare and delete in one
transaction). Locks are an optimisation: any failure answers "proceed without one".
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import threading
from pathlib import Path

import diskcache

from questfoundry_cache_file.disk import SafeDisk, UnreadableEntry

log = logging.getLogger("questfoundry.cache.file")

_ERRORS = (diskcache.Timeout, sqlite3.Error, OSError, UnreadableEntry, TypeError, ValueError)


class FlightLocks:
    """Expiring, owner-released locks by key, shared by every process using the folder."""

    def __init__(self, directory: Path, timeout: float) -> None:
        self.directory = directory
        self._timeout = timeout
        self._locks: diskcache.Cache | None = None
        self._opening = threading.Lock()
        self._warned = False

    def lock(self, key: str, ttl: float) -> str | None:
        """A token when this caller now holds ``key``'s lock; None when another does;
        ``""`` when locks cannot be used here (the caller goes ahead without one)."""
        token = secrets.token_hex(8)
        try:
            taken = self._open().add(key, token.encode(), expire=ttl)
        except _ERRORS as exc:
            self._warn(exc)
            return ""
        return token if taken else None

    def unlock(self, key: str, token: str) -> None:
        """Release ``key`` if ``token`` still holds it; never raises."""
        try:
            locks = self._open()
            with locks.transact():
                if locks.get(key) == token.encode():
                    locks.delete(key)
        except _ERRORS as exc:
            self._warn(exc)

    def close(self) -> None:
        if self._locks is not None:
            self._locks.close()
            self._locks = None

    def _open(self) -> diskcache.Cache:
        with self._opening:
            if self._locks is None:
                self._locks = diskcache.Cache(
                    str(self.directory / "locks"),
                    timeout=self._timeout,
                    disk=SafeDisk,
                    statistics=0,
                    tag_index=0,
                    eviction_policy="none",
                )
            return self._locks

    def _warn(self, exc: BaseException) -> None:
        if not self._warned:
            self._warned = True
            log.warning(
                "file cache %s: flight locks unavailable, identical calls in other processes "
                "are not coalesced: %s",
                self.directory,
                exc,
            )
