"""The ledger's SQLite file: its schema, its connection and the running totals budgets read.

The ledger (:mod:`.ledger`, one row per call) and the SQLite budget keeper (:mod:`.keeper`, one
hold per call in flight) share this file and nothing else: each opens a :class:`LedgerFile` on
the same path, so neither imports the other.

- **Opened once per process.** One connection serves every thread (behind a lock); a file
  inherited through ``fork`` reconnects on first use instead of sharing the parent's connection.
- **Migrations keep every call.** Schema 1 (calls only) gains the rollup, the running totals and
  the holds (schema 2), then the ``unconfirmed`` marks and the journals' progress (schema 3),
  then the ``hits`` counts, which take over the cache hits' rows (schema 4).
- **Running totals**: pico-dollars paid per provider and for all (:data:`ALL`), per local day
  and month in the zone the file is opened with; opening it with another zone recomputes them
  once, from the rows. A budget check reads one row per window, at any ledger size.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, suppress
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from questfoundry.contracts.backends import Clock
from questfoundry.contracts.errors import ConfigError, LedgerError
from questfoundry.contracts.records import Period
from questfoundry.kit import sqlite

SCHEMA_VERSION = 4
#: the scope of the running totals over every provider
ALL = "*"

_CALLS = """
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    day TEXT NOT NULL,
    run_id TEXT NOT NULL DEFAULT '',
    role TEXT,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cached_input_tokens INTEGER NOT NULL DEFAULT 0,
    cost INTEGER,
    cache_hit INTEGER NOT NULL DEFAULT 0,
    saved INTEGER,
    latency REAL NOT NULL DEFAULT 0,
    retries INTEGER NOT NULL DEFAULT 0,
    waited REAL NOT NULL DEFAULT 0,
    status TEXT NOT NULL CHECK (status IN ('reserved', 'spent', 'hit'))
)
"""

# Schema 2: rollups and totals beside the rows; schema 1's reservations (status 'reserved') move
# to `holds`, and its indexes over every row, which only the per-call sums needed, go.
_SCHEMA_2 = """
CREATE TABLE IF NOT EXISTS rollup (
    day TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    role TEXT NOT NULL,
    calls INTEGER NOT NULL,
    hits INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost INTEGER NOT NULL,
    saved INTEGER NOT NULL,
    unknown_cost_calls INTEGER NOT NULL,
    PRIMARY KEY (day, provider, model, role)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS totals (
    scope TEXT NOT NULL,
    span TEXT NOT NULL,
    spent INTEGER NOT NULL,
    PRIMARY KEY (scope, span)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS holds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider TEXT NOT NULL,
    amount INTEGER NOT NULL,
    time REAL NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS spooled (id TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
INSERT INTO holds (provider, amount, time, host, pid, started)
    SELECT provider, COALESCE(cost, 0), time, '', 0, '' FROM calls WHERE status = 'reserved';
DELETE FROM calls WHERE status = 'reserved';
DROP INDEX IF EXISTS calls_day;
DROP INDEX IF EXISTS calls_spend;
DROP INDEX IF EXISTS calls_provider_spend;
INSERT INTO rollup
    SELECT day, provider, model, COALESCE(role, ''), COUNT(*), SUM(status = 'hit'),
           SUM(CASE WHEN status = 'spent' THEN input_tokens ELSE 0 END),
           SUM(CASE WHEN status = 'spent' THEN output_tokens ELSE 0 END),
           COALESCE(SUM(cost), 0), COALESCE(SUM(saved), 0),
           SUM(status = 'spent' AND cost IS NULL)
    FROM calls GROUP BY 1, 2, 3, 4
"""

# Schema 3: a paid call a crash left unanswered is counted at its estimate and marked; each
# journal's progress (see .journal) is kept with the rows it wrote. Adding columns is O(1).
_SCHEMA_3 = """
ALTER TABLE calls ADD COLUMN unconfirmed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollup ADD COLUMN unconfirmed INTEGER NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS journals (
    name TEXT PRIMARY KEY,
    below INTEGER NOT NULL,
    above TEXT NOT NULL
) WITHOUT ROWID
"""

# Schema 4: cache hits are counted, not written a row each (a row cost a hit as much as the hit):
# one row per local day, provider, model, role and run, with what they saved and when the first
# and the last happened. The hits' rows in `calls` move there; the rollup already counts them.
_SCHEMA_4 = """
CREATE TABLE IF NOT EXISTS hits (
    day TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    role TEXT NOT NULL,
    run_id TEXT NOT NULL,
    hits INTEGER NOT NULL,
    saved INTEGER NOT NULL,
    first REAL NOT NULL,
    last REAL NOT NULL,
    PRIMARY KEY (day, provider, model, role, run_id)
) WITHOUT ROWID;
INSERT INTO hits
    SELECT day, provider, model, COALESCE(role, ''), run_id, COUNT(*), COALESCE(SUM(saved), 0),
           MIN(time), MAX(time)
    FROM calls WHERE status = 'hit' GROUP BY 1, 2, 3, 4, 5;
DELETE FROM calls WHERE status = 'hit'
"""

_ADD_TOTAL = """
INSERT INTO totals VALUES (?, ?, ?)
ON CONFLICT (scope, span) DO UPDATE SET spent = spent + excluded.spent
"""

# Totals per provider and day first (one time-zone conversion per row), the rest from those.
_REBUILD_TOTALS = """
DELETE FROM totals;
INSERT INTO totals
    SELECT provider, qf_local_day(time), SUM(cost) FROM calls
    WHERE status = 'spent' AND cost IS NOT NULL GROUP BY 1, 2;
INSERT INTO totals
    SELECT scope, substr(span, 1, 7), SUM(spent) FROM totals GROUP BY 1, 2;
INSERT INTO totals
    SELECT '*', span, SUM(spent) FROM totals GROUP BY 2
"""


class LedgerFile:
    """One process's connection to a ledger file; see the module docstring."""

    def __init__(
        self,
        path: Path,
        *,
        clock: Clock | None = None,
        timezone: str = "UTC",
        busy_timeout: float = 30.0,
        stale_after: float = 3600.0,
    ) -> None:
        """Open (creating or migrating if needed) the file at ``path``.

        ``timezone`` names the zone of the calendar days and months of totals and reports;
        ``busy_timeout`` is how long a transaction waits for another process's write lock;
        ``stale_after`` is how old a hold or journal of another host's process must be to be
        taken for a crashed process's leftover.
        """
        self.path = Path(path)
        self.clock = clock or Clock()
        self.stale_after = stale_after
        self.busy_timeout = busy_timeout
        self._timezone = timezone
        self._zone = _zone(timezone)
        self._day_of: tuple[int, str] = (-1, "")
        self._lock = threading.RLock()
        self._closed = False
        self._pid = os.getpid()
        self._conn = self._connect()
        self._timeout = busy_timeout

    # ------------------------------------------------------------------ transactions

    @contextmanager
    def transaction(self, timeout: float | None = None) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes SQLite's write lock at once (``BEGIN IMMEDIATE``), so
        what is read inside it is exactly what the write is based on. ``timeout``: seconds to
        wait for another process's lock (default ``busy_timeout``)."""
        conn = self._connection()
        with self._lock, self.errors():
            self._set_timeout(conn, self.busy_timeout if timeout is None else timeout)
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection, for reads that need no write lock."""
        conn = self._connection()
        with self._lock, self.errors():
            self._set_timeout(conn, self.busy_timeout)
            yield conn

    def errors(self) -> AbstractContextManager[None]:
        """Any sqlite3 failure inside as one :class:`LedgerError` line naming the file."""
        return sqlite.sqlite_errors("cost ledger", self.path, LedgerError)

    def close(self) -> None:
        """Close the connection. Idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    @property
    def closed(self) -> bool:
        return self._closed

    # ------------------------------------------------------------------ running totals

    def spent(self, conn: sqlite3.Connection, scope: str | None, period: Period, now: float) -> int:
        """Pico-dollars paid this local day or month (holds not included), for ``scope`` or all."""
        row = conn.execute(
            "SELECT spent FROM totals WHERE scope = ? AND span = ?",
            (ALL if scope is None else scope, self.span(period, now)),
        ).fetchone()
        return int(row[0]) if row else 0

    def add_spent(self, conn: sqlite3.Connection, paid: Mapping[tuple[str, str], int]) -> None:
        """Count what was paid, pico-dollars by ``(provider, local day)``, in the totals: each
        provider's and all providers', by day and by month."""
        adds: dict[tuple[str, str], int] = {}
        for (provider, day), cost in paid.items():
            for scope in (provider, ALL):
                for span in (day, day[:7]):
                    adds[(scope, span)] = adds.get((scope, span), 0) + cost
        conn.executemany(_ADD_TOTAL, [(*where, cost) for where, cost in adds.items() if cost])

    def local_day(self, when: float) -> str:
        """The ISO date of ``when`` in the file's zone (remembered for the minute: zones change
        their offset on whole minutes)."""
        minute = int(when // 60)
        known_minute, known_day = self._day_of  # one read: threads may replace it meanwhile
        if minute == known_minute:
            return known_day
        day = datetime.fromtimestamp(minute * 60, self._zone).date().isoformat()
        self._day_of = (minute, day)
        return day

    def span(self, period: Period, now: float) -> str:
        """The local day or month ``now`` falls in: the key of its running total."""
        day = self.local_day(now)
        if period == "day":
            return day
        if period == "month":
            return day[:7]
        raise ValueError(f"unknown budget period {period!r}; use 'day' or 'month'")

    # ------------------------------------------------------------------ internals

    def _set_timeout(self, conn: sqlite3.Connection, seconds: float) -> None:
        if seconds != self._timeout:
            conn.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")
            self._timeout = seconds

    def _connect(self) -> sqlite3.Connection:
        with self.errors():
            return sqlite.open_sqlite(self.path, self.busy_timeout, self._migrate)

    def _connection(self) -> sqlite3.Connection:
        """The connection, reopened in a forked child so it never shares the parent's."""
        if self._closed:
            raise LedgerError(f"cost ledger {self.path} is closed")
        if os.getpid() != self._pid:
            self._pid = os.getpid()
            self._lock = threading.RLock()  # a lock held by another thread at fork stays held
            self._conn = self._connect()
            self._timeout = self.busy_timeout
        return self._conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Bring the file to this schema and time zone; only then take the write lock, so
        opening a ledger another process is writing to never waits (and a read-only one opens)."""
        if self._current(conn):
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = self._schema_version(conn)
            if version < 1:
                conn.execute(_CALLS)
            if version < 2:
                run_script(conn, _SCHEMA_2)
            if version < 3:
                run_script(conn, _SCHEMA_3)
            if version < 4:
                run_script(conn, _SCHEMA_4)
            if _stored_zone(conn) != self._timezone:
                self._rebuild_totals(conn)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise

    def _current(self, conn: sqlite3.Connection) -> bool:
        return self._schema_version(conn) == SCHEMA_VERSION and _stored_zone(conn) == self._timezone

    def _schema_version(self, conn: sqlite3.Connection) -> int:
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"cost ledger {self.path} has schema {version}, newer than this "
                f"QuestFoundry reads ({SCHEMA_VERSION}); upgrade questfoundry"
            )
        return version

    def _rebuild_totals(self, conn: sqlite3.Connection) -> None:
        """Recompute the running totals from the rows, in this file's time zone."""
        conn.create_function("qf_local_day", 1, self.local_day, deterministic=True)
        run_script(conn, _REBUILD_TOTALS)
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('timezone', ?)", (self._timezone,))


def drop_hold(conn: sqlite3.Connection, hold_id: str) -> None:
    """Remove one hold inside the caller's transaction (the ledger's, when a row settles it)."""
    conn.execute("DELETE FROM holds WHERE id = ?", (int(hold_id),))


def holds_here(keeper: object, file: LedgerFile) -> bool:
    """Whether ``keeper`` keeps its holds in ``file`` (it exposes a :class:`LedgerFile` on the
    same path as ``file``): then a row settles its hold in the row's own transaction."""
    other = getattr(keeper, "file", None)
    if not isinstance(other, LedgerFile):
        return False
    return other.path == file.path or other.path.resolve() == file.path.resolve()


def run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run ``;``-separated statements inside the open transaction (``executescript`` would
    commit it first)."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _stored_zone(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'timezone'").fetchone()
    except sqlite3.OperationalError:  # schema 1 has no meta table
        return None
    return None if row is None else str(row[0])


def _rollback(conn: sqlite3.Connection) -> None:
    """Undo the open transaction, if any; a failed COMMIT can leave one open."""
    if conn.in_transaction:
        with suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"unknown time zone {name!r}", path="rate_limiting.timezone") from exc
