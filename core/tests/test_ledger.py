"""The cost ledger: what it records, how it reports, its running totals, migration and journal.

How budgets hold is the budget keeper's suite (test_budgets.py)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from questfoundry.contracts.errors import ConfigError, LedgerError
from questfoundry.contracts.records import Budget, Reply, Usage
from questfoundry.kit import from_pico
from questfoundry.ledger import Ledger, ReportRow, journal
from questfoundry.ledger.keeper import SQLiteBudgetKeeper
from questfoundry.testing.clock import FakeClock
from questfoundry.testing.ledgers import SCHEMA_1

NEW_YORK = ZoneInfo("America/New_York")


def wall(text: str, zone: ZoneInfo = NEW_YORK) -> float:
    """Epoch seconds of a local time such as ``2026-01-31 23:59``."""
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


def at(clock: FakeClock, text: str, zone: ZoneInfo = NEW_YORK) -> None:
    """Set the clock's wall time to a local time such as ``2026-03-01 23:30``."""
    clock.wall_offset = wall(text, zone) - clock.now


def rows_in(path: Path, status: str | None = None) -> int:
    """Calls the database holds (a paid call's row, or one count of the ``hits`` table), read
    through a connection of its own (not the ledger's)."""
    paid = "SELECT COUNT(*) FROM calls" + ("" if status is None else " WHERE status = ?")
    counted = "SELECT COALESCE(SUM(hits), 0) FROM hits"
    with sqlite3.connect(path) as conn:
        hits = int(conn.execute(counted).fetchone()[0])
        if status == "hit":
            return hits
        args = () if status is None else (status,)
        return int(conn.execute(paid, args).fetchone()[0]) + (hits if status is None else 0)


def totals(path: Path) -> dict[tuple[str, str], Decimal]:
    """The running totals as stored: (scope, day or month) → dollars."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT scope, span, spent FROM totals").fetchall()
    return {(scope, span): from_pico(spent) for scope, span, spent in rows}


_ROW_KEYS = {
    "provider": "provider",
    "model": "provider || '/' || model",
    "role": "COALESCE(role, '(none)')",
    "day": "day",
}


_HIT_KEYS = {**_ROW_KEYS, "role": "COALESCE(NULLIF(role, ''), '(none)')"}


def from_rows(path: Path, by: str) -> list[ReportRow]:
    """The cost report summed over every row (and every count of hits, where the schema has
    them), as schema 1 computed it: the rollup's oracle."""
    calls = f"""
        SELECT {_ROW_KEYS[by]} AS key, 1 AS calls, status = 'hit' AS hits,
               CASE WHEN status = 'spent' THEN input_tokens ELSE 0 END AS input_tokens,
               CASE WHEN status = 'spent' THEN output_tokens ELSE 0 END AS output_tokens,
               COALESCE(cost, 0) AS cost, COALESCE(saved, 0) AS saved,
               status = 'spent' AND cost IS NULL AS unknown
        FROM calls WHERE status IN ('spent', 'hit')
    """
    hits = f"SELECT {_HIT_KEYS[by]}, hits, hits, 0, 0, 0, saved, 0 FROM hits"
    with sqlite3.connect(path) as conn:
        counted = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'hits'").fetchone()
        rows = conn.execute(f"""
            SELECT key, SUM(calls), SUM(hits), SUM(input_tokens), SUM(output_tokens), SUM(cost),
                   SUM(saved), SUM(unknown)
            FROM ({calls} {"UNION ALL " + hits if counted else ""}) GROUP BY key ORDER BY key
        """).fetchall()
    return [
        ReportRow(key, calls, hits, hits / calls, tokens_in, tokens_out, from_pico(cost),
                  from_pico(saved), unknown)
        for key, calls, hits, tokens_in, tokens_out, cost, saved, unknown in rows
    ]  # fmt: skip


def poll(condition: Callable[[], bool], seconds: float = 10) -> bool:
    """Wait for another thread to make ``condition`` true (polling, not waiting for time)."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)
    return condition()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / ".questfoundry" / "ledger.sqlite"


@pytest.fixture
def ledger(path: Path, fake_clock: FakeClock) -> Iterator[Ledger]:
    with Ledger(path, clock=fake_clock, flush_interval=3600) as opened:
        yield opened


def reply(
    provider: str = "openai",
    cost: str | None = None,
    model: str = "m",
    input_tokens: int = 0,
    output_tokens: int = 0,
    **fields: Any,
) -> Reply:
    amount = None if cost is None else Decimal(cost)
    return Reply(provider, model, usage=Usage(input_tokens, output_tokens), cost=amount, **fields)


def spend(ledger: Ledger, provider: str, cost: str | None, model: str = "m", **fields: Any) -> None:
    ledger.record(reply(provider, cost, model, **fields))


def spent_today(ledger: Ledger, scope: str | None = None) -> Decimal:
    """What the running totals say was paid today, as budgets read it (rows written first)."""
    ledger.flush()
    with ledger.file.reading() as conn:
        return from_pico(ledger.file.spent(conn, scope, "day", ledger.clock.time()))


# ----------------------------------------------------------------------------- storage


def test_opening_creates_the_folder_and_a_versioned_wal_database(path: Path) -> None:
    Ledger(path).close()

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 4


def test_ledger_columns_are_the_documented_ones_and_none_can_hold_a_secret(path: Path) -> None:
    Ledger(path).close()

    with sqlite3.connect(path) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(calls)")}
        counted = {row[1] for row in conn.execute("PRAGMA table_info(hits)")}
    assert columns == {
        "id", "time", "day", "run_id", "role", "provider", "model", "input_tokens",
        "output_tokens", "cached_input_tokens", "cost", "cache_hit", "saved", "latency",
        "retries", "waited", "status", "unconfirmed",
    }  # fmt: skip
    assert counted == {
        "day", "provider", "model", "role", "run_id", "hits", "saved", "first", "last"
    }  # fmt: skip


def test_hits_are_counted_one_row_per_day_provider_model_role_and_run(
    ledger: Ledger, fake_clock: FakeClock
) -> None:
    for _ in range(500):
        ledger.record_hit(reply(saved=Decimal("0.001"), role="plotwright", run_id="a"))
    ledger.record_hit(reply(saved=Decimal("0.002"), role="plotwright", run_id="b"))
    first = fake_clock.time()
    fake_clock.advance(60)
    ledger.record_hit(reply(saved=Decimal("0.001"), role="plotwright", run_id="a"))
    ledger.flush()
    ledger.record_hit(reply(saved=None, role="plotwright", run_id="a"))  # a later batch adds up
    ledger.flush()

    with sqlite3.connect(ledger.path) as conn:
        rows = conn.execute(
            "SELECT run_id, role, hits, saved, first, last FROM hits ORDER BY run_id"
        ).fetchall()
    assert rows == [
        ("a", "plotwright", 502, 501 * 10**9, first, first + 60),
        ("b", "plotwright", 1, 2 * 10**9, first, first),
    ]
    (row,) = ledger.report("role")
    assert (row.calls, row.hits, row.saved) == (503, 503, Decimal("0.503"))


def test_money_is_stored_exactly(ledger: Ledger) -> None:
    for _ in range(3):
        spend(ledger, "openai", "0.1")
    spend(ledger, "openai", "0.000000000001")

    assert spent_today(ledger, "openai") == Decimal("0.300000000001")
    assert ledger.report()[0].cost == Decimal("0.300000000001")


# ----------------------------------------------------------------------------- reports


def test_report_totals_calls_tokens_and_cost_per_provider(ledger: Ledger) -> None:
    spend(ledger, "openai", "0.25", input_tokens=100, output_tokens=10)
    spend(ledger, "openai", "0.50", input_tokens=200, output_tokens=20)
    spend(ledger, "gemini", "1.00", input_tokens=5, output_tokens=1)

    rows = {row.key: row for row in ledger.report("provider")}

    assert set(rows) == {"openai", "gemini"}
    assert rows["openai"].calls == 2
    assert rows["openai"].input_tokens == 300
    assert rows["openai"].output_tokens == 30
    assert rows["openai"].cost == Decimal("0.75")
    assert rows["gemini"].cost == Decimal("1")


def test_report_by_model_keys_rows_by_provider_and_model(ledger: Ledger) -> None:
    spend(ledger, "openai", "0.1", model="gpt-4o")
    spend(ledger, "openai", "0.2", model="gpt-4o-mini")
    spend(ledger, "ollama", "0", model="gpt-4o")

    keys = {row.key: row.cost for row in ledger.report("model")}

    assert keys == {
        "openai/gpt-4o": Decimal("0.1"),
        "openai/gpt-4o-mini": Decimal("0.2"),
        "ollama/gpt-4o": Decimal(0),
    }


def test_report_by_role_groups_calls_without_a_role_apart(ledger: Ledger) -> None:
    spend(ledger, "openai", "0.1", role="plotwright")
    spend(ledger, "openai", "0.1", role="plotwright")
    spend(ledger, "openai", "0.3")

    calls = {row.key: row.calls for row in ledger.report("role")}

    assert calls == {"plotwright": 2, "(none)": 1}


def test_report_by_day_uses_local_dates_and_since_drops_earlier_days(
    path: Path, fake_clock: FakeClock
) -> None:
    with Ledger(path, clock=fake_clock, timezone="America/New_York") as ledger:
        at(fake_clock, "2026-03-01 23:30")  # 04:30 UTC on March 2
        spend(ledger, "openai", "1")
        at(fake_clock, "2026-03-02 10:00")
        spend(ledger, "openai", "2")
        at(fake_clock, "2026-03-03 10:00")
        spend(ledger, "openai", "4")

        by_day = {row.key: row.cost for row in ledger.report("day")}
        since = {row.key: row.cost for row in ledger.report("day", since=date(2026, 3, 2))}

    assert by_day == {"2026-03-01": 1, "2026-03-02": 2, "2026-03-03": 4}
    assert since == {"2026-03-02": 2, "2026-03-03": 4}


def test_cache_hits_count_in_hit_rate_and_saved_but_cost_nothing(ledger: Ledger) -> None:
    spend(ledger, "openai", "0.20", input_tokens=100, output_tokens=10)
    hit = reply(input_tokens=100, output_tokens=10, saved=Decimal("0.20"), cache_hit=True)
    ledger.record_hit(hit)
    ledger.record_hit(hit)
    spend(ledger, "openai", "0.20", input_tokens=100, output_tokens=10)

    (row,) = ledger.report()

    assert (row.calls, row.hits, row.hit_rate) == (4, 2, 0.5)
    assert row.saved == Decimal("0.40")
    assert row.cost == Decimal("0.40")
    assert (row.input_tokens, row.output_tokens) == (200, 20)  # hits sent nothing
    assert row.unknown_cost_calls == 0


def test_calls_of_unknown_price_are_counted_apart_from_the_cost(ledger: Ledger) -> None:
    spend(ledger, "local", None)
    spend(ledger, "local", None)
    spend(ledger, "local", "0.5")

    (row,) = ledger.report()

    assert row.unknown_cost_calls == 2
    assert row.cost == Decimal("0.5")
    assert row.calls == 3


def test_report_leaves_out_holds_of_calls_in_flight(ledger: Ledger) -> None:
    SQLiteBudgetKeeper(ledger.file, [Budget(None, "day", Decimal(10))]).reserve(
        "openai", Decimal(1)
    )

    assert ledger.report() == []


def test_report_reads_the_rollup_and_agrees_with_the_rows(
    ledger: Ledger, fake_clock: FakeClock
) -> None:
    for number in range(30):
        role = ("plotwright", "gatekeeper", None)[number % 3]
        cost = None if number % 7 == 0 else f"0.0{number % 5}"
        model = ("a", "b")[number % 2]
        spend(ledger, ("openai", "gemini")[number % 2], cost, model, role=role, input_tokens=number)
        if number % 4 == 0:
            ledger.record_hit(reply("openai", model=model, role=role, saved=Decimal("0.5")))
        fake_clock.advance(3 * 3600)
    ledger.flush()

    for by in ("provider", "model", "role", "day"):
        assert ledger.report(by) == from_rows(ledger.path, by)


def test_report_of_an_unknown_grouping_is_refused(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="cannot report by"):
        ledger.report("weekday")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- running totals


def test_totals_count_paid_calls_per_provider_and_for_all_by_local_day_and_month(
    path: Path, fake_clock: FakeClock
) -> None:
    with Ledger(path, clock=fake_clock, timezone="America/New_York") as ledger:
        at(fake_clock, "2026-03-01 12:00")
        spend(ledger, "openai", "1")
        spend(ledger, "gemini", "2")
        spend(ledger, "gemini", None)  # unknown price: nothing to count
        ledger.record(reply("openai", cost="8", cache_hit=True))  # a hit costs nothing
        at(fake_clock, "2026-03-01 23:30")  # March 2 in UTC, still March 1 here
        spend(ledger, "openai", "4")
        at(fake_clock, "2026-03-02 10:00")
        spend(ledger, "openai", "16")

    assert totals(path) == {
        ("openai", "2026-03-01"): 5,
        ("openai", "2026-03-02"): 16,
        ("openai", "2026-03"): 21,
        ("gemini", "2026-03-01"): 2,
        ("gemini", "2026-03"): 2,
        ("*", "2026-03-01"): 7,
        ("*", "2026-03-02"): 16,
        ("*", "2026-03"): 23,
    }


def test_opening_with_another_time_zone_recomputes_the_totals_from_the_rows(
    path: Path, fake_clock: FakeClock
) -> None:
    with Ledger(path, clock=fake_clock, timezone="America/New_York") as ledger:
        at(fake_clock, "2026-03-31 23:30")  # 03:30 UTC on April 1
        spend(ledger, "openai", "1")

    with Ledger(path, clock=fake_clock, timezone="UTC") as ledger:
        assert spent_today(ledger) == 1  # April 1 in UTC

    assert totals(path) == {
        ("openai", "2026-04-01"): 1,
        ("openai", "2026-04"): 1,
        ("*", "2026-04-01"): 1,
        ("*", "2026-04"): 1,
    }


# ----------------------------------------------------------------------------- migration


def schema_1_ledger(path: Path, now: float) -> None:
    """A ledger as QuestFoundry's schema 1 wrote it: spent calls, hits and a live reservation."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert (
        datetime.fromtimestamp(now - 60, ZoneInfo("UTC")).day
        == datetime.fromtimestamp(now, ZoneInfo("UTC")).day
    )
    day = datetime.fromtimestamp(now, ZoneInfo("UTC")).date().isoformat()
    earlier = (datetime.fromtimestamp(now - 40 * 86_400, ZoneInfo("UTC"))).date().isoformat()
    insert = """INSERT INTO calls (time, day, role, provider, model, input_tokens, output_tokens,
                cost, cache_hit, saved, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
    rows = [
        (
            now - 40 * 86_400,
            earlier,
            "plotwright",
            "openai",
            "a",
            10,
            1,
            2 * 10**12,
            0,
            None,
            "spent",
        ),
        (now - 60, day, "plotwright", "openai", "a", 100, 10, 25 * 10**10, 0, None, "spent"),
        (now - 50, day, None, "gemini", "b", 5, 1, None, 0, None, "spent"),
        (now - 40, day, None, "openai", "a", 100, 10, 0, 1, 25 * 10**10, "hit"),
        (now - 30, day, None, "openai", "", 0, 0, 10**12, 0, None, "reserved"),
    ]
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA_1)
        conn.executemany(insert, rows)


def test_a_schema_1_ledger_is_migrated_in_place_keeping_every_call(
    path: Path, fake_clock: FakeClock
) -> None:
    fake_clock.advance(12 * 3600)
    schema_1_ledger(path, fake_clock.time())
    before = {by: from_rows(path, by) for by in ("provider", "model", "role", "day")}

    with Ledger(path, clock=fake_clock) as ledger:
        assert {by: ledger.report(by) for by in before} == before  # type: ignore[arg-type]
        assert spent_today(ledger) == Decimal("0.25")

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 4
        assert conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 3  # the paid ones
        assert conn.execute("SELECT hits, saved FROM hits").fetchall() == [(1, 25 * 10**10)]
        indexes = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
    assert not indexes & {"calls_day", "calls_spend", "calls_provider_spend"}
    assert totals(path)[("openai", fake_clock_month(fake_clock))] == Decimal("0.25")


def test_a_migrated_reservation_still_holds_until_it_goes_stale(
    path: Path, fake_clock: FakeClock
) -> None:
    fake_clock.advance(12 * 3600)
    schema_1_ledger(path, fake_clock.time())
    with Ledger(path, clock=fake_clock) as ledger:
        keeper = SQLiteBudgetKeeper(ledger.file, [Budget(None, "day", Decimal(2))])
        (level,) = keeper.levels()
        assert level.spent == Decimal("1.25")  # 0.25 paid, 1 held by a call of schema 1's days

        fake_clock.advance(3600)

        (level,) = keeper.levels()
        assert level.spent == Decimal("0.25")


def fake_clock_month(clock: FakeClock) -> str:
    return datetime.fromtimestamp(clock.time(), ZoneInfo("UTC")).strftime("%Y-%m")


# ----------------------------------------------------------------------------- the journal


def journalled(path: Path) -> list[list[Any]]:
    """Every line of every journal beside the ledger at ``path``."""
    lines = []
    for file in sorted(journal.folder_of(path).glob("*.jsonl")):
        lines += [json.loads(line) for line in file.read_bytes().splitlines()]
    return lines


@pytest.fixture
def write_lock(path: Path) -> Iterator[sqlite3.Connection]:
    """Another process's connection holding the ledger's write lock until it rolls back."""
    Ledger(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    yield holder
    if holder.in_transaction:
        holder.execute("ROLLBACK")
    holder.close()


def test_a_paid_call_is_in_the_journal_when_record_returns_and_in_sqlite_after_a_flush(
    ledger: Ledger,
) -> None:
    ledger.record(reply(cost="0.5", role="plotwright"))

    assert rows_in(ledger.path) == 0  # off the caller's path
    (line,) = journalled(ledger.path)
    assert line[0] == "r" and line[3:][9] == 5 * 10**11  # its row, cost in pico-dollars

    ledger.flush()

    assert rows_in(ledger.path, "spent") == 1


def test_an_intent_is_written_before_the_call_and_settled_by_its_row(ledger: Ledger) -> None:
    intent = ledger.intend("openai", "m", Usage(100, 50), Decimal("0.3"), role="plotwright")

    assert journalled(ledger.path) == [
        ["i", intent, ledger.clock.time(), "openai", "m", "plotwright", "", 100, 50, 3 * 10**11,
         None],
    ]  # fmt: skip
    ledger.record(reply(cost="0.1"), intent=intent)
    assert [line[:2] for line in journalled(ledger.path)] == [["i", intent], ["r", intent]]


def test_a_journal_whose_ledger_stopped_is_settled_at_the_next_open(
    path: Path, fake_clock: FakeClock
) -> None:
    ledger = Ledger(path, clock=fake_clock, flush_interval=3600)
    answered = ledger.intend("openai", "m", Usage(100, 50), Decimal("0.3"))
    ledger.record(reply(cost="0.1", input_tokens=90, output_tokens=10), intent=answered)
    failed = ledger.intend("openai", "m", Usage(100, 50), Decimal("0.3"))
    ledger.void(failed)
    ledger.intend("openai", "m", Usage(100, 50), Decimal("0.3"), role="scene_smith")
    ledger.record(reply(cost="0.2"))
    ledger.journal.close(remove=False)  # as a kill -9 leaves it: files there, lock released

    with Ledger(path, clock=fake_clock) as reopened:
        by_role = {row.key: row for row in reopened.report("role")}
        assert spent_today(reopened) == Decimal("0.6")

    assert by_role["(none)"].calls == 2 and by_role["(none)"].cost == Decimal("0.3")
    unanswered = by_role["scene_smith"]
    assert (unanswered.calls, unanswered.unconfirmed, unanswered.cost) == (1, 1, Decimal("0.3"))
    assert (unanswered.input_tokens, unanswered.output_tokens) == (100, 50)  # the estimate
    assert journal.names(journal.folder_of(path)) == set()


def test_a_running_ledgers_journal_is_left_to_it(path: Path, fake_clock: FakeClock) -> None:
    with Ledger(path, clock=fake_clock, flush_interval=3600) as running:
        running.intend("openai", "m", Usage(100, 50), Decimal("0.3"))

        with Ledger(path, clock=fake_clock) as other:
            assert other.report() == []
        assert journal.names(journal.folder_of(path)) == {running.journal.name}


def test_a_journal_that_outlives_its_settlement_is_not_written_twice(
    path: Path, fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Ledger(path, clock=fake_clock, flush_interval=3600) as ledger:
        ledger.record(reply(cost="0.5"))
        ledger.intend("openai", "m", Usage(1, 1), Decimal("0.25"))
        ledger.journal.close(remove=False)
    with monkeypatch.context() as crash:  # the settling process dies before removing the files
        crash.setattr(journal.Leftover, "remove", lambda self: None)
        Ledger(path, clock=fake_clock).close()
    assert journal.names(journal.folder_of(path)) != set()

    with Ledger(path, clock=fake_clock) as reopened:
        assert [(row.calls, row.cost) for row in reopened.report()] == [(2, Decimal("0.75"))]
    assert rows_in(path) == 2
    assert journal.names(journal.folder_of(path)) == set()


def test_rows_written_while_a_call_is_in_flight_are_not_written_again(
    path: Path, fake_clock: FakeClock
) -> None:
    ledger = Ledger(path, clock=fake_clock, flush_interval=3600)
    ledger.intend("openai", "m", Usage(1, 1), Decimal("0.25"))  # never answered
    for _ in range(3):
        ledger.record(reply(cost="0.5"))
    ledger.flush()  # rows 1-3 written, call 0 still open
    ledger.journal.close(remove=False)

    with Ledger(path, clock=fake_clock) as reopened:
        (row,) = reopened.report()
    assert (row.calls, row.unconfirmed, row.cost) == (4, 1, Decimal("1.75"))


def test_a_hold_kept_in_the_file_is_dropped_with_an_unanswered_intent(
    path: Path, fake_clock: FakeClock
) -> None:
    ledger = Ledger(path, clock=fake_clock, flush_interval=3600)
    keeper = SQLiteBudgetKeeper(ledger.file, [Budget(None, "day", Decimal(1))])
    hold = keeper.reserve("openai", Decimal("0.6"))
    ledger.intend("openai", "m", Usage(1, 1), Decimal("0.6"), hold=hold)
    ledger.journal.close(remove=False)

    with Ledger(path, clock=fake_clock) as reopened:
        (level,) = SQLiteBudgetKeeper(reopened.file, keeper.budgets).levels()
        with reopened.file.reading() as conn:
            assert conn.execute("SELECT COUNT(*) FROM holds").fetchone()[0] == 0
    assert level.spent == Decimal("0.6")  # counted once: as the unconfirmed row


def test_a_paid_call_the_ledger_cannot_write_waits_with_one_warning(
    path: Path, write_lock: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    with Ledger(path, busy_timeout=0.01, flush_interval=0.02) as ledger:
        started = time.monotonic()
        ledger.record(reply(cost="0.5", role="plotwright"))
        ledger.record(reply(cost="0.25"))
        assert time.monotonic() - started < 1  # the caller never waits for the lock

        assert poll(lambda: "not written to the ledger yet" in caplog.text)
        assert rows_in(path) == 0
        warnings = [r for r in caplog.records if r.levelname == "WARNING"]
        assert len(warnings) == 1 and "locked" in warnings[0].getMessage()
        assert "\n" not in warnings[0].getMessage()

        write_lock.execute("ROLLBACK")

        assert poll(lambda: rows_in(path, "spent") == 2)
    assert journal.names(journal.folder_of(path)) == set()


def test_a_read_only_ledger_keeps_calls_in_its_journal_and_the_next_open_writes_them(
    path: Path, fake_clock: FakeClock
) -> None:
    ledger = Ledger(path, clock=fake_clock, flush_interval=3600)
    keeper = SQLiteBudgetKeeper(ledger.file, [Budget(None, "day", Decimal(1))])
    hold = keeper.reserve("openai", Decimal("0.6"))
    with ledger.file.reading() as conn:  # what a read-only file does (root ignores file modes)
        conn.execute("PRAGMA query_only = ON")

    ledger.record(reply(cost="0.1"), hold)
    ledger.close()  # cannot write: the journal stays for the next open

    assert rows_in(path) == 0
    assert [line[0] for line in journalled(path)] == ["r"]
    with Ledger(path, clock=fake_clock) as reopened:
        assert [row.cost for row in reopened.report()] == [Decimal("0.1")]
        (level,) = SQLiteBudgetKeeper(reopened.file, keeper.budgets).levels()
        assert level.spent == Decimal("0.1")  # the hold went with the row
    assert journalled(path) == []


def test_when_the_journal_cannot_be_written_the_call_is_still_recorded(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path.parent.mkdir(parents=True)
    journal.folder_of(path).write_text("a file where the journal folder should be")
    with Ledger(path, flush_interval=3600) as ledger:
        ledger.record(reply("openai", cost="0.5", model="gpt-x"))
        ledger.record(reply("openai", cost="0.5", model="gpt-x"))
        (row,) = ledger.report()

    assert (row.calls, row.cost) == (2, Decimal(1))
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "journal" in warning and "cannot be written" in warning


# ----------------------------------------------------------------------------- buffered hits


def test_a_cache_hit_waits_in_memory_until_flushed(ledger: Ledger) -> None:
    ledger.record_hit(reply(saved=Decimal("1")))

    assert rows_in(ledger.path) == 0

    ledger.flush()

    assert rows_in(ledger.path, "hit") == 1


def test_closing_writes_queued_cache_hits(path: Path, fake_clock: FakeClock) -> None:
    ledger = Ledger(path, clock=fake_clock, flush_interval=3600)
    for _ in range(3):
        ledger.record_hit(reply())

    ledger.close()

    assert rows_in(path, "hit") == 3


def test_a_report_includes_queued_cache_hits(ledger: Ledger) -> None:
    ledger.record_hit(reply(saved=Decimal("1")))

    assert ledger.report()[0].hits == 1


def test_the_background_writer_flushes_hits_within_the_interval(path: Path) -> None:
    with Ledger(path, flush_interval=0.02) as ledger:
        ledger.record_hit(reply())

        assert poll(lambda: rows_in(path, "hit") == 1)


def test_the_background_writer_keeps_hits_it_could_not_write_and_retries(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    Ledger(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with Ledger(path, flush_interval=0.02, busy_timeout=0.01) as ledger:
            ledger.record_hit(reply())

            assert poll(lambda: "not written to the ledger yet" in caplog.text)
            holder.execute("ROLLBACK")

            assert poll(lambda: rows_in(path, "hit") == 1)
    finally:
        holder.close()


def test_a_hit_keeps_the_time_it_happened_not_the_time_it_was_written(
    ledger: Ledger, fake_clock: FakeClock
) -> None:
    ledger.record_hit(reply())
    fake_clock.advance(86_400 * 3)
    ledger.flush()

    (row,) = ledger.report("day")

    assert row.key == "2026-01-01"


def test_a_malformed_hit_is_dropped_without_losing_the_others(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    ledger.record_hit(reply())
    ledger.record_hit(reply(model="broken", saved=Decimal("NaN")))
    ledger.record_hit(reply())

    ledger.flush()

    assert rows_in(ledger.path, "hit") == 2
    assert "openai/broken not recorded" in caplog.text


def test_recording_a_hit_on_a_closed_ledger_is_an_error(path: Path) -> None:
    ledger = Ledger(path)
    ledger.close()
    ledger.close()

    with pytest.raises(LedgerError, match="closed"):
        ledger.record_hit(reply())
    with pytest.raises(LedgerError, match="closed"):
        ledger.report()


@pytest.mark.slow
def test_threads_share_one_ledger_without_losing_rows(ledger: Ledger) -> None:
    keeper = SQLiteBudgetKeeper(ledger.file, [Budget(None, "day", Decimal("1000"))])

    def work() -> None:
        for _ in range(50):
            held = keeper.reserve("openai", Decimal("0.01"))
            ledger.record(reply(cost="0.01"), held)
            ledger.record_hit(reply())

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    (row,) = ledger.report()
    assert (row.calls, row.hits, row.cost) == (800, 400, Decimal(4))
    assert spent_today(ledger) == Decimal(4)


async def test_the_ledger_is_usable_from_asyncio_code(ledger: Ledger) -> None:
    import asyncio

    keeper = SQLiteBudgetKeeper(ledger.file, [Budget(None, "day", Decimal("1"))])
    held = await asyncio.to_thread(keeper.reserve, "openai", Decimal("0.5"))
    await asyncio.to_thread(ledger.record, reply(cost="0.5"), held)

    assert spent_today(ledger) == Decimal("0.5")


# ----------------------------------------------------------------------------- errors


def test_a_folder_in_place_of_the_database_is_a_ledger_error(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="cost ledger") as raised:
        Ledger(tmp_path)

    assert "\n" not in str(raised.value)


def test_a_file_that_is_not_a_database_is_a_ledger_error(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    path.write_bytes(b"this is not sqlite at all " * 100)

    with pytest.raises(LedgerError, match="not a database"):
        Ledger(path)


def test_a_ledger_written_by_a_newer_version_is_refused(path: Path) -> None:
    Ledger(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")

    with pytest.raises(LedgerError, match="schema 99"):
        Ledger(path)


def test_a_database_locked_beyond_the_timeout_is_a_ledger_error(path: Path) -> None:
    Ledger(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with Ledger(path, busy_timeout=0.01) as ledger:
            keeper = SQLiteBudgetKeeper(ledger.file, [Budget(None, "day", Decimal(1))])
            with pytest.raises(LedgerError, match="locked"):
                keeper.reserve("openai", Decimal("0.5"))
            holder.execute("ROLLBACK")
            assert keeper.reserve("openai", Decimal("0.5")) is not None  # no transaction left open
    finally:
        holder.close()


def test_an_unknown_time_zone_is_a_config_error(path: Path) -> None:
    with pytest.raises(ConfigError, match=r"rate_limiting\.timezone"):
        Ledger(path, timezone="Mars/Olympus_Mons")


def test_a_paid_call_recorded_after_closing_is_kept_for_the_next_open(
    path: Path, fake_clock: FakeClock
) -> None:
    ledger = Ledger(path, clock=fake_clock)
    ledger.close()

    ledger.record(reply(cost="0.5"))

    assert ledger._flusher is None  # nothing left retrying on a closed ledger
    with Ledger(path, clock=fake_clock) as reopened:
        assert [row.cost for row in reopened.report()] == [Decimal("0.5")]


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "America/St_Johns", "Pacific/Chatham"])
def test_the_local_day_turns_at_local_midnight_to_the_second(path: Path, zone: str) -> None:
    midnight = datetime(2026, 3, 14, tzinfo=ZoneInfo(zone)).timestamp()
    with Ledger(path, timezone=zone) as ledger:
        days = [ledger.file.local_day(midnight + offset) for offset in (-61, -1, 0, 59, 60)]
    assert days == ["2026-03-13", "2026-03-13", "2026-03-14", "2026-03-14", "2026-03-14"]


def test_a_batch_of_hits_of_one_request_adds_up_in_the_report(path: Path) -> None:
    hit = Reply("openai", "gpt-4o", usage=Usage(10, 5), saved=Decimal("0.002"), cache_hit=True)
    with Ledger(path) as ledger:
        for _ in range(250):
            ledger.record_hit(hit)
        ledger.record(Reply("openai", "gpt-4o", usage=Usage(10, 5), cost=Decimal("0.002")))
        (row,) = ledger.report("provider")
    assert (row.calls, row.hits, row.input_tokens, row.cost, row.saved) == (
        251,
        250,
        10,
        Decimal("0.002"),
        Decimal("0.5"),
    )
