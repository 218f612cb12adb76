"""Built-in limiter strategy ``sqlite`` (the default): token buckets every process on this machine
shares, in one SQLite file, with no server.

The buckets behave exactly as ``token_bucket``'s: each holds up to ``limit`` units and refills at
``limit / period`` units per second; acquiring several is all-or-nothing. Guarantees:

- **Exact across processes.** An acquire reads the buckets, decides and writes them in one
  ``BEGIN IMMEDIATE`` transaction, so processes racing one bucket are serialised by SQLite's write
  lock and never take together more than it holds.
- **Levels are the shared ones**: :meth:`SQLiteLimiter.levels` reads the file, so ``questfoundry
  limits`` run from another process shows what a running gateway took.
- **Time is wall-clock time** (``context.clock.time()``), the one clock every process shares and
  that survives a reboot; a clock set back refills nothing until it catches up.

- **Removing the file grants nothing.** A file deleted (``rm limits.sqlite*``) or replaced by
  another while the project runs is noticed — by a running process at its next call, which checks
  the file is still the one it opened, and by a new process, which finds the file's id differs
  from the sidecar ``.limits.sqlite.id`` beside it (or the file gone while the sidecar is there).
  The first to notice warns once and makes the file anew with every bucket *empty*, refilling at
  its rate from then on: a reset never hands out a fresh burst. Only a project with neither file
  (a new one) starts with full buckets.

Setting ``rate_limiting.path`` (default ``.questfoundry/limits.sqlite``) names the file; bucket keys
are prefixed with the project namespace. The limits come from config each time, so changing a
limit takes effect at once (a bucket above its new limit is cut down to it).
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import Any, NamedTuple

from questfoundry.kit import (
    Backend,
    BackendContext,
    BackendUnavailableError,
    BucketLevel,
    Capability,
    Clock,
    Rate,
    hookimpl,
    open_sqlite,
    sqlite_errors,
)

DEFAULT_PATH = ".questfoundry/limits.sqlite"

log = logging.getLogger("questfoundry.limiter.sqlite")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (
    key TEXT PRIMARY KEY,
    level REAL NOT NULL,
    stamp REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
"""

_WRITE = """
INSERT INTO buckets VALUES (?, ?, ?)
ON CONFLICT (key) DO UPDATE SET level = excluded.level, stamp = excluded.stamp
"""


class _Level(NamedTuple):
    level: float
    stamp: float


class SQLiteLimiter:
    """Token buckets keyed by :attr:`Rate.key`, kept in ``path``; keys without a rate are
    unlimited. See the module docstring for its guarantees."""

    capabilities: frozenset[str] = frozenset(
        {Capability.SHARED, Capability.PERSISTENT, Capability.ATOMIC}
    )

    def __init__(
        self,
        path: Path,
        rates: Iterable[Rate],
        *,
        clock: Clock | None = None,
        namespace: str = "default",
        busy_timeout: float = 10.0,
    ) -> None:
        self.path = Path(path)
        self._rates = {rate.key: rate for rate in rates}
        self._clock = clock or Clock()
        self._prefix = f"{namespace}/"
        self._busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False
        self._file: tuple[int, int] | None = None  # (device, inode) of the file opened
        self._reset_at = -math.inf  # when the file was last made anew with empty buckets
        self._conn: sqlite3.Connection | None = self._connect() if self._rates else None

    def acquire(self, amounts: Mapping[str, float]) -> float:
        wanted = {key: amount for key, amount in amounts.items() if key in self._rates}
        if not wanted:
            return 0.0
        if any(amount > self._rates[key].limit for key, amount in wanted.items()):
            return math.inf
        with self._transaction() as conn:
            levels = self._read(conn, wanted)
            wait = 0.0
            for key, amount in wanted.items():
                if amount > levels[key].level:
                    wait = max(wait, (amount - levels[key].level) / self._per_second(key))
            if wait:
                return wait
            self._write(conn, levels, {key: -amount for key, amount in wanted.items()})
        return 0.0

    def adjust(self, amounts: Mapping[str, float]) -> None:
        wanted = {key: amount for key, amount in amounts.items() if key in self._rates}
        if not wanted:
            return
        with self._transaction() as conn:
            levels = self._read(conn, wanted)
            self._write(conn, levels, {key: -amount for key, amount in wanted.items()})

    def levels(self) -> Sequence[BucketLevel]:
        if not self._rates:
            return []
        with self._using() as conn:
            levels = self._read(conn, self._rates)
        return [
            BucketLevel(key, levels[key].level, rate.limit, rate.period)
            for key, rate in self._rates.items()
        ]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # ------------------------------------------------------------------ internals

    def _per_second(self, key: str) -> float:
        rate = self._rates[key]
        return rate.limit / rate.period

    def _read(self, conn: sqlite3.Connection, keys: Iterable[str]) -> dict[str, _Level]:
        """Each bucket as of now: refilled since it was written, at most full."""
        keys = list(keys)
        marks = ", ".join("?" * len(keys))
        stored = {
            key.removeprefix(self._prefix): (level, stamp)
            for key, level, stamp in conn.execute(
                f"SELECT key, level, stamp FROM buckets WHERE key IN ({marks})",
                [self._prefix + key for key in keys],
            )
        }
        now = self._clock.time()
        levels = {}
        for key in keys:
            limit = self._rates[key].limit
            if key not in stored:  # unused since the file was made: full, or refilling
                fill = max(0.0, now - self._reset_at) * self._per_second(key)  # since a reset
                levels[key] = _Level(min(limit, fill), now)
                continue
            level, stamp = stored[key]
            refill = max(0.0, now - stamp) * self._per_second(key)
            # the stamp never moves back, so a clock set back refills nothing twice
            levels[key] = _Level(min(limit, level + refill), max(now, stamp))
        return levels

    def _write(
        self,
        conn: sqlite3.Connection,
        levels: Mapping[str, _Level],
        changes: Mapping[str, float],
    ) -> None:
        """Store each changed bucket, never above its limit."""
        conn.executemany(
            _WRITE,
            [
                (
                    self._prefix + key,
                    min(self._rates[key].limit, levels[key].level + change),
                    levels[key].stamp,
                )
                for key, change in changes.items()
            ],
        )

    def _connect(self) -> sqlite3.Connection:
        with _sqlite_errors(self.path):
            conn = open_sqlite(self.path, self._busy_timeout, lambda c: c.executescript(_SCHEMA))
            try:
                self._file = _identity(self.path)
                self._reset_at = self._check_lineage(conn)
            except BaseException:
                conn.close()
                raise
            return conn

    def _check_lineage(self, conn: sqlite3.Connection) -> float:
        """Compare the file's id with the sidecar's; when the file was deleted or replaced, make
        it anew with every bucket empty (once, whoever notices first). Returns the reset time."""
        sidecar = self.path.with_name(f".{self.path.name}.id")
        with _immediate(conn):  # racing processes: one resets, the others see its id
            meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
            known = _read_text(sidecar)
            mine = meta.get("id")
            if known is not None and mine != known:  # not the file this project had
                mine, meta["reset_at"] = uuid.uuid4().hex, repr(self._clock.time())
                conn.execute("DELETE FROM buckets")
                conn.executemany(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                    [("id", mine), ("reset_at", meta["reset_at"])],
                )
                log.warning(
                    "the rate limiter's file %s was deleted or replaced: made anew with every "
                    "bucket empty (they refill at their rates; removing the file grants no burst)",
                    self.path,
                )
            elif mine is None:  # a new project's file, or one older than the id
                mine = uuid.uuid4().hex
                conn.execute("INSERT INTO meta VALUES ('id', ?)", (mine,))
            if known != mine:
                _write_text(sidecar, mine)  # before COMMIT: racers wait for both
        return float(meta.get("reset_at", "-inf"))

    @contextmanager
    def _using(self) -> Iterator[sqlite3.Connection]:
        with self._lock, _sqlite_errors(self.path):
            if self._closed:
                raise sqlite3.ProgrammingError("the limiter is closed")
            if self._conn is not None and _identity(self.path) != self._file:
                self._conn.close()  # deleted or replaced: open what is there now (or make it)
                self._conn = None
            if self._conn is None or os.getpid() != self._pid:
                self._pid = os.getpid()  # a forked child never shares its parent's connection
                self._conn = self._connect()
            yield self._conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._using() as conn, _immediate(conn):
            yield conn


@contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """One ``BEGIN IMMEDIATE`` transaction: committed, or rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


def _identity(path: Path) -> tuple[int, int] | None:
    """The (device, inode) of ``path``, None when it is gone: a new pair means a new file."""
    try:
        found = path.stat()
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip() or None
    except (FileNotFoundError, UnicodeDecodeError):
        return None


def _write_text(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all (a crash never leaves half an id)."""
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        partial.write_text(text, encoding="ascii")
        partial.replace(path)
    except OSError as exc:  # a read-only folder: the limiter works, deletions go unnoticed
        log.debug("cannot write %s: %s", path, exc)
        partial.unlink(missing_ok=True)


def _sqlite_errors(path: Path) -> AbstractContextManager[None]:
    return sqlite_errors("rate limiter", path, BackendUnavailableError)


def make_sqlite_limiter(settings: Mapping[str, Any], context: BackendContext) -> SQLiteLimiter:
    return SQLiteLimiter(
        context.resolve_path(settings.get("path", DEFAULT_PATH)),
        settings.get("rates", ()),
        clock=context.clock,
        namespace=context.namespace,
    )


@hookimpl
def limiter_strategies() -> dict[str, Any]:

    return {
        "sqlite": Backend(  # the core schema holds the built-ins' settings
            make_sqlite_limiter,
            settings={"$ref": "#/$defs/sqlite_limiter"},
            description="token buckets shared by every process on this machine, in one SQLite file",
        )
    }
