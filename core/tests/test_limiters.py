"""Every limiter strategy in the core against the standard suite, and what only `sqlite` adds."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace

import pytest

from questfoundry.builtins.sqlite_limiter import SQLiteLimiter, make_sqlite_limiter
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
