"""The ``redis`` limiter and budget keeper: conformance, one round trip, keys, outages."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from questfoundry_limiter_redis import plugin as redis_plugin
from questfoundry_limiter_redis.budgets import RedisBudgetKeeper
from questfoundry_limiter_redis.limiter import RedisLimiter
from questfoundry_limiter_redis.plugin import make_redis_keeper, make_redis_limiter

from questfoundry.kit import (
    BackendContext,
    BackendUnavailableError,
    Budget,
    ConfigError,
    CostLimitExceededError,
    Factory,
    Rate,
    Request,
)
from questfoundry.testing.app import (
    Config,
    Gateway,
    Ledger,
    SQLiteBudgetKeeper,
    get_plugin_manager,
    open_budgets,
    open_gateway,
)
from questfoundry.testing.budget_contract import BudgetContract, Opener
from questfoundry.testing.clock import FakeClock
from questfoundry.testing.limiter_contract import LimiterContract
from questfoundry.testing.redis import RedisServer, client
from questfoundry.testing.scripted import ScriptedProvider, scripted_plugin

pytestmark = pytest.mark.redis

LOGGER = "questfoundry.limiter.redis"
REQUESTS = Rate("global/requests", 10, 60)
DAILY = [Budget(None, "day", Decimal(1))]


class TestRedisLimiter(LimiterContract):
    @pytest.fixture
    def limiter_factory(self) -> Factory:
        return make_redis_limiter

    @pytest.fixture
    def limiter_settings(self, redis_url: str, redis_prefix: str) -> Mapping[str, Any]:
        return {"redis_url": redis_url, "key_prefix": redis_prefix}


class TestRedisBudgets(BudgetContract):
    @pytest.fixture
    def budgets_opener(self) -> Opener:
        return open_budgets  # the installed plugins: this one builds the keeper named `redis`

    @pytest.fixture
    def rate_limiting(self, redis_url: str, redis_prefix: str) -> Mapping[str, Any]:
        return {"backend": "redis", "redis_url": redis_url, "key_prefix": redis_prefix}


# ----------------------------------------------------------------------------- helpers


@pytest.fixture
def settings(redis_url: str, redis_prefix: str) -> dict[str, Any]:
    return {"redis_url": redis_url, "key_prefix": redis_prefix}


@pytest.fixture
def built(backend_context: BackendContext) -> Iterator[list[RedisLimiter | RedisBudgetKeeper]]:
    made: list[RedisLimiter | RedisBudgetKeeper] = []
    yield made
    for backend in made:
        backend.close()


def limiter(
    made: list[Any], settings: Mapping[str, Any], context: BackendContext, *rates: Rate
) -> RedisLimiter:
    built = make_redis_limiter({**settings, "rates": list(rates)}, context)
    made.append(built)
    return built


def keeper(
    made: list[Any], settings: Mapping[str, Any], context: BackendContext, **more: Any
) -> RedisBudgetKeeper:
    built = make_redis_keeper({**settings, "budgets": DAILY, **more}, context)
    made.append(built)
    return built


def command_calls(url: str) -> dict[str, int]:
    """Commands run by the server so far, by name (those a script runs included)."""
    stats = client(url).info("commandstats")
    return {name.removeprefix("cmdstat_"): int(entry["calls"]) for name, entry in stats.items()}


# ----------------------------------------------------------------------------- registration


def test_rate_limiting_backend_redis_builds_both_the_limiter_and_the_keeper() -> None:
    manager = get_plugin_manager(entry_points=False, plugins=[("limiter-redis", redis_plugin)])
    assert manager.backends("limiter strategy")["redis"].factory is make_redis_limiter
    assert manager.backends("budget keeper")["redis"].factory is make_redis_keeper


def test_open_budgets_builds_the_keeper_named_like_the_backend(
    settings: dict[str, Any], backend_context: BackendContext, tmp_path: Path
) -> None:
    manager = get_plugin_manager(entry_points=False, plugins=[("limiter-redis", redis_plugin)])
    section = {"global": {"cost_per_day": 1}}
    with Ledger(tmp_path / "ledger.sqlite", clock=backend_context.clock) as ledger:
        redis_config = Config({"rate_limiting": {"backend": "redis", **settings, **section}})
        kept = open_budgets(redis_config, ledger, backend_context, manager)
        sqlite_config = Config({"rate_limiting": {"backend": "sqlite", **section}})
        local = open_budgets(sqlite_config, ledger, backend_context, manager)
        assert isinstance(kept, RedisBudgetKeeper) and isinstance(local, SQLiteBudgetKeeper)
        kept.close()


# ----------------------------------------------------------------------------- one round trip


def test_an_acquire_of_every_layer_is_one_round_trip(
    built: list[Any], redis_server: RedisServer, backend_context: BackendContext
) -> None:
    layers = [
        Rate("global/requests", 100, 60),
        Rate("global/tokens", 10_000, 3600),
        Rate("provider:openai/requests", 100, 60),
        Rate("provider:openai/tokens", 10_000, 3600),
    ]
    real = BackendContext(backend_context.project_dir, "p")  # the real clock: Redis's TIME
    made = limiter(built, {"redis_url": redis_server.url}, real, *layers)
    amounts = {rate.key: 1.0 for rate in layers}
    made.acquire(amounts)  # loads the script
    before = command_calls(redis_server.url)

    for _ in range(10):
        assert made.acquire(amounts) == 0.0

    after = command_calls(redis_server.url)
    ran = {
        name: after[name] - before.get(name, 0) for name in after if name not in ("info", "hello")
    }
    # ten EVALSHA and nothing else from the client; inside, one read and one write of one hash
    # (its expiry set on the first acquire, which loaded the script, and not pushed back since)
    assert {name: calls for name, calls in ran.items() if calls} == {
        "evalsha": 10, "time": 10, "hmget": 10, "hset": 10,
    }  # fmt: skip


def test_reconciling_a_call_that_used_what_it_estimated_asks_redis_nothing(
    built: list[Any], redis_server: RedisServer, backend_context: BackendContext
) -> None:
    made = limiter(built, {"redis_url": redis_server.url}, backend_context, REQUESTS)
    made.acquire({"global/requests": 1})
    before = command_calls(redis_server.url)

    made.adjust({"global/requests": 0.0, "global/tokens": 12.0})  # no rate for tokens

    assert command_calls(redis_server.url)["evalsha"] == before["evalsha"]


def test_a_server_that_forgot_the_script_is_given_it_again(
    built: list[Any], settings: dict[str, Any], backend_context: BackendContext, redis_url: str
) -> None:
    made = limiter(built, settings, backend_context, Rate("global/requests", 10, 1e9))
    assert made.acquire({"global/requests": 4}) == 0.0
    client(redis_url).script_flush()

    assert made.acquire({"global/requests": 4}) == 0.0
    assert {level.key: level.available for level in made.levels()} == {"global/requests": 2}


# ----------------------------------------------------------------------------- keys


def test_every_key_of_a_project_carries_its_hash_tag_and_namespaces_are_apart(
    built: list[Any], settings: dict[str, Any], tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    rate = Rate("global/requests", 5, 1e9)
    one = limiter(built, settings, BackendContext(tmp_path, "one"), rate)
    two = limiter(built, settings, BackendContext(tmp_path, "two"), rate)
    money = keeper(built, settings, BackendContext(tmp_path, "one"))
    assert one.acquire({"global/requests": 5}) == 0.0
    hold = money.reserve("openai", Decimal("0.5"))
    assert hold is not None
    money.settle(hold, Decimal("0.25"))

    assert two.acquire({"global/requests": 5}) == 0.0  # the other project's bucket is its own
    keys = sorted(k.decode() for k in client(redis_url).scan_iter(match=redis_prefix + "*"))
    assert keys and all(
        k.startswith((f"{redis_prefix}{{qf:one}}:", f"{redis_prefix}{{qf:two}}:")) for k in keys
    )


def test_the_buckets_are_one_hash_that_expires_once_every_bucket_would_be_full_again(
    built: list[Any], settings: dict[str, Any], backend_context: BackendContext, redis_url: str
) -> None:
    rates = Rate("global/requests", 10, 60), Rate("global/tokens", 100, 600)
    made = limiter(built, settings, backend_context, *rates)
    made.acquire({"global/requests": 5, "global/tokens": 10})  # 30 s and 60 s to refill
    made.acquire({"global/requests": 1})  # 36 s: what the hash keeps already covers it
    (key,) = client(redis_url).scan_iter(match=settings["key_prefix"] + "*bucket*")
    assert key.decode().endswith(":buckets")
    assert client(redis_url).hlen(key) == 3  # each bucket (its level and stamp), and the expiry
    assert 119_000 < client(redis_url).pttl(key) <= 120_000  # the longest, plus a minute

    made.acquire({"global/tokens": 90})  # empty: 600 s to refill, past what the hash keeps

    assert 659_000 < client(redis_url).pttl(key) <= 660_000


# ----------------------------------------------------------------------------- budgets


def test_a_hold_of_a_worker_that_never_settles_lapses_after_hold_seconds(
    built: list[Any], settings: dict[str, Any], backend_context: BackendContext,
    fake_clock: FakeClock,
) -> None:  # fmt: skip
    kept = keeper(built, settings, backend_context, hold_seconds=30)
    assert kept.reserve("openai", Decimal("0.8")) is not None  # its worker is killed
    with pytest.raises(CostLimitExceededError):
        kept.reserve("openai", Decimal("0.8"))

    fake_clock.advance(31)

    assert kept.reserve("openai", Decimal("0.8")) is not None


def test_a_call_settled_after_its_hold_lapsed_still_counts(
    built: list[Any], settings: dict[str, Any], backend_context: BackendContext,
    fake_clock: FakeClock,
) -> None:  # fmt: skip
    kept = keeper(built, settings, backend_context, hold_seconds=30)
    hold = kept.reserve("openai", Decimal("0.5"))
    assert hold is not None
    fake_clock.advance(60)

    kept.settle(hold, Decimal("0.7"))

    assert [level.spent for level in kept.levels()] == [Decimal("0.7")]


# ----------------------------------------------------------------------------- outages


def outage_settings(server: RedisServer, **more: Any) -> dict[str, Any]:
    return {"redis_url": server.url, **more}


def test_with_redis_stopped_a_fail_open_limiter_admits_and_warns_once(
    built: list[Any], redis_server: RedisServer, backend_context: BackendContext,
    caplog: pytest.LogCaptureFixture, fake_clock: FakeClock,
) -> None:  # fmt: skip
    made = limiter(built, outage_settings(redis_server), backend_context, REQUESTS)
    assert made.acquire({"global/requests": 10}) == 0.0
    redis_server.stop()

    with caplog.at_level(logging.WARNING, LOGGER):
        admitted = [made.acquire({"global/requests": 1}) for _ in range(3)]
        fake_clock.advance(2)  # past the breaker: Redis is asked again, and is still gone
        admitted.append(made.acquire({"global/requests": 1}))

    assert admitted == [0.0] * 4
    (warning,) = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert "rate limiter: Redis at 127.0.0.1:" in warning and "fail_open" in warning


def test_with_redis_stopped_a_fail_closed_limiter_refuses_in_one_line(
    built: list[Any], redis_server: RedisServer, backend_context: BackendContext
) -> None:
    limits = outage_settings(redis_server, on_backend_error="fail_closed")
    made = limiter(built, limits, backend_context, REQUESTS)
    redis_server.stop()

    with pytest.raises(BackendUnavailableError) as raised:
        made.acquire({"global/requests": 1})

    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"rate limiter: Redis at 127.0.0.1:{redis_server.port}/0 ")
    assert message.endswith(
        "no call is sent while it is down (rate_limiting.on_backend_error: fail_closed)"
    )
    with pytest.raises(BackendUnavailableError, match="did not answer a moment ago"):
        made.acquire({"global/requests": 1})  # the breaker answers without waiting on Redis


@pytest.mark.slow
def test_budgets_fail_closed_by_default_and_a_restarted_redis_is_used_again(
    built: list[Any], redis_server: RedisServer, backend_context: BackendContext,
    fake_clock: FakeClock,
) -> None:  # fmt: skip
    kept = keeper(built, outage_settings(redis_server), backend_context)
    redis_server.stop()
    with pytest.raises(
        BackendUnavailableError, match=r"^budget keeper: Redis at .* fail_closed\)$"
    ):
        kept.reserve("openai", Decimal("0.1"))

    redis_server.start()
    fake_clock.advance(2)

    assert kept.reserve("openai", Decimal("0.1")) is not None


def test_a_fail_open_keeper_lets_calls_through_holding_nothing(
    built: list[Any], redis_server: RedisServer, backend_context: BackendContext
) -> None:
    kept = keeper(
        built, outage_settings(redis_server, on_backend_error="fail_open"), backend_context
    )
    redis_server.stop()

    assert kept.reserve("openai", Decimal("0.1")) is None


def test_levels_say_when_redis_cannot_be_reached_whatever_the_policy(
    built: list[Any], redis_server: RedisServer, backend_context: BackendContext
) -> None:
    made = limiter(built, outage_settings(redis_server), backend_context, REQUESTS)
    redis_server.stop()

    with pytest.raises(
        BackendUnavailableError, match=r"^rate limiter: Redis at 127\.0\.0\.1:\d+/0 "
    ):
        made.levels()


def test_a_frozen_redis_costs_one_timeout_then_the_breaker_answers_at_once(
    built: list[Any], redis_server: RedisServer, backend_context: BackendContext,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    made = limiter(built, outage_settings(redis_server), backend_context, REQUESTS)
    assert made.acquire({"global/requests": 1}) == 0.0
    redis_server.freeze()
    try:
        with caplog.at_level(logging.WARNING, LOGGER):
            answers = [made.acquire({"global/requests": 1}) for _ in range(50)]
    finally:
        redis_server.thaw()

    assert answers == [0.0] * 50
    (warning,) = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert "Timeout" in warning or "timed out" in warning


def test_no_password_reaches_an_error(
    built: list[Any], redis_server: RedisServer, backend_context: BackendContext
) -> None:
    url = f"redis://:hunter2-secret@127.0.0.1:{redis_server.port}/0"
    made = limiter(
        built, {"redis_url": url, "on_backend_error": "fail_closed"}, backend_context, REQUESTS
    )
    redis_server.stop()

    with pytest.raises(BackendUnavailableError) as raised:
        made.acquire({"global/requests": 1})

    assert "hunter2" not in str(raised.value)
    assert raised.value.__context__ is None  # one line: no redis-py traceback chained to it


@pytest.mark.parametrize(
    ("url", "problem"),
    [(None, "is missing"), ("http://127.0.0.1:6379", "must be a redis://, rediss:// or unix://")],
)
def test_a_missing_or_foreign_url_is_a_config_error_naming_the_key(
    url: str | None, problem: str, backend_context: BackendContext
) -> None:
    settings = {} if url is None else {"redis_url": url}
    with pytest.raises(ConfigError, match=rf"^rate_limiting\.redis_url: .*{problem}"):
        make_redis_limiter({**settings, "rates": [REQUESTS]}, backend_context)


# ----------------------------------------------------------------------------- through the gateway


def gateway_on(
    server: RedisServer, tmp_path: Path, provider: ScriptedProvider, **limits: Any
) -> Gateway:
    data = {
        "providers": {"text": {"default": "scripted", "scripted": {"model": "m"}}},
        "caching": {"enabled": False},
        "rate_limiting": {
            "backend": "redis",
            "redis_url": server.url,
            "providers": {
                "scripted": {"cost_per_input_token": 0.001, "cost_per_output_token": 0.002}
            },
            **limits,
        },
    }
    manager = get_plugin_manager(
        entry_points=False, plugins=[("limiter-redis", redis_plugin), scripted_plugin(provider)]
    )
    return open_gateway(Config(data, project_dir=tmp_path / ".questfoundry"), manager)


ASK = Request(messages=[{"role": "user", "content": "hello"}], params={"max_tokens": 10})


@pytest.mark.parametrize(
    "limits",
    [
        {"global": {"requests_per_minute": 10}, "on_backend_error": "fail_closed"},
        {"global": {"cost_per_day": 1}},  # budgets fail closed by default
    ],
    ids=["rates", "budgets"],
)
def test_a_gateway_refuses_before_calling_while_redis_is_down_under_fail_closed(
    redis_server: RedisServer, tmp_path: Path, limits: dict[str, Any]
) -> None:
    provider = ScriptedProvider()
    with gateway_on(redis_server, tmp_path, provider, **limits) as gateway:
        gateway.generate(ASK)
        redis_server.stop()

        with pytest.raises(BackendUnavailableError, match=r"fail_closed\)$") as raised:
            gateway.generate(replace(ASK, messages=[{"role": "user", "content": "again"}]))

    assert provider.calls == 1  # nothing was sent for the refused call
    assert "\n" not in str(raised.value)


def test_a_gateway_calls_on_while_redis_is_down_under_fail_open(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    provider = ScriptedProvider()
    limits = {"global": {"requests_per_minute": 10, "cost_per_day": 1}}
    with gateway_on(
        redis_server, tmp_path, provider, on_backend_error="fail_open", **limits
    ) as gateway:
        redis_server.stop()
        replies = [
            gateway.generate(replace(ASK, messages=[{"role": "user", "content": str(n)}]))
            for n in range(3)
        ]

    assert provider.calls == 3 and all(reply.text for reply in replies)
