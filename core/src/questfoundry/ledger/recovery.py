"""Settling what a stopped process left in its journal, exactly once.

A journal's progress (every call numbered below ``below``, and those listed in ``above``, are in
the database: see :class:`~questfoundry.ledger.journal.Progress`) is written in the transaction of
the rows it counts, by its owner as it writes and by whoever settles it. Settling a journal whose
owner is gone writes, in one transaction, the rows the owner had not written and an *unconfirmed*
row at its estimate for each intent without a reply (dropping the holds they name), then marks
every call of the journal settled; only then are its files removed. A crash anywhere in between
leaves a journal whose progress says what is done, so nothing is written twice.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from questfoundry.contracts.errors import LedgerError
from questfoundry.ledger import journal
from questfoundry.ledger.file import LedgerFile, drop_hold
from questfoundry.ledger.journal import Journal, Leftover, Progress
from questfoundry.ledger.rows import Row, write_rows

logger = logging.getLogger("questfoundry.ledger.ledger")

_PROGRESS = """
INSERT INTO journals VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET below = excluded.below, above = excluded.above
"""


def store_progress(conn: sqlite3.Connection, owner: Journal, numbers: Iterable[int]) -> None:
    """Write, inside the caller's transaction, ``owner``'s progress once ``numbers`` are in."""
    below, above = owner.progress.preview(numbers)
    conn.execute(_PROGRESS, (owner.name, below, above))


def settle_left_behind(file: LedgerFile, mine: Journal) -> None:
    """Settle every journal beside ``file`` whose process is gone (``mine`` is not)."""
    for leftover in journal.left_behind(mine.folder, mine.name, file.stale_after):
        try:
            _settle(file, leftover)
        except LedgerError as exc:
            logger.warning("paid calls left by a stopped process not written yet: %s", exc)
            return
        finally:
            leftover.release()
    _forget_removed(file, mine)


def _settle(file: LedgerFile, leftover: Leftover) -> None:
    calls = leftover.calls()
    if calls:
        with file.transaction() as conn:
            stored = conn.execute(
                "SELECT below, above FROM journals WHERE name = ?", (leftover.name,)
            ).fetchone()
            progress = Progress.stored(*stored) if stored else Progress()
            rows: list[Row] = []
            for number, call in sorted(calls.items()):
                if call.void or progress.settled(number):
                    continue
                if call.row is not None:
                    rows.append(Row(*call.row))
                    hold = call.hold
                elif call.fields:
                    rows.append(_unconfirmed(file, call.fields))
                    hold = call.fields[-1]
                else:
                    continue
                if hold is not None:
                    drop_hold(conn, hold)
            write_rows(file, conn, rows)
            conn.execute(_PROGRESS, (leftover.name, max(calls) + 1, ""))
        if rows:
            logger.warning(
                "cost ledger %s: %d paid calls left by a stopped process are written now",
                file.path,
                len(rows),
            )
    leftover.remove()


def _unconfirmed(file: LedgerFile, fields: Sequence[Any]) -> Row:
    """The row of a call that was sent but never answered: its estimate, marked."""
    when, provider, model, role, run_id, tokens_in, tokens_out, cost, _ = fields
    day = file.local_day(when)
    return Row(
        when, day, run_id, role, provider, model, tokens_in, tokens_out, 0, cost, 0, None,
        0.0, 0, 0.0, "spent", unconfirmed=1,
    )  # fmt: skip


def _forget_removed(file: LedgerFile, mine: Journal) -> None:
    """Drop the progress of journals whose files are gone (their rows are all written)."""
    present = journal.names(mine.folder) | {mine.name}
    try:
        with file.reading() as conn:
            stored = {name for (name,) in conn.execute("SELECT name FROM journals")}
        gone = [(name,) for name in stored - present]
        if gone:
            with file.transaction() as conn:
                conn.executemany("DELETE FROM journals WHERE name = ?", gone)
    except LedgerError:
        pass  # only tidying: tried again at the next open
