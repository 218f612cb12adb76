"""The cost ledger: one SQLite row per call, with running totals for budgets and reports.

Guarantees:

- **Durable spend.** :meth:`Ledger.record` commits before it returns. The database runs in WAL mode
  with ``synchronous=NORMAL``: a committed row survives the process being killed; a power loss may
  roll back the last few commits but never corrupts the file.
- **A paid call is never lost because the ledger cannot be written.** When :meth:`~Ledger.record`
  cannot commit within ``write_timeout`` seconds (another process holds the write lock, the file
  is read-only, the disk fails), it does not raise: the row goes to this process's spool file
  beside the ledger (``ledger.sqlite.spool/``, see :mod:`questfoundry.ledger.spool`), on disk before
  ``record`` returns, and one warning is logged. The background writer retries; the spool of a
  process that is gone is written by the next process that opens the ledger. Each spooled row
  carries an id written in the row's own transaction, so a row is written exactly once even when
  a crash comes between that commit and removing the spool file.
- **Checks and reports cost the same at a thousand rows and at a million.** Each row updates, in
  its own transaction, the running totals budgets read (spent per provider and for all, per local
  day and month) and the rollup ``cost report`` reads (per day, provider, model and role).
  Migrating a schema-1 ledger computes both from its rows and keeps every row.
- **Budgets live in the same file.** :class:`~questfoundry.ledger.budgets.SQLiteBudgetKeeper` keeps
  its holds here; :meth:`~Ledger.record` of a call with such a hold replaces the hold by the real
  cost in the row's transaction. A hold of another keeper is settled with that keeper after the row.
- **Cache hits stay off the hot path**: :meth:`Ledger.record_hit` only appends to a buffer that a
  daemon thread writes within ``flush_interval`` seconds, and on :meth:`~Ledger.flush`,
  :meth:`~Ledger.close` and interpreter exit. A hit costs nothing and counts against no budget.

Money is stored as whole pico-dollars (:mod:`questfoundry.kit.money`) in INTEGER columns, so sums
are exact; ``NULL`` cost means the price was unknown. Days and months are calendar ones in the
configured time zone; the totals follow the zone the ledger is opened with (opening it with
another zone recomputes them once, from the rows). The ledger has no column for secrets.

One :class:`Ledger` serves every thread of a process (one connection behind a lock); open one per
process — a ledger inherited through ``fork`` reconnects on first use instead of sharing the
parent's connection.
"""

from __future__ import annotations

import atexit
import logging
import os
import sqlite3
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from questfoundry.contracts.backends import BackendContext, Clock
from questfoundry.contracts.errors import ConfigError, LedgerError, QuestFoundryError
from questfoundry.contracts.protocols import Hold
from questfoundry.contracts.records import Period
from questfoundry.kit import sqlite
from questfoundry.kit.money import from_pico, optional_pico, to_pico
from questfoundry.ledger import spool
from questfoundry.ledger.budgets import SQLiteBudgetKeeper, drop_hold
from questfoundry.ledger.processes import is_gone, this_process

if TYPE_CHECKING:
    from questfoundry.config import Config
    from questfoundry.contracts.records import Reply

__all__ = ["Ledger", "ReportRow", "from_pico", "open_ledger", "to_pico"]

logger = logging.getLogger(__name__)

ReportBy = Literal["provider", "model", "role", "day"]

SCHEMA_VERSION = 2
DEFAULT_PATH = ".questfoundry/ledger.sqlite"
#: the scope of the running totals over every provider
ALL = "*"
_MAX_PENDING_HITS = 1_000_000

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

_INSERT = """
INSERT INTO calls (time, day, run_id, role, provider, model, input_tokens, output_tokens,
                   cached_input_tokens, cost, cache_hit, saved, latency, retries, waited, status)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

_ROLLUP = """
INSERT INTO rollup VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (day, provider, model, role) DO UPDATE SET
    calls = calls + excluded.calls, hits = hits + excluded.hits,
    input_tokens = input_tokens + excluded.input_tokens,
    output_tokens = output_tokens + excluded.output_tokens,
    cost = cost + excluded.cost, saved = saved + excluded.saved,
    unknown_cost_calls = unknown_cost_calls + excluded.unknown_cost_calls
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

_REPORT_KEYS: dict[str, str] = {
    "provider": "provider",
    "model": "provider || '/' || model",
    "role": "COALESCE(NULLIF(role, ''), '(none)')",
    "day": "day",
}


class _Row(NamedTuple):
    """One row of ``calls``, in column order (what the spool keeps, too)."""

    time: float
    day: str
    run_id: str
    role: str | None
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cost: int | None
    cache_hit: int
    saved: int | None
    latency: float
    retries: int
    waited: float
    status: str

    def rollup(self) -> tuple[tuple[str, str, str, str], tuple[int, ...]]:
        """The rollup key of this row and what it adds there (calls, hits, tokens, money)."""
        spent = self.status == "spent"
        return (self.day, self.provider, self.model, self.role or ""), (
            1,
            int(not spent),
            self.input_tokens if spent else 0,
            self.output_tokens if spent else 0,
            self.cost or 0,
            self.saved or 0,
            int(spent and self.cost is None),
        )


@dataclass(frozen=True)
class ReportRow:
    """Totals for one key of a cost report. ``calls`` includes cache hits; tokens are those of
    calls that reached the provider; ``cost`` sums only known prices and ``unknown_cost_calls``
    says how many calls had none; ``saved`` is what the hits would have cost."""

    key: str
    calls: int
    hits: int
    hit_rate: float
    input_tokens: int
    output_tokens: int
    cost: Decimal
    saved: Decimal
    unknown_cost_calls: int


def open_ledger(config: Config, context: BackendContext) -> Ledger:
    """The ledger config.yml names (``pricing.ledger_path``), in ``rate_limiting.timezone``."""
    return Ledger(
        context.resolve_path(config.get("pricing.ledger_path", DEFAULT_PATH)),
        clock=context.clock,
        timezone=config.get("rate_limiting.timezone", "UTC"),
    )


class Ledger:
    """The persistent record of every call; see the module docstring for its guarantees."""

    def __init__(
        self,
        path: Path,
        *,
        clock: Clock | None = None,
        timezone: str = "UTC",
        flush_interval: float = 1.0,
        stale_after: float = 3600.0,
        busy_timeout: float = 30.0,
        write_timeout: float = 2.0,
    ) -> None:
        """Open (creating or migrating if needed) the ledger at ``path``.

        ``timezone`` names the zone of the calendar days and months of budgets and reports;
        ``flush_interval`` is the most seconds a cache hit waits in memory, and how often spooled
        rows are retried; ``stale_after`` is how old a hold or spool file of a process on another
        host must be to be taken for a crashed process's leftover; ``busy_timeout`` is how long
        reads, holds and reports wait for another process's write lock, ``write_timeout`` how long
        a paid call's row waits before it is spooled instead.
        """
        if flush_interval <= 0:
            raise ValueError("flush_interval must be positive")
        self.path = Path(path)
        self.clock = clock or Clock()
        self.stale_after = stale_after
        self._timezone = timezone
        self._zone = _zone(timezone)
        self._day_of: tuple[int, str] = (-1, "")
        self._flush_interval = flush_interval
        self._busy_timeout = busy_timeout
        self._write_timeout = write_timeout
        self._spool = spool.folder_of(self.path)
        self._spooling = False
        self._lock = threading.RLock()
        self._flush_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._hits: deque[tuple[Reply, float]] = deque(maxlen=_MAX_PENDING_HITS)
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        self._closed = False
        self._pid = os.getpid()
        self._conn = self._connect()
        self._timeout = busy_timeout
        _open_ledgers.add(self)
        self._drain_left_behind()

    # ------------------------------------------------------------------ writing calls

    def record(self, reply: Reply, hold: Hold | None = None) -> None:
        """Write one paid call and settle its ``hold``; never raises for a write that fails.

        Committed before this returns, or else kept in the spool (see the module docstring).
        """
        row = self._row(reply, self.clock.time())
        local = hold if hold is not None and self._holds_here(hold) else None
        try:
            with self.transaction(self._write_timeout) as conn:
                self._write(conn, [row])
                if local is not None:
                    drop_hold(conn, local.id)
        except LedgerError as exc:
            self._keep(row, None if local is None else local.id, exc)
        if hold is not None and local is None:
            try:
                hold.keeper.settle(hold, reply.cost)
            except QuestFoundryError as exc:  # the call is paid: its reply must still be returned
                logger.warning("budget hold %s not settled: %s", hold.id, exc)

    def record_hit(self, reply: Reply) -> None:
        """Queue a cache hit (or a coalesced reply) for the background writer: no I/O here.

        It costs nothing; ``reply.saved`` is what it would have cost. Its row is made by the
        writer, off the caller's path; a hit that cannot be a row (a saved amount that is not a
        number) is dropped then with a warning, never raised.
        """
        if self._closed:
            raise LedgerError(f"cost ledger {self.path} is closed")
        self._hits.append((reply, self.clock.time()))
        if self._flusher is None:
            self._start_flusher()

    def flush(self) -> None:
        """Write every queued cache hit now."""
        with self._flush_lock:
            batch: list[tuple[Reply, float]] = []
            while self._hits:
                batch.append(self._hits.popleft())
            if not batch:
                return
            rows = []
            for reply, when in batch:
                try:
                    rows.append(self._row(reply, when, hit=True))
                except (ValueError, ArithmeticError) as exc:
                    logger.warning(
                        "cache hit for %s/%s not recorded: %s", reply.provider, reply.model, exc
                    )
            try:
                with self.transaction() as conn:
                    self._write(conn, rows)
            except LedgerError:
                self._hits.extendleft(reversed(batch))
                raise

    # ------------------------------------------------------------------ reports

    def report(self, by: ReportBy = "provider", since: date | None = None) -> list[ReportRow]:
        """Totals per provider, provider/model, role or local day, in key order.

        ``since`` keeps rows from that local date on. Holds of calls in flight are left out;
        queued cache hits are written first so the report includes them. Reads the rollup, so it
        takes as long at a million rows as at a thousand.
        """
        if by not in _REPORT_KEYS:
            raise ValueError(f"cannot report by {by!r}; choose one of {', '.join(_REPORT_KEYS)}")
        self.flush()
        query = f"""
            SELECT {_REPORT_KEYS[by]} AS key, SUM(calls), SUM(hits), SUM(input_tokens),
                   SUM(output_tokens), SUM(cost), SUM(saved), SUM(unknown_cost_calls)
            FROM rollup WHERE day >= ? GROUP BY key ORDER BY key
        """  # the key expression comes from _REPORT_KEYS, never from the caller
        start = since.isoformat() if since else ""
        with self.reading() as conn:
            rows = conn.execute(query, (start,)).fetchall()
        return [
            ReportRow(
                key=key,
                calls=calls,
                hits=hits,
                hit_rate=hits / calls if calls else 0.0,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cost=from_pico(cost),
                saved=from_pico(saved),
                unknown_cost_calls=unknown,
            )
            for key, calls, hits, input_tokens, output_tokens, cost, saved, unknown in rows
        ]

    # ------------------------------------------------------------------ running totals

    def spent(self, conn: sqlite3.Connection, scope: str | None, period: Period, now: float) -> int:
        """Pico-dollars paid this local day or month (holds not included), for ``scope`` or all."""
        row = conn.execute(
            "SELECT spent FROM totals WHERE scope = ? AND span = ?",
            (ALL if scope is None else scope, self._span(period, now)),
        ).fetchone()
        return int(row[0]) if row else 0

    def add_spent(self, conn: sqlite3.Connection, provider: str, cost: int, day: str) -> None:
        """Count ``cost`` pico-dollars paid to ``provider`` on local ``day`` in the totals."""
        if cost:
            month = day[:7]
            spans = [(provider, day), (provider, month), (ALL, day), (ALL, month)]
            conn.executemany(_ADD_TOTAL, [(scope, span, cost) for scope, span in spans])

    def local_day(self, when: float) -> str:
        """The ISO date of ``when`` in the ledger's zone (remembered for the minute: zones
        change their offset on whole minutes)."""
        minute = int(when // 60)
        known_minute, known_day = self._day_of  # one read: threads may replace it meanwhile
        if minute == known_minute:
            return known_day
        day = datetime.fromtimestamp(minute * 60, self._zone).date().isoformat()
        self._day_of = (minute, day)
        return day

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Stop the background writer, write queued hits and spooled rows, close. Idempotent."""
        if self._closed:
            return
        self._stop.set()
        if self._flusher is not None and self._flusher is not threading.current_thread():
            self._flusher.join()
        try:
            self.flush()
            if self._spooling:
                try:
                    self._drain_own()
                except LedgerError as exc:
                    logger.warning("spooled paid calls wait for the next open: %s", exc)
        finally:
            self._closed = True
            _open_ledgers.discard(self)
            with self._lock:
                self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ transactions

    @contextmanager
    def transaction(self, timeout: float | None = None) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes SQLite's write lock at once (``BEGIN IMMEDIATE``), so
        what is read inside it is exactly what the write is based on. ``timeout``: seconds to
        wait for another process's lock (default ``busy_timeout``)."""
        conn = self._connection()
        with self._lock, _sqlite_errors(self.path):
            self._set_timeout(conn, self._busy_timeout if timeout is None else timeout)
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
        with self._lock, _sqlite_errors(self.path):
            self._set_timeout(conn, self._busy_timeout)
            yield conn

    # ------------------------------------------------------------------ internals

    def _set_timeout(self, conn: sqlite3.Connection, seconds: float) -> None:
        if seconds != self._timeout:
            conn.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")
            self._timeout = seconds

    def _connect(self) -> sqlite3.Connection:
        with _sqlite_errors(self.path):
            return sqlite.open_sqlite(self.path, self._busy_timeout, self._migrate)

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
                _run(conn, _SCHEMA_2)
            if self._stored_zone(conn) != self._timezone:
                self._rebuild_totals(conn)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise

    def _current(self, conn: sqlite3.Connection) -> bool:
        return (
            self._schema_version(conn) == SCHEMA_VERSION
            and self._stored_zone(conn) == self._timezone
        )

    def _schema_version(self, conn: sqlite3.Connection) -> int:
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"cost ledger {self.path} has schema {version}, newer than this "
                f"QuestFoundry reads ({SCHEMA_VERSION}); upgrade questfoundry"
            )
        return version

    @staticmethod
    def _stored_zone(conn: sqlite3.Connection) -> str | None:
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'timezone'").fetchone()
        except sqlite3.OperationalError:  # schema 1 has no meta table
            return None
        return None if row is None else str(row[0])

    def _rebuild_totals(self, conn: sqlite3.Connection) -> None:
        """Recompute the running totals from the rows, in this ledger's time zone."""
        conn.create_function("qf_local_day", 1, self.local_day, deterministic=True)
        _run(conn, _REBUILD_TOTALS)
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('timezone', ?)", (self._timezone,))

    def _connection(self) -> sqlite3.Connection:
        """The connection, reopened in a forked child so it never shares the parent's."""
        if self._closed:
            raise LedgerError(f"cost ledger {self.path} is closed")
        if os.getpid() != self._pid:
            self._pid = os.getpid()
            self._lock = threading.RLock()
            self._flush_lock = threading.Lock()
            self._start_lock = threading.Lock()
            self._hits.clear()  # the parent writes its own queued hits
            self._spooling = False  # and its own spool
            self._flusher = None
            self._conn = self._connect()
            self._timeout = self._busy_timeout
        return self._conn

    def _write(self, conn: sqlite3.Connection, rows: list[_Row]) -> None:
        conn.executemany(_INSERT, rows)
        sums: dict[tuple[str, str, str, str], list[int]] = {}
        for row in rows:  # a batch of hits of the same request is one rollup update
            key, adds = row.rollup()
            total = sums.get(key)
            if total is None:
                sums[key] = list(adds)
            else:
                for index, amount in enumerate(adds):
                    total[index] += amount
        conn.executemany(_ROLLUP, [(*key, *total) for key, total in sums.items()])
        for row in rows:
            if row.status == "spent" and row.cost:
                self.add_spent(conn, row.provider, row.cost, row.day)

    def _span(self, period: Period, now: float) -> str:
        day = self.local_day(now)
        if period == "day":
            return day
        if period == "month":
            return day[:7]
        raise ValueError(f"unknown budget period {period!r}; use 'day' or 'month'")

    def _row(self, reply: Reply, when: float, hit: bool = False) -> _Row:
        hit = hit or reply.cache_hit
        usage = reply.usage
        return _Row(
            time=when,
            day=self.local_day(when),
            run_id=reply.run_id,
            role=reply.role,
            provider=reply.provider,
            model=reply.model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            # a hit is served without a call: it costs nothing, it is not unknown
            cost=0 if hit else optional_pico(reply.cost),
            cache_hit=int(hit),
            saved=optional_pico(reply.saved),
            latency=reply.latency,
            retries=reply.retries,
            waited=reply.waited,
            status="hit" if hit else "spent",
        )

    def _holds_here(self, hold: Hold) -> bool:
        """Whether ``hold`` is kept in this very file, so it is settled in the row's transaction."""
        keeper = hold.keeper
        return isinstance(keeper, SQLiteBudgetKeeper) and _same_file(keeper.ledger.path, self.path)

    # ------------------------------------------------------------------ the spool

    def _keep(self, row: _Row, hold_id: str | None, error: LedgerError) -> None:
        """Put a paid row the ledger refused into this process's spool file."""
        record = {"id": uuid.uuid4().hex, "row": list(row), "hold": hold_id}
        try:
            with spool.locked():
                where = spool.append(self._spool, record)
        except OSError as exc:
            logger.error(  # the last place left: the log keeps what the call cost
                "paid call not recorded (%s; spool %s: %s): %s", error, self._spool, exc, record
            )
            return
        if not self._spooling:
            logger.warning("%s; paid calls are kept in %s until it can be written", error, where)
            self._spooling = True
        if self._flusher is None and not self._closed:
            self._start_flusher()

    def _drain(self, path: Path) -> None:
        """Write the rows of one spool file, each exactly once, then remove the file."""
        records = spool.read(path)
        if records:
            with self.transaction(self._write_timeout) as conn:
                for record in records:
                    claim = conn.execute(
                        "INSERT OR IGNORE INTO spooled (id) VALUES (?)", (record["id"],)
                    )
                    if claim.rowcount:
                        self._write(conn, [_Row(*record["row"])])
                        if record["hold"] is not None:
                            drop_hold(conn, record["hold"])
        spool.remove(path)

    def _drain_own(self) -> None:
        with spool.locked():
            self._drain(spool.file_of(self._spool, this_process()))
        if self._spooling:
            logger.warning("cost ledger %s: the spooled paid calls are written now", self.path)
        self._spooling = False

    def _drain_left_behind(self) -> None:
        """Write what gone processes (and earlier ledgers of this one) left in the spool."""
        me = this_process()
        for path, owner in spool.files(self._spool):
            gone = is_gone(owner)
            if gone is None:  # another host's: give it the time its holds get
                gone = _age(path) > self.stale_after
            if owner != me and not gone:
                continue
            try:
                with spool.locked():
                    self._drain(path)
            except LedgerError as exc:
                logger.warning("spooled paid calls in %s not written yet: %s", path, exc)
                return

    def _background_write(self) -> None:
        self.flush()
        if self._spooling:
            self._drain_own()

    def _start_flusher(self) -> None:
        with self._start_lock:
            if self._flusher is not None:
                return
            ref = weakref.ref(self)
            thread = threading.Thread(
                target=_flush_loop,
                args=(ref, self._stop, self._flush_interval),
                name=f"questfoundry-ledger-{self.path.name}",
                daemon=True,
            )
            self._flusher = thread
            thread.start()


def _flush_loop(ref: weakref.ref[Ledger], stop: threading.Event, interval: float) -> None:
    """Write queued hits and spooled rows every ``interval`` seconds; holds only a weak reference
    to the ledger."""
    failing = False
    while not stop.wait(interval):
        ledger = ref()
        if ledger is None:
            return
        try:
            ledger._background_write()
            failing = False
        except LedgerError as exc:
            if not failing:
                logger.warning("cache hits or spooled calls not written to the ledger yet: %s", exc)
            failing = True
        del ledger


def _run(conn: sqlite3.Connection, script: str) -> None:
    """Run ``;``-separated statements inside the open transaction (``executescript`` would
    commit it first)."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _same_file(one: Path, other: Path) -> bool:
    return one == other or one.resolve() == other.resolve()


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


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


def _sqlite_errors(path: Path) -> AbstractContextManager[None]:
    return sqlite.sqlite_errors("cost ledger", path, LedgerError)


_open_ledgers: weakref.WeakSet[Ledger] = weakref.WeakSet()


@atexit.register
def _flush_open_ledgers() -> None:
    """At interpreter exit, write the cache hits still queued in every open ledger."""
    for ledger in list(_open_ledgers):
        try:
            ledger.flush()
        except LedgerError as exc:
            logger.warning("cache hits lost at exit: %s", exc)
