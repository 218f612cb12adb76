"""``cost report``: totals per provider, model, role or day, read from the rollup (as fast at a
million rows as at a thousand)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal

from questfoundry.kit.money import from_pico

ReportBy = Literal["provider", "model", "role", "day"]

_KEYS: dict[str, str] = {
    "provider": "provider",
    "model": "provider || '/' || model",
    "role": "COALESCE(NULLIF(role, ''), '(none)')",
    "day": "day",
}


@dataclass(frozen=True)
class ReportRow:
    """Totals for one key of a cost report. ``calls`` includes cache hits; tokens are those of
    calls that reached the provider; ``cost`` sums only known prices and ``unknown_cost_calls``
    says how many calls had none; ``saved`` is what the hits would have cost; ``unconfirmed``
    counts paid calls a crash left without a reply, included at their estimated cost."""

    key: str
    calls: int
    hits: int
    hit_rate: float
    input_tokens: int
    output_tokens: int
    cost: Decimal
    saved: Decimal
    unknown_cost_calls: int
    unconfirmed: int = 0


def check_grouping(by: str) -> None:
    if by not in _KEYS:
        raise ValueError(f"cannot report by {by!r}; choose one of {', '.join(_KEYS)}")


def report(conn: sqlite3.Connection, by: ReportBy, since: date | None) -> list[ReportRow]:
    """The rollup grouped ``by`` one key, from local date ``since`` on, in key order."""
    check_grouping(by)
    query = f"""
        SELECT {_KEYS[by]} AS key, SUM(calls), SUM(hits), SUM(input_tokens), SUM(output_tokens),
               SUM(cost), SUM(saved), SUM(unknown_cost_calls), SUM(unconfirmed)
        FROM rollup WHERE day >= ? GROUP BY key ORDER BY key
    """  # the key expression comes from _KEYS, never from the caller
    rows = conn.execute(query, (since.isoformat() if since else "",)).fetchall()
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
            unconfirmed=unconfirmed,
        )
        for key, calls, hits, input_tokens, output_tokens, cost, saved, unknown, unconfirmed in rows
    ]
