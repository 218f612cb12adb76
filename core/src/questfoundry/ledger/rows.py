"""Rows of the ledger: a ``calls`` row for each paid call (made from a reply, or from a crash's
unanswered intent), and the ``hits`` table's counts of cache hits, one row per local day,
provider, model, role and run. Each is written with the rollup and running totals it adds to, in
the caller's transaction."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, NamedTuple

from questfoundry.kit.money import optional_pico, to_pico

if TYPE_CHECKING:
    from questfoundry.contracts.records import Reply
    from questfoundry.ledger.file import LedgerFile

log = logging.getLogger("questfoundry.ledger")

_INSERT = """
INSERT INTO calls (time, day, run_id, role, provider, model, input_tokens, output_tokens,
                   cached_input_tokens, cost, cache_hit, saved, latency, retries, waited, status,
                   unconfirmed)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

_HITS = """
INSERT INTO hits VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (day, provider, model, role, run_id) DO UPDATE SET
    hits = hits + excluded.hits, saved = saved + excluded.saved,
    first = min(first, excluded.first), last = max(last, excluded.last)
"""

_ROLLUP = """
INSERT INTO rollup VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (day, provider, model, role) DO UPDATE SET
    calls = calls + excluded.calls, hits = hits + excluded.hits,
    input_tokens = input_tokens + excluded.input_tokens,
    output_tokens = output_tokens + excluded.output_tokens,
    cost = cost + excluded.cost, saved = saved + excluded.saved,
    unknown_cost_calls = unknown_cost_calls + excluded.unknown_cost_calls,
    unconfirmed = unconfirmed + excluded.unconfirmed
"""


class Row(NamedTuple):
    """One row of ``calls``, in column order (what the journal keeps, too).

    ``unconfirmed`` marks a paid call whose process died before the reply came: it is counted
    at its estimated cost and tokens, since the provider may have served it.
    """

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
    unconfirmed: int = 0

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
            self.unconfirmed,
        )


def row_of(reply: Reply, when: float, day: str, hit: bool = False) -> Row:
    """The row of ``reply`` made at ``when`` (local ``day``); a hit costs nothing and is not
    of unknown price. Raises ValueError for money that is not a number."""
    hit = hit or reply.cache_hit
    usage = reply.usage
    return Row(
        when,
        day,
        reply.run_id,
        reply.role,
        reply.provider,
        reply.model,
        usage.input_tokens,
        usage.output_tokens,
        usage.cached_input_tokens,
        0 if hit else optional_pico(reply.cost),
        int(hit),
        optional_pico(reply.saved),
        reply.latency,
        reply.retries,
        reply.waited,
        "hit" if hit else "spent",
    )


def write_rows(file: LedgerFile, conn: sqlite3.Connection, rows: Iterable[Row]) -> None:
    """Insert ``rows`` and add them to the rollup and the running totals, inside the caller's
    transaction; a batch's rows of one key are one rollup update, of one provider and day one
    update of each total."""
    rows = list(rows)
    conn.executemany(_INSERT, rows)
    sums: dict[tuple[str, str, str, str], list[int]] = {}
    for row in rows:
        key, adds = row.rollup()
        total = sums.get(key)
        if total is None:
            sums[key] = list(adds)
        else:
            for index, amount in enumerate(adds):
                total[index] += amount
    _add_rollup(conn, sums)
    spent: dict[tuple[str, str], int] = {}
    for row in rows:
        if row.status == "spent" and row.cost:
            where = (row.provider, row.day)
            spent[where] = spent.get(where, 0) + row.cost
    file.add_spent(conn, spent)


def write_hits(
    conn: sqlite3.Connection, hits: Iterable[tuple[Reply, float]], local_day: Callable[[float], str]
) -> None:
    """Count cache hits (each reply with its time) in ``hits`` and the rollup, inside the
    caller's transaction: one row per local day, provider, model, role and run, whatever the
    number of hits. A hit whose saved amount is not a number is left out with a warning."""
    counted: dict[tuple[str, str, str, str, str], tuple[int, int, float, float]] = {}
    pico: dict[Decimal, int] = {}  # a run's hits save a few distinct amounts, many times
    for reply, when in hits:
        try:
            amount = _pico(reply.saved, pico)
        except (ValueError, ArithmeticError, TypeError) as exc:
            log.warning("cache hit for %s/%s not recorded: %s", reply.provider, reply.model, exc)
            continue
        key = (local_day(when), reply.provider, reply.model, reply.role or "", reply.run_id)
        prior = counted.get(key)
        counted[key] = (
            (1, amount, when, when)
            if prior is None
            else (prior[0] + 1, prior[1] + amount, min(prior[2], when), max(prior[3], when))
        )
    conn.executemany(_HITS, [(*key, *sums) for key, sums in counted.items()])
    rollup: dict[tuple[str, str, str, str], list[int]] = {}
    for (day, provider, model, role, _), (count, amount, _, _) in counted.items():
        total = rollup.setdefault((day, provider, model, role), [0] * 8)
        total[0] += count  # calls
        total[1] += count  # hits
        total[5] += amount  # saved
    _add_rollup(conn, rollup)


def _pico(amount: Decimal | None, known: dict[Decimal, int]) -> int:
    """``amount`` in pico-dollars (None: 0), each distinct amount converted once."""
    if amount is None:
        return 0
    if amount not in known:
        known[amount] = to_pico(amount)
    return known[amount]


def _add_rollup(conn: sqlite3.Connection, sums: dict[tuple[str, str, str, str], list[int]]) -> None:
    conn.executemany(_ROLLUP, [(*key, *total) for key, total in sums.items()])
