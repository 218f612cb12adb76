"""``FileCache``: the ``file`` cache backend, a thin face over :class:`diskcache.Cache`.

What diskcache already guarantees, and this backend relies on: one SQLite database (WAL) plus value
files under one directory, safe for many threads and many processes at once, every write a
transaction. What this module adds:

- values are bytes and nothing is ever pickled (:class:`~questfoundry_cache_file.disk.SafeDisk`);
- an entry that cannot be read (damaged, tampered, its file gone) is a miss, logged once per key;
- a cache that cannot be opened or written raises
  :class:`~questfoundry.errors.BackendUnavailableError`, which the gateway bypasses with a warning;
- ``prune`` also sweeps value files no row refers to, which a crash mid-write can leave behind.

Eviction is ``least-recently-stored``: unlike ``least-recently-used`` it never writes on a read, so
a hit is a single SELECT. For the same reason diskcache's own hit/miss statistics stay off (they
write on every read); hits and misses are counted in this process instead. TTLs are measured by
diskcache on the wall clock (``time.time()``), not on the backend context's clock.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from contextlib import closing, suppress
from pathlib import Path

import diskcache
from diskcache.core import DBNAME

from questfoundry.errors import BackendUnavailableError
from questfoundry.interfaces import CacheStats, Capability
from questfoundry_cache_file.disk import SafeDisk, UnreadableEntry

log = logging.getLogger("questfoundry.cache.file")

#: below this many bytes a value is kept inside the database row, at or above it in its own file
INLINE_LIMIT = 32 * 1024
#: seconds a writer may wait for another process's write transaction before giving up
LOCK_TIMEOUT = 60.0
#: a value file younger than this may belong to a write still waiting for the lock: never swept
ORPHAN_GRACE_SECONDS = 10 * LOCK_TIMEOUT
#: unreadable keys remembered so each is warned about once; beyond this, warnings repeat
_REPORTED_LIMIT = 4096

_STORE_ERRORS = (diskcache.Timeout, sqlite3.Error, OSError)


class FileCache:
    """Reply bytes by key in a diskcache directory, shared by every process that opens it."""

    capabilities = frozenset(
        {Capability.TTL, Capability.SIZE_LIMIT, Capability.PERSISTENT, Capability.SHARED}
    )

    def __init__(
        self, directory: str | Path, size_limit: int, *, lock_timeout: float = LOCK_TIMEOUT
    ) -> None:
        """Open (or create) the cache in ``directory``; evict above ``size_limit`` bytes.

        ``lock_timeout`` is how long a write waits for another process's write to finish.
        """
        self.directory = Path(directory)
        self.size_limit = size_limit
        self._cache = _open(self.directory, size_limit, lock_timeout)
        self._get = self._cache.get
        self._reported: set[str] = set()
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"FileCache({str(self.directory)!r})"

    def get(self, key: str) -> bytes | None:
        """The value stored under ``key``; None when missing, expired or unreadable."""
        try:
            value: bytes | None = self._get(key)
        except (UnreadableEntry, ValueError):
            value = self._read_again(key)
        except sqlite3.Error as exc:
            raise self._unavailable("cannot be read", exc) from None
        # Counted without a lock: one more lock on every hit costs more than the count is worth.
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def set(
        self, key: str, value: bytes | bytearray | memoryview, ttl: float | None = None
    ) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (None: until evicted)."""
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"cache values are bytes, not {type(value).__name__}")
        try:
            self._cache.set(key, bytes(value), expire=ttl)
        except _STORE_ERRORS as exc:
            raise self._unavailable("cannot store an entry", exc) from None

    def delete(self, key: str) -> bool:
        """Remove ``key``; True when it was there."""
        try:
            return bool(self._cache.delete(key))
        except _STORE_ERRORS as exc:
            raise self._unavailable("cannot delete an entry", exc) from None

    def clear(self) -> int:
        """Remove every entry, for every process sharing the directory; return how many."""
        try:
            removed = int(self._cache.clear())
        except _STORE_ERRORS as exc:
            raise self._unavailable("cannot be cleared", exc) from None
        self._reported.clear()
        return removed

    def prune(self) -> int:
        """Remove expired entries and orphan value files; return how many of both."""
        try:
            expired = int(self._cache.expire())
            return expired + _sweep_orphans(self.directory)
        except _STORE_ERRORS as exc:
            raise self._unavailable("cannot be pruned", exc) from None

    def stats(self) -> CacheStats:
        """Entries and bytes on disk (for every process), hits and misses (for this one)."""
        try:
            entries, volume = len(self._cache), int(self._cache.volume())
        except _STORE_ERRORS as exc:
            raise self._unavailable("cannot be read", exc) from None
        return CacheStats(entries=entries, bytes=volume, hits=self.hits, misses=self.misses)

    def close(self) -> None:
        """Close this thread's database connection; the cache reopens it if used again."""
        self._cache.close()

    # ------------------------------------------------------------------ off the hot path

    def _read_again(self, key: str) -> bytes | None:
        """Second chance for an unreadable entry, then a logged miss.

        Another process overwriting or deleting ``key`` removes the old value file between our
        SELECT and our open: that race reads fine the second time. What fails twice is damaged.
        """
        try:
            value: bytes | None = self._get(key)
        except (UnreadableEntry, ValueError) as exc:
            self._report(key, exc)
            return None
        except sqlite3.Error as exc:
            raise self._unavailable("cannot be read", exc) from None
        return value

    def _report(self, key: str, exc: Exception) -> None:
        if key in self._reported:
            log.debug("cache entry %s is still unreadable: %s", key, exc)
            return
        if len(self._reported) < _REPORTED_LIMIT:
            self._reported.add(key)
        log.warning("file cache %s: entry %s is unreadable (%s); a miss", self.directory, key, exc)

    def _unavailable(self, what: str, exc: BaseException) -> BackendUnavailableError:
        reason = _reason(exc, self._cache.timeout)
        return BackendUnavailableError(f"file cache {self.directory} {what}: {reason}")


def _sweep_orphans(directory: Path) -> int:
    """Delete value files no row refers to and older than the grace period; return how many."""
    referenced = _referenced_files(directory)
    cutoff = time.time() - ORPHAN_GRACE_SECONDS
    removed = 0
    for path in directory.glob("*/*/*.val"):
        if str(path.relative_to(directory)) in referenced:
            continue
        with suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
                with suppress(OSError):
                    os.removedirs(path.parent)  # the two levels of subfolders, once empty
    return removed


def _referenced_files(directory: Path) -> frozenset[str]:
    """Every value file name the database refers to, read on a connection of its own."""
    uri = (directory / DBNAME).absolute().as_uri() + "?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=LOCK_TIMEOUT)) as db:
        rows = db.execute("SELECT filename FROM Cache WHERE filename IS NOT NULL")
        return frozenset(name for (name,) in rows if isinstance(name, str))


def _open(directory: Path, size_limit: int, lock_timeout: float) -> diskcache.Cache:
    """Open diskcache with every setting that matters given here, not taken from the database."""
    try:
        return diskcache.Cache(
            str(directory),
            timeout=lock_timeout,
            disk=SafeDisk,
            eviction_policy="least-recently-stored",
            size_limit=size_limit,
            statistics=0,
            tag_index=0,
            disk_min_file_size=INLINE_LIMIT,
        )
    except (diskcache.Timeout, sqlite3.Error, OSError, TypeError, ValueError, KeyError) as exc:
        # TypeError/KeyError: a Settings table naming a setting diskcache or SafeDisk lacks.
        reason = _reason(exc, lock_timeout)
        raise BackendUnavailableError(
            f"file cache {directory} cannot be opened: {reason}"
        ) from None


def _reason(exc: BaseException, lock_timeout: float) -> str:
    if isinstance(exc, diskcache.Timeout):
        return f"another process held the cache locked for more than {lock_timeout:g}s"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
