"""Ledger and limiter scale benchmark: a budget check and a cost report at 1,000 and 1,000,000 rows.

    python benchmarks/ledger_scale.py [--rows 1000 1000000] [--runs 2000]

For each size a schema-1 ledger of that many calls (a year of them: three providers, four models,
fifteen roles, one in five a cache hit) is written in one transaction, then opened, which migrates
it to schema 2 and computes its running totals and rollup (timed). Then, in microseconds or
milliseconds:

- a budget check: ``SQLiteBudgetKeeper.reserve`` + ``release`` against a daily and a monthly
  budget. It reads running totals, so it should cost the same at every size;
- ``ledger.record`` of one paid call (row, rollup and totals in one transaction);
- ``cost report`` (``Ledger.report``) by provider, model, role and day;
- one limiter acquire over four buckets: the ``sqlite`` strategy (shared by every process)
  beside the in-process ``token_bucket``.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from questfoundry.builtins.sqlite_limiter import SQLiteLimiter
from questfoundry.builtins.token_bucket import TokenBucketLimiter
from questfoundry.contracts.records import Budget, Rate, Reply, Usage
from questfoundry.gateway.admission import admission
from questfoundry.ledger import Ledger
from questfoundry.ledger.keeper import SQLiteBudgetKeeper
from questfoundry.testing.ledgers import SCHEMA_1

PROVIDERS = ("openai", "gemini", "ollama")
MODELS = ("gpt-4o", "gpt-4o-mini", "gemini-2.5-flash", "llama3")
ROLES = tuple(f"role-{number}" for number in range(15))
YEAR = 365 * 86_400.0


def measure(operation: Callable[[], Any], runs: int) -> tuple[float, float]:
    """Median and p99 of ``runs`` calls, in microseconds, after a warm-up."""
    for _ in range(max(10, runs // 20)):
        operation()
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        operation()
        samples.append((time.perf_counter_ns() - start) / 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def build(path: Path, rows: int, now: float) -> None:
    """A schema-1 ledger of ``rows`` calls over the year before ``now``, in one transaction."""
    chance = random.Random(rows)

    def row(_: int) -> tuple[object, ...]:
        when = now - chance.random() * YEAR
        day = datetime.fromtimestamp(when, timezone.utc).date().isoformat()
        hit = chance.random() < 0.2
        cost = 0 if hit else chance.randrange(10**8, 10**10)
        saved = chance.randrange(10**8, 10**10) if hit else None
        status = "hit" if hit else "spent"
        where = (chance.choice(ROLES), chance.choice(PROVIDERS), chance.choice(MODELS))
        tokens = (chance.randrange(2000), chance.randrange(500))
        return (when, day, *where, *tokens, cost, int(hit), saved, status)

    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA_1)
        conn.executemany(
            "INSERT INTO calls (time, day, role, provider, model, input_tokens, output_tokens,"
            " cost, cache_hit, saved, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            map(row, range(rows)),
        )


def ledger_rows(folder: Path, rows: int, runs: int) -> list[tuple[str, float, float]]:
    path = folder / f"ledger-{rows}.sqlite"
    now = time.time()
    started = time.perf_counter()
    build(path, rows, now)
    built = time.perf_counter() - started
    started = time.perf_counter()
    ledger = Ledger(path)
    migrated = time.perf_counter() - started
    keeper = SQLiteBudgetKeeper(
        ledger.file, [Budget(None, "day", Decimal(10**9)), Budget("openai", "month", Decimal(10**9))]
    )
    paid = Reply("openai", "gpt-4o", usage=Usage(900, 300), cost=Decimal("0.0042"), role="role-1")

    def check() -> None:
        keeper.release(keeper.reserve("openai", Decimal("0.01")))

    def record() -> None:
        ledger.record(paid)

    results = [
        (f"build {rows:,} schema-1 rows (one transaction), s", built, built),
        (f"open: migrate {rows:,} rows to schema 2, s", migrated, migrated),
        (f"budget check (reserve+release) at {rows:,} rows, µs", *measure(check, runs)),
        (f"ledger.record of a paid call at {rows:,} rows, µs", *measure(record, runs)),
    ]
    for by in ("provider", "model", "role", "day"):
        median, p99 = measure(partial(ledger.report, by), max(5, runs // 100))
        results.append((f"cost report --by {by} at {rows:,} rows, ms", median / 1000, p99 / 1000))
    ledger.close()
    return results


def limiter_rows(folder: Path, runs: int) -> list[tuple[str, float, float]]:
    big = 1e15  # never runs dry during the benchmark
    rates = [
        Rate("global/requests", big, 60),
        Rate("global/tokens", big, 3600),
        Rate("provider:openai/requests", big, 60),
        Rate("provider:openai/tokens", big, 3600),
    ]
    amounts = admission("openai", 400)
    shared = SQLiteLimiter(folder / "limits.sqlite", rates)
    local = TokenBucketLimiter(rates)
    rows = [
        (
            "limiter acquire, 4 buckets, sqlite (shared), µs",
            *measure(partial(shared.acquire, amounts), runs),
        ),
        (
            "limiter acquire, 4 buckets, token_bucket (in-process), µs",
            *measure(partial(local.acquire, amounts), runs),
        ),
    ]
    shared.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1000, 1_000_000])
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qf-ledger-bench-") as tmp:
        results = []
        for rows in args.rows:
            results += ledger_rows(Path(tmp), rows, args.runs)
        results += limiter_rows(Path(tmp), args.runs)
    width = max(len(name) for name, _, _ in results)
    print(f"{'operation':<{width}}  {'median':>10}  {'p99':>10}")
    for name, median, p99 in results:
        print(f"{name:<{width}}  {median:>10.2f}  {p99:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
