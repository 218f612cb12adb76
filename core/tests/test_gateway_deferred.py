"""Work a call leaves for later (a blocking limiter's reconciling), and the flights' board: what
runs when and in which order, and which landings send a leader back to the cache."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from questfoundry.builtins.token_bucket import TokenBucketLimiter
from questfoundry.contracts.hookspecs import hookimpl
from questfoundry.contracts.records import Request
from questfoundry.gateway import Gateway, books
from questfoundry.gateway.deferred import Deferred
from questfoundry.gateway.flights import REMEMBERED, Flights
from questfoundry.testing.faces import Face

MakeGateway = Callable[..., Gateway]  #: see conftest.make_gateway


def test_work_runs_when_due_in_that_order_off_the_callers_thread() -> None:
    deferred = Deferred()
    seen: list[tuple[int, int]] = []
    for number, seconds in enumerate((60.0, 30.0, 0.0)):  # apart, however slow the pushes
        deferred.later(seconds, lambda n=number: seen.append((n, threading.get_ident())))

    deferred.drain()

    assert [number for number, _ in seen] == [2, 1, 0]
    assert {thread for _, thread in seen} != {threading.get_ident()}


def test_later_work_waits_for_its_time_unless_drained() -> None:
    deferred = Deferred()
    ran, soon = threading.Event(), threading.Event()
    deferred.later(3600, ran.set)
    deferred.later(0, soon.set)
    assert soon.wait(5)
    assert not ran.is_set()  # the thread is free: only the hour keeps this back

    deferred.drain()

    assert ran.is_set()


def test_failing_work_is_logged_and_the_rest_still_runs(caplog: pytest.LogCaptureFixture) -> None:
    deferred = Deferred()
    ran = threading.Event()
    deferred.later(0, lambda: 1 / 0)
    deferred.later(0, ran.set)

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
    gateway_face: Face, make_gateway: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "a moment" made long, so the five calls fall within it however busy the machine is
    monkeypatch.setattr(books, "RECONCILE_SECONDS", 60.0)
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
