"""The cost ledger: one SQLite row per call, the source of truth for budgets and cost reports.

Guarantees:

- **Durable spend.** :meth:`Ledger.record` commits before it returns. The database runs in WAL mode
  with ``synchronous=NORMAL``: a committed row survives the process being killed (the WAL is in the
  OS's hands once ``COMMIT`` returns); a power loss may roll back the last few commits but never
  corrupts the file. ``FULL`` would add an fsync per call for the power-loss case only, so it is
  not used.
- **Budgets hold across processes.** :meth:`Ledger.reserve` reads what was spent in the current
  day or month and writes a reservation in one ``BEGIN IMMEDIATE`` transaction, so processes racing
  one budget are serialised by SQLite's write lock and never overspend it together.
- **Restarts never reset a budget**: budgets are sums over the rows, not counters in memory.
- **Cache hits stay off the hot path**: :meth:`Ledger.record_hit` only appends to a buffer that a
  daemon thread writes within ``flush_interval`` seconds, and on :meth:`~Ledger.flush`,
  :meth:`~Ledger.close` and interpreter exit. A hit costs nothing and counts against no budget.

Money is stored as whole pico-dollars (10⁻¹² USD) in INTEGER columns, so sums are exact; ``NULL``
cost means the price was unknown. Windows are calendar days and months in the configured time
zone. A reservation older than ``stale_after`` seconds (one hour by default) is taken for the
leftover of a crashed process and no longer counts. The ledger has no column for secrets.

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
import weakref
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from questfoundry.errors import ConfigError, CostLimitExceededError, LedgerError
from questfoundry.interfaces import Clock

__all__ = ["Budget", "Entry", "Ledger", "ReportRow"]

logger = logging.getLogger(__name__)

Period = Literal["day", "month"]
ReportBy = Literal["provider", "model", "role", "day"]

SCHEMA_VERSION = 1
PICO = Decimal(10) ** 12
_MAX_PENDING_HITS = 1_000_000

_SCHEMA = """
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
);
CREATE INDEX IF NOT EXISTS calls_day ON calls (day);
CREATE INDEX IF NOT EXISTS calls_spend ON calls (status, time, cost);
CREATE INDEX IF NOT EXISTS calls_provider_spend ON calls (provider, status, time, cost);
"""

_INSERT = """
INSERT INTO calls (time, day, run_id, role, provider, model, input_tokens, output_tokens,
                   cached_input_tokens, cost, cache_hit, saved, latency, retries, waited, status)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

# Spent rows and live reservations count against a budget; hits and stale reservations do not.
# Two sums, each a range scan of a covering index, so cache hits never slow a budget check.
_WINDOW_SUM = """
SELECT
    (SELECT COALESCE(SUM(cost), 0) FROM calls
     WHERE status = 'spent' AND time >= :start AND time < :end {provider})
  + (SELECT COALESCE(SUM(cost), 0) FROM calls
     WHERE status = 'reserved' AND time >= :live AND time < :end {provider})
"""

_REPORT_KEYS: dict[str, str] = {
    "provider": "provider",
    "model": "provider || '/' || model",
    "role": "COALESCE(role, '(none)')",
    "day": "day",
}


@dataclass(frozen=True)
class Budget:
    """At most ``limit`` US dollars per calendar ``period``, for one provider or (None) for all."""

    scope: str | None
    period: Period
    limit: Decimal

    def applies_to(self, provider: str) -> bool:
        return self.scope is None or self.scope == provider

    def describe(self) -> str:
        span = "daily" if self.period == "day" else "monthly"
        return f"{span} budget for {self.scope or 'all providers'}"


@dataclass(slots=True)
class Entry:
    """One call as the ledger keeps it. ``cost`` None means no cost model knew the price;
    ``saved`` is what a cache hit would have cost; ``time`` None means the ledger's clock now."""

    provider: str
    model: str
    role: str | None = None
    run_id: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost: Decimal | None = None
    cache_hit: bool = False
    saved: Decimal | None = None
    latency: float = 0.0
    retries: int = 0
    waited: float = 0.0
    time: float | None = None


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


def to_pico(amount: Decimal) -> int:
    """Dollars to whole pico-dollars, rounding half-even below 10⁻¹² USD."""
    if not amount.is_finite():
        raise ValueError(f"not a finite amount of money: {amount}")
    return int((amount * PICO).to_integral_value(rounding=ROUND_HALF_EVEN))


def from_pico(amount: int) -> Decimal:
    """Whole pico-dollars to dollars, exactly, without trailing zeros (``0.144``)."""
    dollars = Decimal(amount).scaleb(-12).normalize()
    return dollars.quantize(Decimal(1)) if dollars == dollars.to_integral() else dollars


def _optional_pico(amount: Decimal | None) -> int | None:
    return None if amount is None else to_pico(amount)


def _usd(amount: Decimal, places: int = 2) -> str:
    """``$0.02``; more places when fewer would round a small non-zero amount away."""
    shown = amount.quantize(Decimal(1).scaleb(-places))
    while shown != amount and places < 6:
        places += 1
        shown = amount.quantize(Decimal(1).scaleb(-places))
    return f"${shown}"


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
    ) -> None:
        """Open (creating if missing) the ledger at ``path``.

        ``timezone`` names the zone whose calendar days and months budgets and reports use;
        ``flush_interval`` is the most seconds a cache hit waits in memory; ``stale_after`` is
        how old a reservation must be to be taken for a crashed process's leftover;
        ``busy_timeout`` is how long to wait for another process's write lock before failing.
        """
        if flush_interval <= 0:
            raise ValueError("flush_interval must be positive")
        self.path = Path(path)
        self._clock = clock or Clock()
        self._zone = _zone(timezone)
        self._flush_interval = flush_interval
        self._stale_after = stale_after
        self._busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._flush_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._hits: deque[tuple[Entry, float]] = deque(maxlen=_MAX_PENDING_HITS)
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        self._closed = False
        self._pid = os.getpid()
        self._conn = self._connect()
        _open_ledgers.add(self)

    # ------------------------------------------------------------------ budgets

    def reserve(self, provider: str, estimate: Decimal, budgets: Sequence[Budget]) -> int | None:
        """Check every budget that applies to ``provider`` and hold ``estimate`` against them.

        Returns the reservation's id, to pass to :meth:`record` or :meth:`release`; None when no
        budget applies (nothing is written). Raises :class:`CostLimitExceededError` when the
        window's spend plus ``estimate`` would pass a limit; then nothing is reserved.
        """
        applying = [budget for budget in budgets if budget.applies_to(provider)]
        if not applying:
            return None
        now = self._clock.time()
        estimate_pico = max(0, to_pico(estimate))
        with self._transaction() as conn:
            for budget in applying:
                used = self._window_sum(conn, budget.scope, budget.period, now)
                if used + estimate_pico > to_pico(budget.limit):
                    raise CostLimitExceededError(
                        f"{budget.describe()}: ${from_pico(used):.4f} spent of "
                        f"{_usd(budget.limit)}; this call may cost {_usd(estimate)}"
                    )
            reservation = Entry(provider=provider, model="", cost=from_pico(estimate_pico))
            cursor = conn.execute(_INSERT, self._row(reservation, now, "reserved"))
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def release(self, reservation: int | None) -> None:
        """The call failed and cost nothing: drop its reservation."""
        if reservation is None:
            return
        with self._transaction() as conn:
            conn.execute("DELETE FROM calls WHERE id = ? AND status = 'reserved'", (reservation,))

    def spent(self, provider: str | None, period: Period) -> Decimal:
        """Dollars spent plus reserved this day or month, for ``provider`` or all (None)."""
        with self._reading() as conn:
            return from_pico(self._window_sum(conn, provider, period, self._clock.time()))

    # ------------------------------------------------------------------ writing calls

    def record(self, entry: Entry, reservation: int | None = None) -> None:
        """Write one call, replacing its reservation; committed before this returns."""
        status = "hit" if entry.cache_hit else "spent"
        row = self._row(entry, self._entry_time(entry), status)
        with self._transaction() as conn:
            if reservation is not None:
                conn.execute(
                    "DELETE FROM calls WHERE id = ? AND status = 'reserved'", (reservation,)
                )
            conn.execute(_INSERT, row)

    def record_hit(self, entry: Entry) -> None:
        """Queue a cache hit for the background writer; no I/O on the caller's thread."""
        if self._closed:
            raise LedgerError(f"cost ledger {self.path} is closed")
        self._hits.append((entry, self._clock.time() if entry.time is None else entry.time))
        if self._flusher is None:
            self._start_flusher()

    def flush(self) -> None:
        """Write every queued cache hit now."""
        with self._flush_lock:
            batch: list[tuple[Entry, float]] = []
            while self._hits:
                batch.append(self._hits.popleft())
            if not batch:
                return
            rows = self._hit_rows(batch)
            try:
                with self._transaction() as conn:
                    conn.executemany(_INSERT, rows)
            except LedgerError:
                self._hits.extendleft(reversed(batch))
                raise

    # ------------------------------------------------------------------ reports

    def report(self, by: ReportBy = "provider", since: date | None = None) -> list[ReportRow]:
        """Totals per provider, provider/model, role or local day, oldest key first for days.

        ``since`` keeps rows from that local date on. Reservations of calls still in flight are
        left out; queued cache hits are written first so the report includes them.
        """
        if by not in _REPORT_KEYS:
            raise ValueError(f"cannot report by {by!r}; choose one of {', '.join(_REPORT_KEYS)}")
        self.flush()
        query = f"""
            SELECT {_REPORT_KEYS[by]} AS key, COUNT(*), SUM(status = 'hit'),
                   SUM(CASE WHEN status = 'spent' THEN input_tokens ELSE 0 END),
                   SUM(CASE WHEN status = 'spent' THEN output_tokens ELSE 0 END),
                   COALESCE(SUM(cost), 0),
                   COALESCE(SUM(saved), 0), SUM(status = 'spent' AND cost IS NULL)
            FROM calls WHERE status IN ('spent', 'hit') AND day >= ?
            GROUP BY key ORDER BY key
        """  # the key expression comes from _REPORT_KEYS, never from the caller
        start = since.isoformat() if since else ""
        with self._reading() as conn:
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

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Stop the background writer, write queued hits and close the database. Idempotent."""
        if self._closed:
            return
        self._stop.set()
        if self._flusher is not None and self._flusher is not threading.current_thread():
            self._flusher.join()
        try:
            self.flush()
        finally:
            self._closed = True
            _open_ledgers.discard(self)
            with self._lock:
                self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LedgerError(f"cost ledger {self.path}: cannot create its folder: {exc}") from exc
        with _sqlite_errors(self.path):
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                self._migrate(conn)
            except BaseException:
                conn.close()
                raise
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Create the schema if missing; only then take the write lock, so opening a ledger
        another process is writing to never waits."""
        if self._schema_version(conn) == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            if self._schema_version(conn) < SCHEMA_VERSION:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise

    def _schema_version(self, conn: sqlite3.Connection) -> int:
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"cost ledger {self.path} has schema {version}, newer than this "
                f"QuestFoundry reads ({SCHEMA_VERSION}); upgrade questfoundry"
            )
        return version

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
            self._flusher = None
            self._conn = self._connect()
        return self._conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes SQLite's write lock at once, so reads inside it are
        exactly what the write is based on."""
        conn = self._connection()
        with self._lock, _sqlite_errors(self.path):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        with self._lock, _sqlite_errors(self.path):
            yield conn

    def _window_sum(
        self, conn: sqlite3.Connection, provider: str | None, period: Period, now: float
    ) -> int:
        start, end = self._window(period, now)
        params = {
            "start": start,
            "end": end,
            "live": max(start, now - self._stale_after),
            "provider": provider,
        }
        query = _WINDOW_SUM.format(provider="" if provider is None else "AND provider = :provider")
        total: int = conn.execute(query, params).fetchone()[0]
        return total

    def _window(self, period: Period, now: float) -> tuple[float, float]:
        """Epoch seconds of the start and end of the current local day or month."""
        today = datetime.fromtimestamp(now, self._zone).date()
        if period == "day":
            first, after = today, today + timedelta(days=1)
        elif period == "month":
            first = today.replace(day=1)
            after = (first + timedelta(days=32)).replace(day=1)
        else:
            raise ValueError(f"unknown budget period {period!r}; use 'day' or 'month'")
        return self._midnight(first), self._midnight(after)

    def _midnight(self, day: date) -> float:
        return datetime(day.year, day.month, day.day, tzinfo=self._zone).timestamp()

    def _entry_time(self, entry: Entry) -> float:
        return self._clock.time() if entry.time is None else entry.time

    def _row(self, entry: Entry, when: float, status: str) -> tuple[object, ...]:
        cost = entry.cost
        if status == "hit" and cost is None:
            cost = Decimal(0)  # a hit is served from the cache: it costs nothing, it is not unknown
        return (
            when,
            datetime.fromtimestamp(when, self._zone).date().isoformat(),
            entry.run_id,
            entry.role,
            entry.provider,
            entry.model,
            entry.input_tokens,
            entry.output_tokens,
            entry.cached_input_tokens,
            _optional_pico(cost),
            int(status == "hit"),
            _optional_pico(entry.saved),
            entry.latency,
            entry.retries,
            entry.waited,
            status,
        )

    def _hit_rows(self, batch: list[tuple[Entry, float]]) -> list[tuple[object, ...]]:
        """Rows for queued hits; a malformed entry is dropped with a warning, not the batch."""
        rows = []
        for entry, when in batch:
            try:
                rows.append(self._row(entry, when, "hit"))
            except (ValueError, TypeError, ArithmeticError) as exc:
                logger.warning(
                    "cache hit for %s/%s not recorded: %s", entry.provider, entry.model, exc
                )
        return rows

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
    """Write queued hits every ``interval`` seconds; holds only a weak reference to the ledger."""
    failing = False
    while not stop.wait(interval):
        ledger = ref()
        if ledger is None:
            return
        try:
            ledger.flush()
            failing = False
        except LedgerError as exc:
            if not failing:
                logger.warning("cache hits not written to the ledger yet: %s", exc)
            failing = True
        del ledger


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


@contextmanager
def _sqlite_errors(path: Path) -> Iterator[None]:
    """Turn any sqlite3 failure into a one-line :class:`LedgerError` naming the file."""
    try:
        yield
    except sqlite3.Error as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LedgerError(f"cost ledger {path}: {reason}") from exc


_open_ledgers: weakref.WeakSet[Ledger] = weakref.WeakSet()


@atexit.register
def _flush_open_ledgers() -> None:
    """At interpreter exit, write the cache hits still queued in every open ledger."""
    for ledger in list(_open_ledgers):
        try:
            ledger.flush()
        except LedgerError as exc:
            logger.warning("cache hits lost at exit: %s", exc)
