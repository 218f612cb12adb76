"""The cost ledger across processes: killed writers, racing budgets, exit, fork."""

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

import pytest

from questfoundry.ledger import Entry, Ledger

pytestmark = pytest.mark.slow

WRITER = textwrap.dedent(
    """
    import sys
    from decimal import Decimal
    from pathlib import Path
    from questfoundry.ledger import Budget, Entry, Ledger

    ledger = Ledger(Path(sys.argv[1]))
    budgets = [Budget(None, "month", Decimal(1_000_000))]
    number = 0
    while True:
        held = ledger.reserve("openai", Decimal("0.01"), budgets)
        ledger.record(Entry("openai", "m", run_id=f"row-{number}", cost=Decimal("0.01")), held)
        print(number, flush=True)
        number += 1
    """
)

RACER = textwrap.dedent(
    """
    import sys
    from decimal import Decimal
    from pathlib import Path
    from questfoundry.errors import CostLimitExceededError
    from questfoundry.ledger import Budget, Entry, Ledger

    ledger = Ledger(Path(sys.argv[1]))
    budgets = [Budget(None, "day", Decimal(sys.argv[2])), Budget("openai", "day", Decimal(100))]
    estimate = Decimal(sys.argv[3])
    sys.stdin.readline()  # start together
    calls = 0
    while True:
        try:
            held = ledger.reserve("openai", estimate, budgets)
        except CostLimitExceededError:
            break
        ledger.record(Entry("openai", "m", cost=estimate), held)
        calls += 1
    ledger.close()
    print(calls)
    """
)

EXITS_WITHOUT_CLOSING = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from questfoundry.ledger import Entry, Ledger

    ledger = Ledger(Path(sys.argv[1]), flush_interval=3600)
    for _ in range(5):
        ledger.record_hit(Entry("openai", "m"))
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


@pytest.mark.parametrize("run", range(5))
def test_eight_processes_racing_one_budget_never_overspend_it(tmp_path: Path, run: int) -> None:
    path = tmp_path / "ledger.sqlite"
    limit, estimate = Decimal("0.40"), Decimal("0.01")
    Ledger(path).close()
    racers = [
        python(RACER, path, limit, estimate, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        for _ in range(8)
    ]
    for racer in racers:
        assert racer.stdin is not None
        racer.stdin.write("go\n")
        racer.stdin.flush()
    calls = [int(racer.communicate(timeout=60)[0]) for racer in racers]
    assert all(racer.returncode == 0 for racer in racers)

    with Ledger(path) as ledger:
        total = ledger.spent(None, "day")
    assert limit - estimate < total <= limit
    assert total == estimate * sum(calls)


def test_queued_hits_are_written_when_the_interpreter_exits(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    child = python(EXITS_WITHOUT_CLOSING, path)

    assert child.wait(timeout=30) == 0
    with Ledger(path) as ledger:
        assert ledger.report()[0].hits == 5


def _record_in_child(ledger: Ledger) -> None:
    ledger.record(Entry("openai", "m", run_id="child", cost=Decimal(1)))
    ledger.record_hit(Entry("openai", "m", run_id="child-hit"))
    ledger.close()


@pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX only")
def test_a_ledger_inherited_through_fork_opens_its_own_connection(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with Ledger(path, flush_interval=3600) as ledger:
        ledger.record(Entry("openai", "m", run_id="parent", cost=Decimal(1)))
        ledger.record_hit(Entry("openai", "m", run_id="parent-hit"))
        child = multiprocessing.get_context("fork").Process(target=_record_in_child, args=(ledger,))
        child.start()
        child.join(timeout=30)
        assert child.exitcode == 0
        ledger.record(Entry("openai", "m", run_id="parent-after", cost=Decimal(1)))

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        run_ids = sorted(row[0] for row in conn.execute("SELECT run_id FROM calls"))
    assert run_ids == ["child", "child-hit", "parent", "parent-after", "parent-hit"]
