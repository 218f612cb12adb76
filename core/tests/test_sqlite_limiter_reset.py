"""The sqlite limiter's file deleted or replaced under it: noticed, warned about once, recreated
with every bucket empty, so removing the file never grants a fresh burst."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from questfoundry.builtins.sqlite_limiter import SQLiteLimiter, make_sqlite_limiter
from questfoundry.contracts.backends import BackendContext
from questfoundry.contracts.records import Rate
from questfoundry.testing.clock import FakeClock

RATE = Rate("global/requests", 10, 60)
ONE = {"global/requests": 1}

Build = Callable[[], SQLiteLimiter]


@pytest.fixture
def made(backend_context: BackendContext) -> Iterator[list[SQLiteLimiter]]:
    limiters: list[SQLiteLimiter] = []
    yield limiters
    for limiter in limiters:
        limiter.close()


@pytest.fixture
def limiter(made: list[SQLiteLimiter], backend_context: BackendContext) -> Build:
    """Builds a new limiter on the project's file: what another process would open."""

    def build() -> SQLiteLimiter:
        made.append(make_sqlite_limiter({"rates": [RATE]}, backend_context))
        return made[-1]

    return build


def admitted(limiter: SQLiteLimiter, times: int) -> int:
    return sum(limiter.acquire(ONE) == 0 for _ in range(times))


def remove_file(limiter: SQLiteLimiter) -> None:
    """What ``rm .questfoundry/limits.sqlite*`` does: the file, its -wal and its -shm."""
    for leftover in limiter.path.parent.glob(limiter.path.name + "*"):
        leftover.unlink()


def test_a_new_file_starts_with_full_buckets(
    limiter: Build, caplog: pytest.LogCaptureFixture
) -> None:
    assert admitted(limiter(), 12) == 10
    assert "recreated" not in caplog.text


def test_a_deleted_file_is_recreated_with_every_bucket_empty(
    limiter: Build, caplog: pytest.LogCaptureFixture
) -> None:
    first = limiter()
    assert admitted(first, 10) == 10
    remove_file(first)
    with caplog.at_level(logging.WARNING):
        later = limiter()  # another process, started after the file went
        assert admitted(later, 5) == 0
    assert caplog.text.count("deleted or replaced") == 1
    assert str(first.path) in caplog.text


def test_the_running_process_notices_the_deletion_and_shares_the_new_file(
    limiter: Build, fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    running = limiter()
    assert admitted(running, 10) == 10
    remove_file(running)
    with caplog.at_level(logging.WARNING):
        assert admitted(running, 3) == 0
        other = limiter()
        assert admitted(other, 3) == 0
    assert caplog.text.count("deleted or replaced") == 1  # one reset, one warning
    fake_clock.advance(6)  # one request's worth of refill since the reset
    assert admitted(other, 1) == 1
    assert admitted(running, 1) == 0, "both see the one bucket of the new file"


def test_a_file_replaced_by_another_is_emptied(
    limiter: Build, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = limiter()
    assert admitted(first, 10) == 10
    first.close()
    elsewhere = SQLiteLimiter(tmp_path / "fresh.sqlite", [RATE])  # another file: full buckets
    elsewhere.close()
    shutil.copy(tmp_path / "fresh.sqlite", first.path)
    with caplog.at_level(logging.WARNING):
        assert admitted(limiter(), 3) == 0
        assert admitted(limiter(), 3) == 0
    assert caplog.text.count("deleted or replaced") == 1


def test_buckets_refill_from_the_reset_at_their_rate(limiter: Build, fake_clock: FakeClock) -> None:
    first = limiter()
    admitted(first, 10)
    remove_file(first)
    later = limiter()
    fake_clock.advance(30)
    assert admitted(later, 10) == 5  # half a minute: half of 10 per minute


_TAKE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from questfoundry.builtins.sqlite_limiter import SQLiteLimiter
    from questfoundry.contracts.records import Rate
    limiter = SQLiteLimiter(Path(sys.argv[1]), [Rate("global/requests", 10, 60)])
    print(sum(limiter.acquire({"global/requests": 1}) == 0 for _ in range(12)))
    limiter.close()
    """
)


@pytest.mark.slow
def test_processes_never_take_more_than_the_limit_across_a_deletion(tmp_path: Path) -> None:
    path = tmp_path / ".questfoundry" / "limits.sqlite"

    def take() -> int:
        done = subprocess.run(
            [sys.executable, "-c", _TAKE, str(path)], capture_output=True, text=True, check=True
        )
        return int(done.stdout)

    assert take() == 10
    for leftover in path.parent.glob("limits.sqlite*"):
        leftover.unlink()
    assert take() + take() == 0
