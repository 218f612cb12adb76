"""``CacheRows``: the cache database read on a read-only connection of its own.

Used where diskcache cannot help: a cache folder this process may read but not write (diskcache
writes its settings on opening, so it cannot open one at all) and the orphan sweep, which needs
every file name the rows refer to. A write-ahead-log database in a folder nobody may write cannot
even be opened read-only, as SQLite could not create its shared-memory file; it is then read as an
immutable snapshot, which is exact as long as nobody writes it, and at worst a stale or damaged
read that :class:`~questfoundry_cache_file.disk.SafeDisk` turns into a miss.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from diskcache.core import DBNAME

from questfoundry_cache_file.disk import SafeDisk

_GET = (
    "SELECT mode, filename, value FROM Cache WHERE key = ? AND raw = ?"
    " AND (expire_time IS NULL OR expire_time > ?)"
)


class CacheRows:
    """Read-only access to one cache database; safe to share between threads."""

    def __init__(self, directory: Path, timeout: float) -> None:
        """Open ``directory``'s database; raise ``sqlite3.Error`` or ``OSError`` if impossible."""
        self._disk = SafeDisk(str(directory))
        self._lock = threading.Lock()
        uri = (directory / DBNAME).absolute().as_uri()
        try:
            self._db = _connect(f"{uri}?mode=ro", timeout)
        except sqlite3.OperationalError:
            self._db = _connect(f"{uri}?mode=ro&immutable=1", timeout)

    def get(self, key: str) -> bytes | None:
        """The value under ``key`` as :meth:`diskcache.Cache.get` would read it."""
        db_key, raw = self._disk.put(key)
        with self._lock:
            rows = self._db.execute(_GET, (db_key, raw, time.time())).fetchall()
        if not rows:
            return None
        ((mode, filename, value),) = rows
        return self._disk.fetch(mode, filename, value, read=False)

    def counts(self) -> tuple[int, int, int, int]:
        """Entries, bytes (database plus value files), hits and misses as the database has them."""
        with self._lock:
            settings = dict(self._db.execute("SELECT key, value FROM Settings").fetchall())
            ((pages,),) = self._db.execute("PRAGMA page_count").fetchall()
            ((page_size,),) = self._db.execute("PRAGMA page_size").fetchall()
        volume = int(pages) * int(page_size) + int(settings.get("size", 0))
        return (
            int(settings.get("count", 0)),
            volume,
            int(settings.get("hits", 0)),
            int(settings.get("misses", 0)),
        )

    def filenames(self) -> frozenset[str]:
        """Every value file name a row refers to."""
        with self._lock:
            rows = self._db.execute("SELECT filename FROM Cache WHERE filename IS NOT NULL")
            return frozenset(name for (name,) in rows if isinstance(name, str))

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _connect(uri: str, timeout: float) -> sqlite3.Connection:
    """A read-only connection that fails now, not on first use, when the database is unusable."""
    db = sqlite3.connect(uri, uri=True, timeout=timeout, check_same_thread=False)
    try:
        db.execute("SELECT count(*) FROM Cache WHERE 0").fetchall()
    except sqlite3.Error:
        db.close()
        raise
    return db
