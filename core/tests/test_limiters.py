"""Every limiter strategy in the core against the standard suite, and what only `sqlite` adds."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from dataclasses import replace

import pytest

from questfoundry.builtins.sqlite_limiter import (
    LEASE_CALLS,
    LEASE_SECONDS,
    SQLiteLimiter,
    make_sqlite_limiter,
)
from questfoundry.builtins.token_bucket import make_token_bucket
from questfoundry.contracts.backends import BackendContext, Factory
from questfoundry.contracts.errors import BackendUnavailableError
from questfoundry.contracts.records import Rate
from questfoundry.registry import get_plugin_manager
from questfoundry.testing.clock import FakeClock
from questfoundry.testing.limiter_contract import LimiterContract


class TestTokenBucket(LimiterContract):
    @pytest.fixture
    def limiter_factory(self) -> Factory:
        return make_token_bucket


class TestSQLiteLimiter(LimiterContract):
    @pytest.fixture
    def limiter_factory(self) -> Factory:
        return make_sqlite_limiter


# ----------------------------------------------------------------------------- sqlite only

RATE = Rate("global/requests", 10, 60)


@pytest.fixture
def limiters(backend_context: BackendContext) -> Iterator[list[SQLiteLimiter]]:
    made: list[SQLiteLimiter] = []
    yield made
    for limiter in made:
        limiter.close()


def sqlite_limiter(
    made: list[SQLiteLimiter], context: BackendContext, *rates: Rate, **settings: object
) -> SQLiteLimiter:
    limiter = make_sqlite_limiter({**settings, "rates": list(rates)}, context)
    made.append(limiter)
    return limiter


def available(limiter: SQLiteLimiter) -> float:
    (level,) = limiter.levels()
    return level.available


def test_sqlite_is_a_built_in_strategy() -> None:
    manager = get_plugin_manager(entry_points=False)
    assert manager.backends("limiter strategy")["sqlite"].factory is make_sqlite_limiter


def test_the_buckets_live_in_rate_limiting_path(
    limiters: list[SQLiteLimiter], backend_context: BackendContext
) -> None:
    limiter = sqlite_limiter(limiters, backend_context, RATE, path="shared/limits.db")
    limiter.acquire({RATE.key: 3})

    path = backend_context.project_dir.parent / "shared" / "limits.db"
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT key, level FROM buckets").fetchall() == [
            ("test/global/requests", 7.0)
        ]


def test_two_limiters_on_one_file_share_their_buckets(
    limiters: list[SQLiteLimiter], backend_context: BackendContext
) -> None:
    first = sqlite_limiter(limiters, backend_context, RATE)
    second = sqlite_limiter(limiters, backend_context, RATE)

    first.acquire({RATE.key: 6})

    assert available(second) == 4
    assert second.acquire({RATE.key: 5}) > 0


def test_projects_with_different_namespaces_never_share_a_bucket(
    limiters: list[SQLiteLimiter], backend_context: BackendContext
) -> None:
    mine = sqlite_limiter(limiters, backend_context, RATE)
    theirs = sqlite_limiter(limiters, replace(backend_context, namespace="other"), RATE)

    mine.acquire({RATE.key: 10})

    assert available(theirs) == 10


def test_a_lowered_limit_takes_effect_at_once(
    limiters: list[SQLiteLimiter], backend_context: BackendContext
) -> None:
    sqlite_limiter(limiters, backend_context, RATE).acquire({RATE.key: 2})  # 8 left of 10

    lowered = sqlite_limiter(limiters, backend_context, Rate(RATE.key, 5, 60))

    assert available(lowered) == 5


def test_a_clock_set_back_refills_nothing_twice(
    limiters: list[SQLiteLimiter], backend_context: BackendContext, fake_clock: FakeClock
) -> None:
    limiter = sqlite_limiter(limiters, backend_context, Rate("a", 60, 60))
    limiter.acquire({"a": 60})
    fake_clock.advance(-30)  # the wall clock is set back half a minute
    limiter.acquire({"a": 0})
    fake_clock.advance(30)  # back where it was: nothing has really passed

    assert available(limiter) == 0


def test_a_file_locked_too_long_is_a_backend_unavailable_error(
    backend_context: BackendContext,
) -> None:
    path = backend_context.project_dir / "limits.sqlite"
    limiter = SQLiteLimiter(path, [RATE], clock=backend_context.clock, busy_timeout=0.01)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(BackendUnavailableError, match=r"rate limiter .*: database is locked"):
            limiter.acquire({RATE.key: 1})
        holder.execute("ROLLBACK")
        assert limiter.acquire({RATE.key: 1}) == 0.0  # the failed acquire left nothing open
    finally:
        holder.close()
        limiter.close()


def test_a_closed_limiter_is_an_error_not_a_free_pass(backend_context: BackendContext) -> None:
    limiter = make_sqlite_limiter({"rates": [RATE]}, backend_context)
    limiter.close()
    limiter.close()

    with pytest.raises(BackendUnavailableError, match="closed"):
        limiter.acquire({RATE.key: 1})


# ----------------------------------------------------------------------------- sqlite leases

TOKENS = Rate("tokens", 10_000, 3600)
TEN = {"tokens": 10}
#: what a lease of TEN holds: LEASE_CALLS more acquires of 10 (within 2 % of 10,000)
LEASED = 10 * LEASE_CALLS


def stored_level(limiter: SQLiteLimiter, key: str = "tokens") -> float:
    """The bucket's level as the file holds it, read beside the limiter."""
    with sqlite3.connect(limiter.path) as conn:
        (level,) = conn.execute(
            "SELECT level FROM buckets WHERE key = ?", (f"test/{key}",)
        ).fetchone()
    return float(level)


def test_a_lease_serves_the_next_acquires_without_touching_the_file(
    limiters: list[SQLiteLimiter], backend_context: BackendContext
) -> None:
    holder = sqlite_limiter(limiters, backend_context, TOKENS)
    assert holder.acquire(TEN) == 0.0
    assert stored_level(holder) == 10_000 - 10 - LEASED

    for _ in range(LEASE_CALLS):
        assert holder.acquire(TEN) == 0.0
    assert stored_level(holder) == 10_000 - 10 - LEASED  # served from the lease
    assert available(holder) == 10_000 - 10 * (1 + LEASE_CALLS)

    assert holder.acquire(TEN) == 0.0  # the lease is spent: a transaction, and a new lease
    assert stored_level(holder) == 10_000 - 10 * (2 + LEASE_CALLS) - LEASED


def test_what_a_lease_holds_is_taken_for_every_other_process(
    limiters: list[SQLiteLimiter], backend_context: BackendContext, fake_clock: FakeClock
) -> None:
    refilling = Rate("tokens", 10_000, 100)  # 100 a second
    holder = sqlite_limiter(limiters, backend_context, refilling)
    other = sqlite_limiter(limiters, backend_context, refilling)
    holder.acquire(TEN)

    fake_clock.advance(0.2)  # 20 refilled, but the bucket never refills into the lease

    assert available(other) == 10_000 - LEASED
    assert available(other) + LEASED <= refilling.limit


def test_closing_gives_what_is_left_of_the_lease_back(
    limiters: list[SQLiteLimiter], backend_context: BackendContext
) -> None:
    holder = sqlite_limiter(limiters, backend_context, TOKENS)
    other = sqlite_limiter(limiters, backend_context, TOKENS)
    holder.acquire(TEN)
    holder.acquire(TEN)

    holder.close()

    assert available(other) == 10_000 - 20


def test_an_acquire_short_of_what_another_lease_holds_waits_for_it_then_refuses(
    limiters: list[SQLiteLimiter], backend_context: BackendContext, fake_clock: FakeClock
) -> None:
    shared = Rate("shared", 100, 1e9)
    holder = sqlite_limiter(limiters, backend_context, shared)
    other = sqlite_limiter(limiters, backend_context, shared)
    assert holder.acquire({"shared": 1}) == 0.0  # and a lease of 2 (2 % of 100)
    assert other.acquire({"shared": 97}) == 0.0  # all the file holds

    assert other.acquire({"shared": 1}) > 0  # the holder never came back for it
    assert sum(fake_clock.slept) == pytest.approx(LEASE_SECONDS)  # its lease's whole life

    holder.close()  # what it held goes back: nothing is lost
    assert [other.acquire({"shared": 1}) == 0.0 for _ in range(3)] == [True, True, False]


def test_small_limits_are_taken_from_exactly_without_a_lease(
    limiters: list[SQLiteLimiter], backend_context: BackendContext
) -> None:
    limiter = sqlite_limiter(limiters, backend_context, RATE)  # 10 a minute: 2 % is no request
    limiter.acquire({RATE.key: 1})

    assert stored_level(limiter, RATE.key) == 9


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_never_spends_its_parent_lease(
    limiters: list[SQLiteLimiter], backend_context: BackendContext
) -> None:
    parent = sqlite_limiter(limiters, backend_context, TOKENS)
    parent.acquire(TEN)
    before = stored_level(parent)

    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os._exit(0 if parent.acquire(TEN) == 0.0 else 1)
    _, status = os.waitpid(child, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    assert stored_level(parent) == before - 10 - LEASED  # the child took from the file
