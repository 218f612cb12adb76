"""The cost ledger and its budgets across processes: killed writers, racing budgets, holds and
journals left by killed processes, exit, fork."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from questfoundry.contracts.records import Budget, Reply
from questfoundry.ledger import Ledger, journal
from questfoundry.ledger.keeper import SQLiteBudgetKeeper
from questfoundry.testing.racing import READY, race

pytestmark = pytest.mark.slow

PRELUDE = """
import sys, time
from decimal import Decimal
from pathlib import Path
from questfoundry.ledger.keeper import SQLiteBudgetKeeper
from questfoundry.contracts.records import Reply, Usage
from questfoundry.contracts.errors import CostLimitExceededError
from questfoundry.ledger import Ledger
from questfoundry.contracts.records import Budget
from questfoundry.testing.racing import READY, race
"""

WRITER = PRELUDE + textwrap.dedent(
    """
    ledger = Ledger(Path(sys.argv[1]))
    keeper = SQLiteBudgetKeeper(ledger.file, [Budget(None, "month", Decimal(1_000_000))])
    number = 0
    while True:
        held = keeper.reserve("openai", Decimal("0.01"))
        ledger.record(Reply("openai", "m", run_id=f"row-{number}", cost=Decimal("0.01")), held)
        print(number, flush=True)
        number += 1
    """
)

RACER = PRELUDE + textwrap.dedent(
    """
    ledger = Ledger(Path(sys.argv[1]))
    budgets = [Budget(None, "day", Decimal(sys.argv[2])), Budget("openai", "day", Decimal(100))]
    keeper = SQLiteBudgetKeeper(ledger.file, budgets)
    estimate = Decimal(sys.argv[3])
    READY
    calls = 0
    while True:
        try:
            held = keeper.reserve("openai", estimate)
        except CostLimitExceededError:
            break
        ledger.record(Reply("openai", "m", cost=estimate), held)
        calls += 1
    ledger.close()
    print(calls)
    """
).replace("READY", READY)

EXITS_WITHOUT_CLOSING = PRELUDE + textwrap.dedent(
    """
    ledger = Ledger(Path(sys.argv[1]), flush_interval=3600)
    for _ in range(5):
        ledger.record_hit(Reply("openai", "m", cache_hit=True))
    """
)

HOLDS_THEN_WAITS = PRELUDE + textwrap.dedent(
    """
    ledger = Ledger(Path(sys.argv[1]))
    keeper = SQLiteBudgetKeeper(ledger.file, [Budget(None, "day", Decimal(1))])
    keeper.reserve("openai", Decimal("0.75"))
    print("held", flush=True)
    time.sleep(600)
    """
)

CALLS_THEN_WAITS = PRELUDE + textwrap.dedent(
    """
    ledger = Ledger(Path(sys.argv[1]), flush_interval=3600)
    keeper = SQLiteBudgetKeeper(ledger.file, [Budget(None, "day", Decimal(1))])
    hold = keeper.reserve("openai", Decimal("0.75"))
    answered = ledger.intend("openai", "m", Usage(10, 20), Decimal("0.75"), hold=hold)
    ledger.record(Reply("openai", "m", run_id="answered", cost=Decimal("0.5")), hold, answered)
    ledger.intend("openai", "m", Usage(10, 20), Decimal("0.25"), run_id="in flight")
    print("sent", flush=True)
    time.sleep(600)
    """
)


def python(script: str, *args: object, **popen: object) -> subprocess.Popen[str]:
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-c", script, *map(str, args)], text=True, **popen
    )


def test_a_killed_writer_leaves_every_committed_row(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    writer = python(WRITER, path, stdout=subprocess.PIPE)
    assert writer.stdout is not None
    committed: list[str] = []
    for line in writer.stdout:
        committed.append(line.strip())
        if len(committed) == 300:
            os.kill(writer.pid, signal.SIGKILL)
            break
    rest, _ = writer.communicate(timeout=30)
    committed += [line for line in rest.split("\n") if line]  # printed before the kill landed
    assert writer.returncode == -signal.SIGKILL

    with Ledger(path) as ledger:
        assert ledger.report()[0].calls >= len(committed)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {row[0] for row in conn.execute("SELECT run_id FROM calls WHERE status='spent'")}
    assert {f"row-{number}" for number in committed} <= stored


@pytest.mark.slow
@pytest.mark.parametrize("run", range(3))
def test_eight_processes_racing_one_budget_never_overspend_it(tmp_path: Path, run: int) -> None:
    path = tmp_path / "ledger.sqlite"
    limit, estimate = Decimal("2.00"), Decimal("0.01")
    Ledger(path).close()
    calls = [int(line) for line in race(RACER, [str(path), str(limit), str(estimate)], 8)]

    with Ledger(path) as ledger:
        levels = SQLiteBudgetKeeper(ledger.file, [Budget(None, "day", limit)]).levels()
    total = levels[0].spent
    assert total == limit  # not a cent over, and nothing left unspent
    assert total == estimate * sum(calls)


def test_queued_hits_are_written_when_the_interpreter_exits(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    child = python(EXITS_WITHOUT_CLOSING, path)

    assert child.wait(timeout=30) == 0
    with Ledger(path) as ledger:
        assert ledger.report()[0].hits == 5


def _record_in_child(ledger: Ledger) -> None:
    ledger.record(Reply("openai", "m", run_id="child", cost=Decimal(1)))
    ledger.record_hit(Reply("openai", "m", run_id="child-hit", cache_hit=True))
    ledger.close()


@pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX only")
def test_a_ledger_inherited_through_fork_opens_its_own_connection(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with Ledger(path, flush_interval=3600) as ledger:
        ledger.record(Reply("openai", "m", run_id="parent", cost=Decimal(1)))
        ledger.record_hit(Reply("openai", "m", run_id="parent-hit", cache_hit=True))
        child = multiprocessing.get_context("fork").Process(target=_record_in_child, args=(ledger,))
        child.start()
        child.join(timeout=30)
        assert child.exitcode == 0
        ledger.record(Reply("openai", "m", run_id="parent-after", cost=Decimal(1)))

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        runs = "SELECT run_id FROM calls UNION ALL SELECT run_id FROM hits"
        run_ids = sorted(row[0] for row in conn.execute(runs))
    assert run_ids == ["child", "child-hit", "parent", "parent-after", "parent-hit"]


def spent(path: Path) -> Decimal:
    with Ledger(path) as ledger:
        (level,) = SQLiteBudgetKeeper(ledger.file, [Budget(None, "day", Decimal(1))]).levels()
    return level.spent


def test_the_hold_of_a_killed_process_is_released_at_the_next_check(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    child = python(HOLDS_THEN_WAITS, path, stdout=subprocess.PIPE)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "held"
    assert spent(path) == Decimal("0.75")  # a live process's hold counts

    child.kill()
    child.wait(timeout=30)

    assert spent(path) == 0
    with Ledger(path) as ledger:
        keeper = SQLiteBudgetKeeper(ledger.file, [Budget(None, "day", Decimal(1))])
        assert keeper.reserve("openai", Decimal(1)) is not None


def test_a_journal_left_by_a_killed_process_is_settled_at_the_next_open(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    child = python(CALLS_THEN_WAITS, path, stdout=subprocess.PIPE)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "sent"

    with Ledger(path) as ledger:  # the child runs: its journal is its own to settle
        assert [row.calls for row in ledger.report()] == [1]  # the answered call, held: written
        assert len(journal.names(journal.folder_of(path))) == 1
    child.kill()
    child.wait(timeout=30)
    with Ledger(path) as ledger:
        (row,) = ledger.report()
    assert (row.calls, row.unconfirmed, row.cost) == (2, 1, Decimal("0.75"))
    assert spent(path) == Decimal("0.75")  # the row replaced the hold; the estimate counts
    assert journal.names(journal.folder_of(path)) == set()
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT run_id, unconfirmed FROM calls ORDER BY id").fetchall()
    assert rows == [("answered", 0), ("in flight", 1)]


def _open_together(path: str, barrier: Any, results: Any) -> None:
    from questfoundry.kit import sqlite

    barrier.wait(10)
    try:
        sqlite.open_sqlite(Path(path), 10.0, lambda conn: None).close()
        results.put("ok")
    except Exception as exc:  # reported to the test, which shows it
        results.put(f"{type(exc).__name__}: {exc}")


@pytest.mark.slow
def test_processes_opening_a_new_file_together_all_open_it_in_wal(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    for attempt in range(5):  # the race is for the first instant of a new file: run it often
        path = tmp_path / f"new-{attempt}.sqlite"
        barrier, results = context.Barrier(8), context.Queue()
        workers = [
            context.Process(target=_open_together, args=(str(path), barrier, results))
            for _ in range(8)
        ]
        for worker in workers:
            worker.start()
        answers = [results.get(timeout=30) for _ in workers]
        for worker in workers:
            worker.join(10)
        assert answers == ["ok"] * 8
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
