"""Ledger and limiter scale benchmark: a budget check and a cost report at 1,000 and 1,000,000 rows.

    python benchmarks/ledger_scale.py [--rows 1000 1000000] [--runs 2000]

For each size a schema-1 ledger of that many calls (a year of them: three providers, four models,
fifteen roles, one in five a cache hit) is written in one transaction, then opened, which migrates
it to the current schema and computes its running totals and rollup (timed). Then, in
microseconds:

- a budget check: ``SQLiteBudgetKeeper.reserve`` + ``release`` against a daily and a monthly
  budget. It reads running totals, so it should cost the same at every size;
- what a paid call costs its caller: ``Ledger.intend`` before it is sent and ``Ledger.record``
  after (two appends to the journal), and, per row, what the background writer then spends
  writing rows in batches (row, rollup and totals);
- ``cost report`` (``Ledger.report``) by provider, model, role and day;
- one limiter acquire over four buckets: the ``sqlite`` strategy (shared by every process; with
  limits a lease fits in, and with limits too small for one) beside the in-process
  ``token_bucket``.

:func:`ledger_rows` and :func:`limiter_rows` return the rows (dicts, see ``rows.py``).
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timezone
from decimal import Decimal
from functools import partial
from pathlib import Path

from questfoundry.builtins.sqlite_limiter import SQLiteLimiter
from questfoundry.builtins.token_bucket import TokenBucketLimiter
from questfoundry.contracts.records import Budget, Rate, Reply, Usage
from questfoundry.gateway.admission import admission
from questfoundry.ledger import Ledger
from questfoundry.ledger.keeper import SQLiteBudgetKeeper
from questfoundry.testing.ledgers import SCHEMA_1

sys.path.insert(0, str(Path(__file__).parent))
from rows import Row, table, timed, timed_row

PROVIDERS = ("openai", "gemini", "ollama")
MODELS = ("gpt-4o", "gpt-4o-mini", "gemini-2.5-flash", "llama3")
ROLES = tuple(f"role-{number}" for number in range(15))
YEAR = 365 * 86_400.0
#: rows the writer takes in one batch in the benchmark (about a second of a busy run)
BATCH = 500


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


def seconds_row(operation: str, seconds: float) -> Row:
    return {"operation": operation, "note": f"{seconds:.2f} s"}


def ledger_rows(folder: Path, rows: int, runs: int) -> list[Row]:
    path = folder / f"ledger-{rows}.sqlite"
    now = time.time()
    started = time.perf_counter()
    build(path, rows, now)
    built = time.perf_counter() - started
    started = time.perf_counter()
    ledger = Ledger(path, flush_interval=3600)  # the benchmark flushes
    migrated = time.perf_counter() - started
    keeper = SQLiteBudgetKeeper(
        ledger.file,
        [Budget(None, "day", Decimal(10**9)), Budget("openai", "month", Decimal(10**9))],
    )
    paid = Reply("openai", "gpt-4o", usage=Usage(900, 300), cost=Decimal("0.0042"), role="role-1")
    estimate = Usage(1000, 400)

    def check() -> None:
        keeper.release(keeper.reserve("openai", Decimal("0.01")))

    def call() -> None:
        intent = ledger.intend("openai", "gpt-4o", estimate, Decimal("0.01"), role="role-1")
        ledger.record(paid, intent=intent)

    results = [
        seconds_row(f"build {rows:,} schema-1 rows (one transaction)", built),
        seconds_row(f"open: migrate {rows:,} rows to the current schema", migrated),
        timed_row(f"budget check (reserve+release) at {rows:,} rows", timed(check, runs)),
        timed_row(f"a paid call's intent + record at {rows:,} rows", timed(call, runs)),
    ]
    ledger.flush()
    for _ in range(BATCH):
        call()
    started = time.perf_counter_ns()
    ledger.flush()
    per_row = (time.perf_counter_ns() - started) / 1000 / BATCH
    results.append(
        {
            "operation": f"  then, in the background: writing each row at {rows:,} rows",
            "median_us": per_row,
            "note": f"one batch of {BATCH}",
        }
    )
    for by in ("provider", "model", "role", "day"):
        samples = timed(partial(ledger.report, by), max(5, runs // 100), warm=2)
        results.append(timed_row(f"cost report --by {by} at {rows:,} rows", samples))
    ledger.close()
    return results


def limiter_rows(folder: Path, runs: int) -> list[Row]:
    """An acquire over four buckets: ``sqlite`` with limits a lease fits in (most acquires
    served from the lease), ``sqlite`` with limits too small for one (a transaction each: they
    refill so fast that they never run dry), and the in-process ``token_bucket``."""
    big = 1e15  # never runs dry during the benchmark
    rates = [
        Rate("global/requests", big, 60),
        Rate("global/tokens", big, 3600),
        Rate("provider:openai/requests", big, 60),
        Rate("provider:openai/tokens", big, 3600),
    ]
    small = [Rate(rate.key, 10 if "requests" in rate.key else 1000, 1e-6) for rate in rates]
    amounts = admission("openai", 400)
    shared = SQLiteLimiter(folder / "limits.sqlite", rates)
    exact = SQLiteLimiter(folder / "exact.sqlite", small)
    local = TokenBucketLimiter(rates)
    rows = [
        timed_row(
            "limiter acquire, 4 buckets, sqlite (shared)",
            timed(partial(shared.acquire, amounts), runs),
        ),
        timed_row(
            "  the same, limits too small for a lease (a transaction each)",
            timed(partial(exact.acquire, amounts), runs),
        ),
        timed_row(
            "limiter acquire, 4 buckets, token_bucket (in-process)",
            timed(partial(local.acquire, amounts), runs),
        ),
    ]
    shared.close()
    exact.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1000, 1_000_000])
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qf-ledger-bench-") as tmp:
        results: list[Row] = []
        for rows in args.rows:
            results += ledger_rows(Path(tmp), rows, args.runs)
        results += limiter_rows(Path(tmp), args.runs)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
