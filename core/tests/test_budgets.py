"""The SQLite budget keeper against the standard suite, and what only it promises."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from questfoundry.config import Config
from questfoundry.contracts.backends import BackendContext
from questfoundry.contracts.errors import BackendUnavailableError, CostLimitExceededError
from questfoundry.contracts.protocols import Hold
from questfoundry.contracts.records import Budget, BudgetLevel, Reply
from questfoundry.ledger import Ledger
from questfoundry.ledger.budgets import open_budgets
from questfoundry.ledger.keeper import SQLiteBudgetKeeper
from questfoundry.ledger.processes import ProcessName, is_gone, process_named, this_process
from questfoundry.testing.budget_contract import BudgetContract, Opener
from questfoundry.testing.clock import FakeClock


class TestSQLiteBudgets(BudgetContract):
    @pytest.fixture
    def budgets_opener(self) -> Opener:
        return open_budgets


# ----------------------------------------------------------------------------- sqlite only


@pytest.fixture
def ledger(tmp_path: Path, fake_clock: FakeClock) -> Iterator[Ledger]:
    with Ledger(tmp_path / "ledger.sqlite", clock=fake_clock, flush_interval=3600) as opened:
        yield opened


DAILY = [Budget(None, "day", Decimal(1))]


def hold_of(ledger: Ledger, owner: ProcessName, amount: int = 10**12) -> None:
    """A hold as another process would have written it."""
    with ledger.file.transaction() as conn:
        conn.execute(
            "INSERT INTO holds (provider, amount, time, host, pid, started)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            ("openai", amount, ledger.clock.time(), owner.host, owner.pid, owner.started),
        )


def poll_until(condition: Callable[[], bool], seconds: float = 10) -> bool:
    """Wait for another process to make ``condition`` true (polling, not waiting for time)."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)
    return condition()


def held(ledger: Ledger) -> int:
    with ledger.file.reading() as conn:
        return int(conn.execute("SELECT COUNT(*) FROM holds").fetchone()[0])


def spent(keeper: SQLiteBudgetKeeper) -> Decimal:
    (level,) = keeper.levels()
    return level.spent


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield child
    child.kill()
    child.wait()


def test_disabled_rate_limiting_means_no_keeper(ledger: Ledger, tmp_path: Path) -> None:
    config = Config(
        {"rate_limiting": {"enabled": False, "global": {"cost_per_day": 1}}}, project_dir=tmp_path
    )
    assert open_budgets(config, ledger, BackendContext(tmp_path)) is None


def test_a_hold_whose_pid_now_names_another_process_is_dropped(
    ledger: Ledger, sleeper: subprocess.Popen[bytes]
) -> None:
    me = this_process()
    hold_of(ledger, replace(me, pid=sleeper.pid))  # the sleeper runs, but did not make the hold
    keeper = SQLiteBudgetKeeper(ledger.file, DAILY)
    assert spent(keeper) == 0

    assert keeper.reserve("openai", Decimal(1)) is not None
    assert held(ledger) == 1  # the stale one was deleted, the new one kept


def test_a_hold_of_a_running_process_counts(
    ledger: Ledger, sleeper: subprocess.Popen[bytes]
) -> None:
    hold_of(ledger, process_named(sleeper.pid))
    keeper = SQLiteBudgetKeeper(ledger.file, DAILY)

    assert spent(keeper) == 1
    with pytest.raises(CostLimitExceededError):
        keeper.reserve("openai", Decimal("0.01"))


def test_a_hold_made_on_another_host_counts_until_stale_after(
    ledger: Ledger, fake_clock: FakeClock
) -> None:
    hold_of(ledger, ProcessName("another-host", os.getpid(), "boot:1"))
    keeper = SQLiteBudgetKeeper(ledger.file, DAILY)
    fake_clock.advance(ledger.file.stale_after - 1)
    assert spent(keeper) == 1

    fake_clock.advance(2)

    assert spent(keeper) == 0


def test_levels_only_read_so_a_ledger_that_cannot_be_written_still_shows_them(
    ledger: Ledger,
) -> None:
    keeper = SQLiteBudgetKeeper(ledger.file, DAILY)
    ledger.record(Reply("openai", "m", cost=Decimal("0.25")), keeper.reserve("openai", Decimal(1)))
    hold_of(ledger, ProcessName(this_process().host, 2**22 + 7, "gone"))  # a dead process's
    with ledger.file.reading() as conn:
        conn.execute("PRAGMA query_only = ON")

    assert spent(keeper) == Decimal("0.25")


def test_a_hold_kept_in_the_same_file_by_another_ledger_is_settled_once(
    ledger: Ledger, fake_clock: FakeClock
) -> None:
    with Ledger(ledger.path, clock=fake_clock) as other:
        keeper = SQLiteBudgetKeeper(other.file, DAILY)
        hold = keeper.reserve("openai", Decimal("0.5"))

        ledger.record(Reply("openai", "m", cost=Decimal("0.2")), hold)

        assert spent(keeper) == Decimal("0.2")
        assert held(ledger) == 0


class Outside:
    """A keeper kept outside the ledger (as a Redis one will be): records what it is told."""

    capabilities: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.settled: list[tuple[Hold, Decimal | None]] = []

    def reserve(self, provider: str, estimate: Decimal) -> Hold:
        return Hold("outside-1", provider, estimate, self)

    def settle(self, hold: Hold, cost: Decimal | None) -> None:
        self.settled.append((hold, cost))

    def release(self, hold: Hold | None) -> None: ...

    def levels(self) -> list[BudgetLevel]:
        return []

    def close(self) -> None: ...


def test_recording_a_call_held_by_a_keeper_outside_the_ledger_settles_it_there(
    ledger: Ledger,
) -> None:
    outside = Outside()
    hold = outside.reserve("openai", Decimal(1))

    ledger.record(Reply("openai", "m", cost=Decimal("0.3")), hold)

    assert outside.settled == [(hold, Decimal("0.3"))]
    assert [row.cost for row in ledger.report()] == [Decimal("0.3")]


def test_a_keeper_outside_the_ledger_is_settled_even_when_the_row_cannot_be_written(
    ledger: Ledger,
) -> None:
    outside = Outside()
    hold = outside.reserve("openai", Decimal(1))
    with ledger.file.reading() as conn:
        conn.execute("PRAGMA query_only = ON")

    ledger.record(Reply("openai", "m", cost=Decimal("0.3")), hold)

    assert outside.settled == [(hold, Decimal("0.3"))]


def test_a_process_killed_but_not_yet_reaped_is_gone(sleeper: subprocess.Popen[bytes]) -> None:
    name = process_named(sleeper.pid)
    assert is_gone(name) is False
    assert is_gone(this_process()) is False

    sleeper.kill()  # a zombie until waited for: its pid still answers signals
    assert poll_until(lambda: is_gone(name) is True)


def test_a_keeper_outside_the_ledger_that_cannot_settle_never_fails_the_paid_call(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    class Unreachable(Outside):
        def settle(self, hold: Hold, cost: Decimal | None) -> None:
            raise BackendUnavailableError("redis://budgets: connection refused")

    hold = Unreachable().reserve("openai", Decimal(1))

    ledger.record(Reply("openai", "m", cost=Decimal("0.3")), hold)

    assert [row.cost for row in ledger.report()] == [Decimal("0.3")]
    assert "budget hold outside-1 not settled: redis://budgets: connection refused" in caplog.text
