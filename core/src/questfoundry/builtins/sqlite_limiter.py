"""Built-in limiter strategy ``sqlite`` (the default): token buckets every process on this machine
shares, in one SQLite file, with no server.

The buckets behave exactly as ``token_bucket``'s: each holds up to ``limit`` units and refills at
``limit / period`` units per second; acquiring several is all-or-nothing. Guarantees:

- **Never more than a bucket holds, across processes.** Whatever a process takes comes out of the
  file in one ``BEGIN IMMEDIATE`` transaction, so processes racing one bucket are serialised by
  SQLite's write lock and never take together more than it holds.
- **A transaction for several calls, not one each.** A process taking from buckets that stay more
  than half full takes a *lease* with it: up to :data:`LEASE_CALLS` more of what it asked for
  and at most :data:`LEASE_SHARE` of each limit, in whole acquires of that size, written in the
  file beside the buckets. It serves its next acquires from the lease in memory (a few
  microseconds instead of a transaction's 20-80) for :data:`LEASE_SECONDS` at most; at its next
  transaction, or when it closes, what is left goes back. A bucket refills only up to its limit
  less the fresh leases out, so a unit is never both in a lease and in the bucket.
- **Leases lose nothing while their holders run.** An acquire the file alone would refuse, while
  other processes' fresh leases hold what it lacks, waits for them (at most :data:`LEASE_SECONDS`:
  a holder gives back at its next transaction, and its lease ends then anyway), so processes
  racing one bucket still take all it holds. A process that stops calling holds its lease out of
  use until it calls again or closes (at most :data:`LEASE_SHARE` of each limit); a killed
  process's lease comes back with the refill. Buckets at most half full, and limits too small for
  a lease of whole acquires (10 requests a minute), are taken from exactly: a transaction each.
- **Levels are the shared ones**: :meth:`SQLiteLimiter.levels` reads the file (and this process's
  lease), so ``questfoundry limits`` run from another process shows what a running gateway took;
  units in other processes' leases count as taken.
- **Time is wall-clock time** (``context.clock.time()``), the one clock every process shares and
  that survives a reboot; a clock set back refills nothing until it catches up.
- **Removing the file grants nothing.** A file deleted (``rm limits.sqlite*``) or replaced by
  another while the project runs is noticed — by a running process at its next transaction,
  which checks the file is still the one it opened (and drops its lease, taken from the old
  file), and by a new process, which finds the file's id differs from the sidecar
  ``.limits.sqlite.id`` beside it (or the file gone while the sidecar is there). The first to
  notice warns once and makes the file anew with every bucket *empty*, refilling at its rate
  from then on: a reset never hands out a fresh burst. Only a project with neither file (a new
  one) starts with full buckets.

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
import weakref
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
#: a lease holds at most this many more acquires of the size asked for ...
LEASE_CALLS = 16
#: ... and at most this share of a bucket's limit
LEASE_SHARE = 0.02
#: seconds a lease serves acquires (and the longest an acquire waits for other processes' leases)
LEASE_SECONDS = 0.25
#: seconds between two looks at the file while other processes' leases hold what is lacking
POLL_SECONDS = 0.002

log = logging.getLogger("questfoundry.limiter.sqlite")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (
    key TEXT PRIMARY KEY,
    level REAL NOT NULL,
    stamp REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
    key TEXT NOT NULL,
    owner TEXT NOT NULL,
    amount REAL NOT NULL,
    stamp REAL NOT NULL,
    PRIMARY KEY (key, owner)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
"""

_WRITE = """
INSERT INTO buckets VALUES (?, ?, ?)
ON CONFLICT (key) DO UPDATE SET level = excluded.level, stamp = excluded.stamp
"""


class _Bucket(NamedTuple):
    """One bucket as of now, as one transaction sees it."""

    level: float  #: refilled since it was written, with this process's lease given back
    stamp: float
    cap: float  #: its limit less other processes' fresh leases: the most it may hold now
    lent: float  #: units in other processes' fresh leases
    until: float  #: when the last of those leases ends


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
        self._owner = uuid.uuid4().hex  # this limiter's name on its leases
        self._held: dict[str, float] = {}  # what is left of this limiter's lease, by key
        self._until = -math.inf  # when the lease ends
        self._conn: sqlite3.Connection | None = self._connect() if self._rates else None
        _limiters.add(self)

    def acquire(self, amounts: Mapping[str, float]) -> float:
        wanted = {key: amount for key, amount in amounts.items() if key in self._rates}
        if not wanted:
            return 0.0
        if any(amount > self._rates[key].limit for key, amount in wanted.items()):
            return math.inf
        if self._from_lease(wanted):
            return 0.0
        waited = 0.0
        while True:
            wait, lent = self._take(wanted)
            if not wait or not lent or waited >= LEASE_SECONDS:
                return wait
            pause = min(POLL_SECONDS, lent)  # other processes' leases hold what is lacking
            self._clock.sleep(pause)
            waited += pause

    def adjust(self, amounts: Mapping[str, float]) -> None:
        wanted = {key: amount for key, amount in amounts.items() if key in self._rates}
        if wanted:
            self._settle({key: -amount for key, amount in wanted.items()})

    def levels(self) -> Sequence[BucketLevel]:
        if not self._rates:
            return []
        with self._using() as conn:
            buckets = self._read(conn, self._rates, self._clock.time())
        return [
            BucketLevel(key, buckets[key].level, rate.limit, rate.period)
            for key, rate in self._rates.items()
        ]

    def close(self) -> None:
        if self._held and not self._closed:
            with suppress(BackendUnavailableError):
                self._settle({})  # gives the lease back (else it ends in LEASE_SECONDS)
        with self._lock:
            self._closed = True
            self._lease({}, -math.inf)
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # ------------------------------------------------------------------ leases

    def _from_lease(self, wanted: Mapping[str, float]) -> bool:
        """Take ``wanted`` from this process's lease, if it is fresh and holds all of it."""
        with self._lock:
            held = self._held
            if not held or self._clock.time() >= self._until:
                return False
            for key, amount in wanted.items():
                if held.get(key, -1.0) < amount:
                    return False
            for key, amount in wanted.items():
                held[key] -= amount
            return True

    def _take(self, wanted: Mapping[str, float]) -> tuple[float, float]:
        """One transaction: take ``wanted`` (and a lease) or refuse. Returns the seconds to wait
        (0: taken) and, when other processes' fresh leases hold what is lacking, the seconds
        until they end (else 0)."""
        with self._using() as conn:
            with _immediate(conn):
                now = self._clock.time()
                buckets = self._read(conn, [*wanted, *self._held], now)
                wait, covered, until = 0.0, True, now
                for key, amount in wanted.items():
                    bucket = buckets[key]
                    if amount > bucket.level:
                        wait = max(wait, (amount - bucket.level) / self._per_second(key))
                        covered = covered and bucket.level + bucket.lent >= amount
                        until = max(until, bucket.until)
                lease = {} if wait else self._lease_sizes(wanted, buckets)
                if not wait or self._held:  # a refusal changes nothing but a lease given back
                    taken = {key: -amount - lease.get(key, 0.0) for key, amount in wanted.items()}
                    self._write(conn, buckets, {} if wait else taken, lease, now)
            self._lease(lease, now)  # committed, and before another thread reads the lease
        return wait, (until - now if wait and covered else 0.0)

    def _settle(self, changes: Mapping[str, float]) -> None:
        """One transaction: make ``changes`` and give this process's lease back."""
        with self._using() as conn:
            with _immediate(conn):
                now = self._clock.time()
                buckets = self._read(conn, [*changes, *self._held], now)
                self._write(conn, buckets, changes, {}, now)
            self._lease({}, now)

    def _lease_sizes(
        self, wanted: Mapping[str, float], buckets: Mapping[str, _Bucket]
    ) -> dict[str, float]:
        """What to lease beyond ``wanted``: whole further acquires of the size asked for, within
        :data:`LEASE_CALLS` and :data:`LEASE_SHARE`, leaving each bucket more than half full;
        for every bucket or none (a lease serves an acquire only when it holds all of it)."""
        lease = {}
        for key, amount in wanted.items():
            limit = self._rates[key].limit
            room = min(
                amount * LEASE_CALLS,
                limit * LEASE_SHARE,
                buckets[key].level - amount - limit / 2,
            )
            if amount <= 0 or room < amount:
                return {}
            lease[key] = amount * math.floor(room / amount)
        return lease

    def _lease(self, lease: dict[str, float], now: float) -> None:
        """This process now holds ``lease`` (taken at ``now``), the last one given back."""
        self._held = lease
        self._until = now + LEASE_SECONDS if lease else -math.inf

    # ------------------------------------------------------------------ the file

    def _per_second(self, key: str) -> float:
        rate = self._rates[key]
        return rate.limit / rate.period

    def _read(
        self, conn: sqlite3.Connection, keys: Iterable[str], now: float
    ) -> dict[str, _Bucket]:
        """Each bucket as of ``now``: refilled since it was written up to its cap, with what is
        left of this process's lease given back."""
        keys = list(dict.fromkeys(keys))
        marks = ", ".join("?" * len(keys))
        cut = len(self._prefix)
        stored = {  # each bucket, and the units other processes' fresh leases hold of it
            name[cut:]: (level, stamp, out, until)
            for name, level, stamp, out, until in conn.execute(
                f"""SELECT key, level, stamp, out, until FROM buckets LEFT JOIN (
                        SELECT key, SUM(amount) AS out, MAX(stamp) AS until FROM leases
                        WHERE owner != ? AND stamp > ? GROUP BY key
                    ) USING (key) WHERE key IN ({marks})""",
                [self._owner, now - LEASE_SECONDS, *(self._prefix + key for key in keys)],
            )
        }
        buckets = {}
        for key in keys:
            per_second = self._per_second(key)
            row = stored.get(key)
            if row is not None:
                level, stamp, out, until = row
                out, until = out or 0.0, now if until is None else until + LEASE_SECONDS
                level += max(0.0, now - stamp) * per_second
                stamp = max(now, stamp)  # never back: a clock set back refills nothing twice
            else:  # unused since the file was made: full, or refilling since a reset
                level, stamp, out, until = (
                    max(0.0, now - self._reset_at) * per_second,
                    now,
                    0.0,
                    now,
                )
            cap = self._rates[key].limit - out
            mine = self._held.get(key, 0.0)
            level = min(cap, min(cap - mine, level) + mine)
            buckets[key] = _Bucket(level, stamp, cap, out, until)
        return buckets

    def _write(
        self,
        conn: sqlite3.Connection,
        buckets: Mapping[str, _Bucket],
        changes: Mapping[str, float],
        lease: Mapping[str, float],
        now: float,
    ) -> None:
        """Store every bucket read (this process's old lease given back, ``changes`` made, never
        above its cap), and ``lease`` as this process's lease; forget leases that have ended."""
        conn.executemany(
            _WRITE,
            [
                (
                    self._prefix + key,
                    min(bucket.cap, bucket.level + changes.get(key, 0.0)),
                    bucket.stamp,
                )
                for key, bucket in buckets.items()
            ],
        )
        if self._held or lease:
            conn.execute(
                "DELETE FROM leases WHERE owner = ? OR stamp <= ?",
                (self._owner, now - LEASE_SECONDS),
            )
        if lease:
            conn.executemany(
                "INSERT INTO leases VALUES (?, ?, ?, ?)",
                [(self._prefix + key, self._owner, amount, now) for key, amount in lease.items()],
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
                conn.execute("DELETE FROM leases")
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
                self._lease({}, -math.inf)  # taken from the file that is gone
            if self._conn is None or os.getpid() != self._pid:
                self._pid = os.getpid()  # a forked child never shares its parent's connection
                self._conn = self._connect()
            yield self._conn


_limiters: weakref.WeakSet[SQLiteLimiter] = weakref.WeakSet()


def _forked() -> None:
    """In a forked child: the parent's leases are the parent's (the child takes its own)."""
    for limiter in list(_limiters):
        limiter._lock = threading.Lock()  # a lock held by another thread at fork stays held
        limiter._owner = uuid.uuid4().hex
        limiter._lease({}, -math.inf)


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forked)


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
