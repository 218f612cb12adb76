"""The work a call leaves behind (stores, lock releases, limiter reconciling) and the flights' board
it relies on: what runs when, in which order, and what a caller sees meanwhile."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from questfoundry.builtins.memory_cache import MemoryCache
from questfoundry.builtins.token_bucket import TokenBucketLimiter
from questfoundry.contracts.hookspecs import hookimpl
from questfoundry.contracts.records import Request
from questfoundry.gateway import Gateway
from questfoundry.gateway.deferred import PATIENCE, Deferred
from questfoundry.gateway.flights import REMEMBERED, Flights
from questfoundry.testing.faces import Face
from questfoundry.testing.scripted import ScriptedProvider

MakeGateway = Callable[..., Gateway]  #: see conftest.make_gateway


def test_work_runs_in_the_order_it_was_queued_off_the_callers_thread() -> None:
    deferred = Deferred()
    seen: list[tuple[int, int]] = []
    for number in range(5):
        deferred.soon(lambda n=number: seen.append((n, threading.get_ident())))
    deferred.later(0, lambda: seen.append((5, threading.get_ident())))

    deferred.drain()

    assert [number for number, _ in seen] == [5, 0, 1, 2, 3, 4]  # the later one fell due first
    assert {thread for _, thread in seen} != {threading.get_ident()}


def test_later_work_waits_for_its_time_unless_drained() -> None:
    deferred = Deferred()
    ran = threading.Event()
    deferred.later(3600, ran.set)
    deferred.soon(lambda: None)
    time.sleep(0.05)  # the thread is free: only the hour keeps the later work back
    assert not ran.is_set()

    deferred.drain()

    assert ran.is_set()


def test_work_runs_while_a_caller_waits_on_a_provider_else_after_a_moment() -> None:
    deferred = Deferred()
    ran = threading.Event()
    deferred.later(3600, lambda: None)  # the thread is up, with nothing due for an hour
    deferred.soon(ran.set)

    with deferred.waiting():
        assert ran.wait(5)  # a caller waits: the work runs at once

    late = threading.Event()
    started = time.monotonic()
    deferred.soon(late.set)
    assert late.wait(5)  # nobody waits: it runs within PATIENCE
    assert time.monotonic() - started >= PATIENCE * 0.9
    deferred.drain()


def test_failing_work_is_logged_and_the_rest_still_runs(caplog: pytest.LogCaptureFixture) -> None:
    deferred = Deferred()
    ran = threading.Event()
    deferred.soon(lambda: 1 / 0)
    deferred.soon(ran.set)

    deferred.drain()

    assert ran.is_set()
    assert "deferred gateway work failed" in caplog.text


def test_a_landing_tells_only_its_own_key_that_it_may_be_cached_now() -> None:
    flights: Flights[str] = Flights()
    mark = flights.landings
    flight, leader = flights.join("a")
    assert leader
    flights.land("a", flight, "answer", None)

    assert flights.landed_since("a", mark)
    assert not flights.landed_since("b", mark)  # a leader of b need not read the cache again


def test_a_forgotten_key_is_assumed_to_have_landed() -> None:
    flights: Flights[str] = Flights()
    mark = flights.landings
    for number in range(REMEMBERED + 1):
        flight, _ = flights.join(f"key-{number}")
        flights.land(f"key-{number}", flight, "answer", None)

    assert flights.landed_since("key-0", mark)  # dropped from the table: read again to be safe
    assert not flights.landed_since(f"key-{REMEMBERED}", flights.landings)


class CountingLimiter(TokenBucketLimiter):
    """A limiter that says it blocks, counting its reconciliations."""

    capabilities = frozenset[str]()

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.adjusted: list[dict[str, float]] = []

    def adjust(self, amounts: Any) -> None:
        self.adjusted.append(dict(amounts))
        super().adjust(amounts)


class CountingPlugin:
    def __init__(self) -> None:
        self.made: list[CountingLimiter] = []

    @hookimpl
    def limiter_strategies(self) -> dict[str, Any]:
        def make(settings: Any, context: Any) -> CountingLimiter:
            self.made.append(CountingLimiter(settings["rates"], context.clock))
            return self.made[-1]

        return {"counting": make}


def test_a_blocking_limiter_is_reconciled_once_for_the_calls_of_a_moment(
    gateway_face: Face, make_gateway: MakeGateway
) -> None:
    plugin = CountingPlugin()
    limits = {"backend": "counting", "global": {"tokens_per_hour": 100_000}}
    gateway = make_gateway({"rate_limiting": limits}, ("counting", plugin))
    for number in range(5):
        gateway_face.generate(gateway, Request(prompt=f"question {number}"))

    gateway.runtime.deferred.drain()

    (limiter,) = plugin.made
    assert len(limiter.adjusted) == 1
    (level,) = limiter.levels()
    assert level.available == pytest.approx(100_000 - 5 * 42)  # each call's real usage: 12 + 30


def test_an_identical_request_gets_the_reply_still_on_its_way_to_a_blocking_cache(
    make_gateway: MakeGateway, provider: ScriptedProvider, caplog: pytest.LogCaptureFixture
) -> None:
    held = threading.Event()

    class SlowCache(MemoryCache):
        capabilities = frozenset[str]()  # it blocks: stores come after the reply

        def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
            held.wait(10)  # the store is slow: the second request comes first
            super().set(key, value, ttl)

    class SlowPlugin:
        @hookimpl
        def cache_backends(self) -> dict[str, Any]:
            return {"slow": lambda settings, context: SlowCache()}

    gateway = make_gateway({"caching": {"backend": "slow"}}, ("slow", SlowPlugin()))
    ask = Request(prompt="the lantern room")
    with caplog.at_level(logging.WARNING):
        first = gateway.generate(ask)
        second = gateway.generate(ask)
        held.set()

    assert provider.calls == 1
    assert not first.cache_hit and second.cache_hit and second.text == first.text
    assert second.cost == 0 and second.saved == first.cost
