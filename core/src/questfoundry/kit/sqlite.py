"""What the core's SQLite files (the ledger, the shared limiter) have in common.

Both are opened the same way — parent folder created, WAL journal, ``synchronous=NORMAL`` (a
committed transaction survives the process being killed; a power loss may roll back the last few
commits, never corrupt the file) — and both turn every sqlite3 failure into one line naming the
file, as the error class their callers expect.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from questfoundry.contracts.errors import QuestFoundryError


def open_sqlite(
    path: Path, busy_timeout: float, prepare: Callable[[sqlite3.Connection], object]
) -> sqlite3.Connection:
    """Open ``path`` in autocommit mode for several threads, then ``prepare`` it (its schema).

    Raises :class:`sqlite3.Error` (wrap the call in :func:`sqlite_errors`); nothing is left open
    then.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise sqlite3.OperationalError(f"cannot create its folder: {exc}") from exc
    conn = sqlite3.connect(
        path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )
    try:
        _use_wal(conn, busy_timeout)
        conn.execute("PRAGMA synchronous = NORMAL")
        prepare(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _use_wal(conn: sqlite3.Connection, busy_timeout: float) -> None:
    """Switch the file to WAL once. Processes opening a new file together race for that switch,
    and SQLite answers the losers "database is locked" at once, without waiting for the busy
    timeout: so they try again, for up to that timeout."""
    give_up = time.monotonic() + busy_timeout
    delay = 0.005
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > give_up:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


@contextmanager
def sqlite_errors(what: str, path: Path, error: type[QuestFoundryError]) -> Iterator[None]:
    """Turn any sqlite3 failure inside into ``error("<what> <path>: <first line>")``."""
    try:
        yield
    except sqlite3.Error as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise error(f"{what} {path}: {reason}") from exc
