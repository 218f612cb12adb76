"""The cost ledger: what it records, how it reports, and how budgets hold."""

from __future__ import annotations

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

from questfoundry.errors import ConfigError, CostLimitExceededError, LedgerError
from questfoundry.ledger import Budget, Entry, Ledger
from questfoundry.testing.clock import FakeClock

NEW_YORK = ZoneInfo("America/New_York")


def wall(text: str, zone: ZoneInfo = NEW_YORK) -> float:
    """Epoch seconds of a local time such as ``2026-01-31 23:59``."""
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


def rows_in(path: Path, status: str | None = None) -> int:
    """Rows the database holds, read through a connection of its own (not the ledger's)."""
    with sqlite3.connect(path) as conn:
        if status is None:
            return int(conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0])
        query = "SELECT COUNT(*) FROM calls WHERE status = ?"
        return int(conn.execute(query, (status,)).fetchone()[0])


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


def spend(ledger: Ledger, provider: str, cost: str | None, model: str = "m", **fields: Any) -> None:
    amount = None if cost is None else Decimal(cost)
    ledger.record(Entry(provider=provider, model=model, cost=amount, **fields))


# ----------------------------------------------------------------------------- storage


def test_opening_creates_the_folder_and_a_versioned_wal_database(path: Path) -> None:
    Ledger(path).close()

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1


def test_ledger_columns_are_the_documented_ones_and_none_can_hold_a_secret(path: Path) -> None:
    Ledger(path).close()

    with sqlite3.connect(path) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(calls)")}
    assert columns == {
        "id", "time", "day", "run_id", "role", "provider", "model", "input_tokens",
        "output_tokens", "cached_input_tokens", "cost", "cache_hit", "saved", "latency",
        "retries", "waited", "status",
    }  # fmt: skip


def test_money_is_stored_exactly(ledger: Ledger) -> None:
    for _ in range(3):
        spend(ledger, "openai", "0.1")
    spend(ledger, "openai", "0.000000000001")

    assert ledger.spent("openai", "day") == Decimal("0.300000000001")
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
        spend(ledger, "openai", "1", time=wall("2026-03-01 23:30"))  # 04:30 UTC on March 2
        spend(ledger, "openai", "2", time=wall("2026-03-02 10:00"))
        spend(ledger, "openai", "4", time=wall("2026-03-03 10:00"))

        by_day = {row.key: row.cost for row in ledger.report("day")}
        since = {row.key: row.cost for row in ledger.report("day", since=date(2026, 3, 2))}

    assert by_day == {"2026-03-01": 1, "2026-03-02": 2, "2026-03-03": 4}
    assert since == {"2026-03-02": 2, "2026-03-03": 4}


def test_cache_hits_count_in_hit_rate_and_saved_but_cost_nothing(ledger: Ledger) -> None:
    spend(ledger, "openai", "0.20", input_tokens=100, output_tokens=10)
    hit = Entry("openai", "m", input_tokens=100, output_tokens=10, saved=Decimal("0.20"))
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


def test_report_leaves_out_reservations_of_calls_in_flight(ledger: Ledger) -> None:
    ledger.reserve("openai", Decimal("1"), [Budget(None, "day", Decimal("10"))])

    assert ledger.report() == []


def test_report_of_an_unknown_grouping_is_refused(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="cannot report by"):
        ledger.report("weekday")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- budgets


def test_reserve_refuses_a_call_that_would_exceed_the_budget(ledger: Ledger) -> None:
    budgets = [Budget("openai", "day", Decimal("5.00"))]
    spend(ledger, "openai", "4.999")

    with pytest.raises(CostLimitExceededError) as raised:
        ledger.reserve("openai", Decimal("0.02"), budgets)

    assert str(raised.value) == (
        "daily budget for openai: $4.9990 spent of $5.00; this call may cost $0.02"
    )
    assert rows_in(ledger.path, "reserved") == 0


def test_reserve_admits_a_call_that_reaches_the_limit_exactly(ledger: Ledger) -> None:
    budgets = [Budget(None, "day", Decimal("1"))]
    spend(ledger, "openai", "0.75")

    assert ledger.reserve("openai", Decimal("0.25"), budgets) is not None
    with pytest.raises(CostLimitExceededError, match="daily budget for all providers"):
        ledger.reserve("openai", Decimal("0.000001"), budgets)


def test_a_reservation_counts_against_the_budget_until_released(ledger: Ledger) -> None:
    budgets = [Budget("openai", "day", Decimal("1"))]
    held = ledger.reserve("openai", Decimal("0.6"), budgets)

    assert ledger.spent("openai", "day") == Decimal("0.6")
    with pytest.raises(CostLimitExceededError):
        ledger.reserve("openai", Decimal("0.6"), budgets)

    ledger.release(held)

    assert ledger.spent("openai", "day") == 0
    assert ledger.reserve("openai", Decimal("0.6"), budgets) is not None


def test_recording_a_call_replaces_its_reservation_with_the_real_cost(ledger: Ledger) -> None:
    budgets = [Budget("openai", "day", Decimal("1"))]
    held = ledger.reserve("openai", Decimal("0.6"), budgets)

    ledger.record(Entry("openai", "m", cost=Decimal("0.1")), held)

    assert ledger.spent("openai", "day") == Decimal("0.1")
    assert rows_in(ledger.path, "reserved") == 0
    assert ledger.reserve("openai", Decimal("0.9"), budgets) is not None


def test_without_budgets_reserve_writes_nothing(ledger: Ledger) -> None:
    assert ledger.reserve("openai", Decimal("100"), []) is None
    assert ledger.reserve("openai", Decimal("100"), [Budget("gemini", "day", Decimal(1))]) is None
    ledger.release(None)

    assert rows_in(ledger.path) == 0


def test_a_provider_budget_counts_only_that_provider_and_a_global_one_counts_all(
    ledger: Ledger,
) -> None:
    spend(ledger, "gemini", "0.9")
    budgets = [Budget("openai", "day", Decimal("1")), Budget(None, "day", Decimal("1.5"))]

    assert ledger.reserve("openai", Decimal("0.6"), budgets) is not None
    with pytest.raises(CostLimitExceededError, match="daily budget for all providers"):
        ledger.reserve("openai", Decimal("0.1"), budgets)
    assert ledger.spent("openai", "day") == Decimal("0.6")
    assert ledger.spent(None, "day") == Decimal("1.5")


def test_cache_hits_take_nothing_from_a_budget(ledger: Ledger) -> None:
    ledger.record_hit(Entry("openai", "m", saved=Decimal("3")))
    ledger.record(Entry("openai", "m", cost=Decimal("3"), cache_hit=True))
    ledger.flush()

    assert ledger.spent("openai", "day") == 0
    assert ledger.reserve("openai", Decimal("1"), [Budget(None, "day", Decimal("1"))]) is not None


def test_the_daily_budget_resets_at_local_midnight(path: Path) -> None:
    clock = FakeClock(wall=wall("2026-03-10 23:59"))
    budgets = [Budget("openai", "day", Decimal("1"))]
    with Ledger(path, clock=clock, timezone="America/New_York") as ledger:
        spend(ledger, "openai", "1")
        with pytest.raises(CostLimitExceededError):
            ledger.reserve("openai", Decimal("0.01"), budgets)

        clock.advance(120)  # 00:01 local on March 11, still March 11 04:01 UTC

        assert ledger.spent("openai", "day") == 0
        assert ledger.reserve("openai", Decimal("0.01"), budgets) is not None


def test_the_day_is_the_configured_time_zones_not_utc(path: Path) -> None:
    clock = FakeClock(wall=wall("2026-03-10 23:59"))  # March 11 03:59 UTC
    with Ledger(path, clock=clock, timezone="UTC") as ledger:
        spend(ledger, "openai", "1")
        clock.advance(120)

        assert ledger.spent("openai", "day") == Decimal("1")


def test_the_monthly_budget_resets_on_the_first_of_the_local_month(path: Path) -> None:
    clock = FakeClock(wall=wall("2026-01-31 23:59"))
    budgets = [Budget(None, "month", Decimal("10"))]
    with Ledger(path, clock=clock, timezone="America/New_York") as ledger:
        spend(ledger, "openai", "6", time=wall("2026-01-02 12:00"))
        spend(ledger, "openai", "4")
        with pytest.raises(CostLimitExceededError, match=r"monthly budget .* \$10\.0000 spent"):
            ledger.reserve("openai", Decimal("0.01"), budgets)

        clock.advance(120)

        assert ledger.spent(None, "month") == 0
        assert ledger.reserve("openai", Decimal("9.99"), budgets) is not None


def test_reopening_the_ledger_keeps_what_was_spent(path: Path, fake_clock: FakeClock) -> None:
    budgets = [Budget("openai", "month", Decimal("2"))]
    with Ledger(path, clock=fake_clock) as first:
        held = first.reserve("openai", Decimal("1"), budgets)
        first.record(Entry("openai", "m", cost=Decimal("1.5")), held)

    with Ledger(path, clock=fake_clock) as second:
        assert second.spent("openai", "month") == Decimal("1.5")
        with pytest.raises(CostLimitExceededError):
            second.reserve("openai", Decimal("0.6"), budgets)


def test_a_reservation_left_by_a_crash_stops_counting_after_an_hour(
    ledger: Ledger, fake_clock: FakeClock
) -> None:
    budgets = [Budget("openai", "day", Decimal("1"))]
    ledger.reserve("openai", Decimal("1"), budgets)  # never recorded nor released
    fake_clock.advance(3599)
    assert ledger.spent("openai", "day") == Decimal("1")

    fake_clock.advance(2)

    assert ledger.spent("openai", "day") == 0
    assert ledger.reserve("openai", Decimal("1"), budgets) is not None


# ----------------------------------------------------------------------------- buffered hits


def test_a_cache_hit_waits_in_memory_until_flushed(ledger: Ledger) -> None:
    ledger.record_hit(Entry("openai", "m", saved=Decimal("1")))

    assert rows_in(ledger.path) == 0

    ledger.flush()

    assert rows_in(ledger.path, "hit") == 1


def test_closing_writes_queued_cache_hits(path: Path, fake_clock: FakeClock) -> None:
    ledger = Ledger(path, clock=fake_clock, flush_interval=3600)
    for _ in range(3):
        ledger.record_hit(Entry("openai", "m"))

    ledger.close()

    assert rows_in(path, "hit") == 3


def test_a_report_includes_queued_cache_hits(ledger: Ledger) -> None:
    ledger.record_hit(Entry("openai", "m", saved=Decimal("1")))

    assert ledger.report()[0].hits == 1


def test_the_background_writer_flushes_hits_within_the_interval(path: Path) -> None:
    with Ledger(path, flush_interval=0.02) as ledger:
        ledger.record_hit(Entry("openai", "m"))

        assert poll(lambda: rows_in(path, "hit") == 1)


def test_the_background_writer_keeps_hits_it_could_not_write_and_retries(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    Ledger(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with Ledger(path, flush_interval=0.02, busy_timeout=0.01) as ledger:
            ledger.record_hit(Entry("openai", "m"))

            assert poll(lambda: "not written to the ledger yet" in caplog.text)
            holder.execute("ROLLBACK")

            assert poll(lambda: rows_in(path, "hit") == 1)
    finally:
        holder.close()


def test_a_hit_keeps_the_time_it_happened_not_the_time_it_was_written(
    ledger: Ledger, fake_clock: FakeClock
) -> None:
    ledger.record_hit(Entry("openai", "m"))
    fake_clock.advance(86_400 * 3)
    ledger.flush()

    (row,) = ledger.report("day")

    assert row.key == "2026-01-01"


def test_a_malformed_hit_is_dropped_without_losing_the_others(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    ledger.record_hit(Entry("openai", "m"))
    ledger.record_hit(Entry("openai", "broken", saved=Decimal("NaN")))
    ledger.record_hit(Entry("openai", "m"))

    ledger.flush()

    assert rows_in(ledger.path, "hit") == 2
    assert "openai/broken not recorded" in caplog.text


def test_recording_a_hit_on_a_closed_ledger_is_an_error(path: Path) -> None:
    ledger = Ledger(path)
    ledger.close()
    ledger.close()

    with pytest.raises(LedgerError, match="closed"):
        ledger.record_hit(Entry("openai", "m"))
    with pytest.raises(LedgerError, match="closed"):
        ledger.spent(None, "day")


def test_threads_share_one_ledger_without_losing_rows(ledger: Ledger) -> None:
    budgets = [Budget(None, "day", Decimal("1000"))]

    def work() -> None:
        for _ in range(50):
            held = ledger.reserve("openai", Decimal("0.01"), budgets)
            ledger.record(Entry("openai", "m", cost=Decimal("0.01")), held)
            ledger.record_hit(Entry("openai", "m"))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    (row,) = ledger.report()
    assert (row.calls, row.hits, row.cost) == (800, 400, Decimal(4))


async def test_the_ledger_is_usable_from_asyncio_code(ledger: Ledger) -> None:
    import asyncio

    budgets = [Budget(None, "day", Decimal("1"))]
    held = await asyncio.to_thread(ledger.reserve, "openai", Decimal("0.5"), budgets)
    ledger.record(Entry("openai", "m", cost=Decimal("0.5")), held)

    assert ledger.spent(None, "day") == Decimal("0.5")


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
            with pytest.raises(LedgerError, match="locked"):
                spend(ledger, "openai", "1")
            holder.execute("ROLLBACK")
            spend(ledger, "openai", "1")  # the failed write left no transaction open
            assert ledger.spent("openai", "day") == 1
    finally:
        holder.close()


def test_an_unknown_time_zone_is_a_config_error(path: Path) -> None:
    with pytest.raises(ConfigError, match=r"rate_limiting\.timezone"):
        Ledger(path, timezone="Mars/Olympus_Mons")
