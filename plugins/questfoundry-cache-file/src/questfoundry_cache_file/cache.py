"""``FileCache``: the ``file`` cache backend, a thin face over :class:`diskcache.Cache`.

What diskcache already guarantees, and this backend relies on: one SQLite database (WAL) plus value
files under one directory, safe for many threads and many processes at once, every write a
transaction. What this module adds:

- values are bytes and nothing is ever pickled, and no row can make the cache read or delete a
  file outside its folder (:class:`~questfoundry_cache_file.disk.SafeDisk`);
- an entry that cannot be read (damaged, tampered, its file gone) is a miss, logged once per key;
- a cache that cannot be opened or written never fails a call: ``get`` is a miss, ``set`` stores
  nothing, and one warning says why; a folder it may read but not write still serves its hits.
  Opening is tried again every :data:`REOPEN_SECONDS`. The maintenance calls (``delete``,
  ``clear``, ``prune``, ``stats``) raise
  :class:`~questfoundry.kit.BackendUnavailableError`;
- a value larger than the whole size limit is not stored (diskcache would evict everything else);
- hits and misses are kept in the database, so ``stats`` counts every process since the cache was
  created, without a write on the hit path: counts are added to diskcache's own ``hits`` and
  ``misses`` settings when this process asks for stats or closes the cache, and with a store at
  most every :data:`COUNTS_SECONDS` (adding them to every store cost each miss some 25 µs);
- ``prune`` also sweeps value files no row refers to, which a crash mid-write can leave behind;
- ``lock``/``unlock`` (:class:`~questfoundry_cache_file.locks.FlightLocks`) let identical calls in
  several processes on this machine make one provider call (the gateway's cross-process flights).

Eviction follows ``eviction_policy``, one of diskcache's: by default ``least-recently-stored``,
which unlike ``least-recently-used`` and ``least-frequently-used`` never writes on a read, so a hit
is a single SELECT. For the same reason diskcache's own statistics switch stays off (it writes on
every read). Past the size limit each store evicts diskcache's ``cull_limit`` (ten) entries.
TTLs are measured by diskcache on the wall clock (``time.time()``), not on the backend context's
clock; the reopening delay runs on the context's clock.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import diskcache

from questfoundry.kit import BackendUnavailableError, CacheStats, Capability, Clock
from questfoundry_cache_file.disk import SafeDisk, UnreadableEntry, remove_value_file, value_path
from questfoundry_cache_file.locks import FlightLocks
from questfoundry_cache_file.rows import CacheRows

log = logging.getLogger("questfoundry.cache.file")

#: below this many bytes a value is kept inside the database row, at or above it in its own file
INLINE_LIMIT = 32 * 1024
#: seconds a writer may wait for another process's write transaction before giving up
LOCK_TIMEOUT = 60.0
#: a value file younger than this may belong to a write still waiting for the lock: never swept
ORPHAN_GRACE_SECONDS = 10 * LOCK_TIMEOUT
#: seconds between two attempts to open a cache that could not be opened for writing
REOPEN_SECONDS = 30.0
#: seconds between two stores that also add this process's hits and misses to the database's
COUNTS_SECONDS = 5.0
#: unreadable keys remembered so each is warned about once; beyond this, warnings repeat
_REPORTED_LIMIT = 4096

_STORE_ERRORS = (diskcache.Timeout, sqlite3.Error, OSError)


class FileCache:
    """Reply bytes by key in a diskcache directory, shared by every process that opens it."""

    capabilities = frozenset(
        {
            Capability.TTL,
            Capability.SIZE_LIMIT,
            Capability.PERSISTENT,
            Capability.SHARED,
            Capability.LOCKS,
        }
    )

    def __init__(
        self,
        directory: str | Path,
        size_limit: int,
        *,
        eviction_policy: str = "least-recently-stored",
        lock_timeout: float = LOCK_TIMEOUT,
        clock: Clock | None = None,
    ) -> None:
        """Open (or create) the cache in ``directory``; evict above ``size_limit`` bytes, as
        ``eviction_policy`` (one of diskcache's) says.

        ``lock_timeout`` is how long a write waits for another process's write to finish. Never
        raises for a folder that cannot be opened: the cache is then bypassed (see the module).
        """
        self.directory = Path(directory)
        self.size_limit = size_limit
        self.eviction_policy = eviction_policy
        self._lock_timeout = lock_timeout
        self._clock = clock or Clock()
        self._lock = threading.Lock()  # guards the counts
        self._opening = threading.Lock()
        self._flights = FlightLocks(self.directory, lock_timeout)
        self._hits = self._misses = 0  # not yet added to the database's counts
        self._counted = -float("inf")  # when a store last added them (the context clock)
        self._reported: set[str] = set()
        self._failing: dict[str, str] = {}  # "read"/"write" → the problem already warned about
        self._cache: diskcache.Cache | None = None
        self._rows: CacheRows | None = None
        self._problem = BackendUnavailableError(f"file cache {self.directory} is not open")
        self._retry_at = 0.0
        self._get: Callable[[str], bytes | None] = self._get_unopened
        self._connect()

    def __repr__(self) -> str:
        return f"FileCache({str(self.directory)!r})"

    def get(self, key: str) -> bytes | None:
        """The value stored under ``key``; None when missing, expired, unreadable or unavailable."""
        try:
            value = self._get(key)
        except (UnreadableEntry, ValueError):
            value = self._read_again(key)
        except (BackendUnavailableError, *_STORE_ERRORS) as exc:
            self._bypass("read", "cannot be read", exc)
            value = None
        else:
            if self._failing:
                self._failing.pop("read", None)
        with self._lock:
            if value is None:
                self._misses += 1
            else:
                self._hits += 1
        return value

    def set(
        self, key: str, value: bytes | bytearray | memoryview, ttl: float | None = None
    ) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (None: until evicted).

        A value larger than the size limit replaces nothing and is not stored; an older value
        under ``key`` is removed so it is never served in its place.
        """
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"cache values are bytes, not {type(value).__name__}")
        try:
            cache = self._writer()
            if len(value) > self.size_limit:
                self._write(cache, lambda: cache.delete(key))
            else:
                data = bytes(value)
                self._write(cache, lambda: cache.set(key, data, expire=ttl))
        except (BackendUnavailableError, *_STORE_ERRORS) as exc:
            self._bypass("write", "cannot store an entry", exc)
        else:
            if self._failing:
                self._failing.pop("write", None)

    def delete(self, key: str) -> bool:
        """Remove ``key``; True when it was there."""
        try:
            return bool(self._writer().delete(key))
        except _STORE_ERRORS as exc:
            raise self._unavailable("cannot delete an entry", exc) from None

    def clear(self) -> int:
        """Remove every entry, for every process sharing the directory; return how many."""
        try:
            removed = int(self._writer().clear())
        except _STORE_ERRORS as exc:
            raise self._unavailable("cannot be cleared", exc) from None
        self._reported.clear()
        return removed

    def prune(self) -> int:
        """Remove expired entries and orphan value files; return how many of both."""
        try:
            expired = int(self._writer().expire())
            return expired + self._sweep_orphans()
        except _STORE_ERRORS as exc:
            raise self._unavailable("cannot be pruned", exc) from None

    def stats(self) -> CacheStats:
        """Entries and bytes on disk, hits and misses: all for every process, since creation.

        A process's counts reach the database when it stores an entry, asks for stats or
        closes the cache; until then only that process sees them.
        """
        try:
            self._writer()
        except BackendUnavailableError:
            if self._rows is None:
                raise
        try:
            if self._cache is not None:
                self._flush_counts(self._cache)
                entries, volume = len(self._cache), int(self._cache.volume())
                hits, misses = int(self._cache.reset("hits")), int(self._cache.reset("misses"))
            else:
                assert self._rows is not None
                entries, volume, hits, misses = self._rows.counts()
        except _STORE_ERRORS as exc:
            raise self._unavailable("cannot be read", exc) from None
        with self._lock:
            hits, misses = hits + self._hits, misses + self._misses
        return CacheStats(entries, volume, hits, misses, persistent_counts=True)

    def lock(self, key: str, ttl: float) -> str | None:
        """Take ``key``'s flight lock for ``ttl`` seconds: a token, None (held elsewhere) or
        ``""`` (locks unusable: go ahead without one, as when the cache itself is bypassed)."""
        try:
            self._writer()
        except BackendUnavailableError:
            return ""  # already warned about: the cache is bypassed
        return self._flights.lock(key, ttl)

    def unlock(self, key: str, token: str) -> None:
        """Release ``key``'s flight lock if ``token`` holds it."""
        self._flights.unlock(key, token)

    def close(self) -> None:
        """Save this process's counts and close its connections; the cache reopens if used."""
        self._flights.close()
        if self._cache is not None:
            self._flush_counts(self._cache)
            self._cache.close()
        if self._rows is not None:
            self._rows.close()
            self._rows = None
            self._get = self._get_unopened
            self._retry_at = 0.0

    # ------------------------------------------------------------------ opening

    def _connect(self) -> None:
        """Open for writing; failing that, for reading only; failing that, remember why."""
        with self._opening:
            if self._cache is not None:
                return
            try:
                self._cache = _open(
                    self.directory, self.size_limit, self.eviction_policy, self._lock_timeout
                )
            except BackendUnavailableError as exc:
                self._problem = exc
                self._retry_at = self._clock.monotonic() + REOPEN_SECONDS
            else:
                self._get = self._cache.get
                if self._rows is not None:
                    self._rows.close()
                    self._rows = None
                return
            if self._rows is None:
                with suppress(sqlite3.Error, OSError):
                    self._rows = CacheRows(self.directory, self._lock_timeout)
                    self._get = self._rows.get

    def _writer(self) -> diskcache.Cache:
        """The open diskcache, trying again to open it if the delay has passed."""
        if self._cache is None and self._clock.monotonic() >= self._retry_at:
            self._connect()
        if self._cache is None:
            raise self._problem
        return self._cache

    def _get_unopened(self, key: str) -> bytes | None:
        """``get`` while nothing could be opened: try again after the delay, else unavailable."""
        if self._clock.monotonic() >= self._retry_at:
            self._connect()
            if self._get != self._get_unopened:
                return self._get(key)
        raise self._problem

    # ------------------------------------------------------------------ off the hot path

    def _read_again(self, key: str) -> bytes | None:
        """Second chance for an unreadable entry, then a logged miss.

        Another process overwriting or deleting ``key`` removes the old value file between our
        SELECT and our open: that race reads fine the second time. What fails twice is damaged.
        """
        try:
            return self._get(key)
        except (UnreadableEntry, ValueError) as exc:
            self._report(key, exc)
        except (BackendUnavailableError, *_STORE_ERRORS) as exc:
            self._bypass("read", "cannot be read", exc)
        return None

    def _write(
        self, cache: diskcache.Cache, change: Callable[[], object], counts: bool = False
    ) -> None:
        """Run ``change``; with ``counts``, or when :data:`COUNTS_SECONDS` have passed since a
        store last did, add this process's hits and misses to the database's in its transaction.
        """
        now = self._clock.monotonic()
        if not counts and now < self._counted + COUNTS_SECONDS:
            change()
            return
        with self._lock:
            hits, misses = self._hits, self._misses
            self._hits = self._misses = 0
        try:
            with cache.transact():
                change()
                if hits or misses:
                    cache.reset("hits", int(cache.reset("hits")) + hits)
                    cache.reset("misses", int(cache.reset("misses")) + misses)
        except BaseException:  # kept for the next write; this process still counts them
            with self._lock:
                self._hits += hits
                self._misses += misses
            raise
        self._counted = now

    def _flush_counts(self, cache: diskcache.Cache) -> None:
        """Save this process's counts if the database can be written now; keep them if not."""
        if self._hits or self._misses:
            with suppress(*_STORE_ERRORS):
                self._write(cache, lambda: None, counts=True)

    def _sweep_orphans(self) -> int:
        """Delete value files no row refers to and older than the grace period; return how many.

        Only names :func:`~questfoundry_cache_file.disk.value_path` accepts: a linked subfolder
        is never entered, so nothing outside the cache folder is deleted.
        """
        rows = CacheRows(self.directory, self._lock_timeout)
        try:
            referenced = rows.filenames()
        finally:
            rows.close()
        root = str(self.directory)
        cutoff = time.time() - ORPHAN_GRACE_SECONDS
        removed = 0
        for path in self.directory.glob("*/*/*.val"):
            name = str(path.relative_to(self.directory))
            if name in referenced or value_path(root, name) is None:
                continue
            with suppress(FileNotFoundError):
                if path.lstat().st_mtime < cutoff and remove_value_file(root, name):
                    removed += 1
        return removed

    def _report(self, key: str, exc: Exception) -> None:
        if key in self._reported:
            log.debug("cache entry %s is still unreadable: %s", key, exc)
            return
        if len(self._reported) < _REPORTED_LIMIT:
            self._reported.add(key)
        log.warning("file cache %s: entry %s is unreadable (%s); a miss", self.directory, key, exc)

    def _bypass(self, kind: str, what: str, exc: BaseException) -> None:
        """Log why ``kind`` ("read" or "write") failed, once per cause while it keeps failing.

        A read and a write failing for the same reason (a cache that cannot be opened) is one
        warning, not two; the next success of that kind re-arms it.
        """
        cause = _reason(exc, self._lock_timeout)
        problem = self._unavailable(what, exc)
        if cause not in self._failing.values():
            log.warning("%s; the cache is bypassed until it works again", problem)
        else:
            log.debug("%s", problem)
        self._failing[kind] = cause

    def _unavailable(self, what: str, exc: BaseException) -> BackendUnavailableError:
        if isinstance(exc, BackendUnavailableError):
            return exc
        reason = _reason(exc, self._lock_timeout)
        return BackendUnavailableError(f"file cache {self.directory} {what}: {reason}")


def _open(
    directory: Path, size_limit: int, eviction_policy: str, lock_timeout: float
) -> diskcache.Cache:
    """Open diskcache with every setting that matters given here, not taken from the database."""
    try:
        return diskcache.Cache(
            str(directory),
            timeout=lock_timeout,
            disk=SafeDisk,
            eviction_policy=eviction_policy,
            size_limit=size_limit,
            statistics=0,
            tag_index=0,
            disk_min_file_size=INLINE_LIMIT,
        )
    except (diskcache.Timeout, sqlite3.Error, OSError, TypeError, ValueError, KeyError) as exc:
        # TypeError/KeyError: a Settings table naming a setting diskcache or SafeDisk lacks.
        not_a_folder = directory.exists() and not directory.is_dir()
        reason = "it is a file, not a folder" if not_a_folder else _reason(exc, lock_timeout)
        raise BackendUnavailableError(
            f"file cache {directory} cannot be opened: {reason}"
        ) from None


def _reason(exc: BaseException, lock_timeout: float) -> str:
    if isinstance(exc, diskcache.Timeout):
        return f"another process held the cache locked for more than {lock_timeout:g}s"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
