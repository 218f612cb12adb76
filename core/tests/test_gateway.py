"""The gateway pipeline, driven by a scripted provider and a fake clock."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from questfoundry.contracts.errors import (
    CostLimitExceededError,
    NonRetriableProviderError,
    ProviderRateLimitError,
    RateLimitError,
    RetriableProviderError,
)
from questfoundry.contracts.hookspecs import hookimpl
from questfoundry.contracts.records import CacheMode, ProviderReply, Request, Usage
from questfoundry.gateway import Gateway
from questfoundry.testing.clock import FakeClock
from questfoundry.testing.faces import ASYNC, SYNC, Face
from questfoundry.testing.scripted import IMAGE, ScriptedProvider, scripted_plugin

MakeGateway = Callable[..., Gateway]


def ask(text: str = "hello", **kwargs: Any) -> Request:
    return Request(messages=[{"role": "user", "content": text}], **kwargs)


# ------------------------------------------------------------------ caching


def test_second_identical_request_is_served_from_cache(
    gateway_face: Face, make_gateway: MakeGateway, provider: ScriptedProvider
) -> None:
    gateway = make_gateway()
    first = gateway_face.generate(gateway, ask())
    second = gateway_face.generate(gateway, ask())
    assert provider.calls == 1
    assert not first.cache_hit and second.cache_hit
    assert second.text == first.text == "echo: hello"
    assert second.cost == 0 and second.saved == first.cost == Decimal("0.072")


def test_a_different_parameter_is_a_different_entry(
    gateway_face: Face, make_gateway: MakeGateway, provider: ScriptedProvider
) -> None:
    gateway = make_gateway()
    gateway_face.generate(gateway, ask(params={"temperature": 0.7}))
    gateway_face.generate(gateway, ask(params={"temperature": 0.70}))
    gateway_face.generate(gateway, ask(params={"temperature": 0.8}))
    assert provider.calls == 2


@pytest.mark.parametrize(
    ("mode", "calls", "stored"),
    [
        (CacheMode.REFRESH, 2, True),
        (CacheMode.NO_STORE, 1, False),
        (CacheMode.OFF, 2, False),
    ],
)
def test_cache_modes_decide_reading_and_writing(
    gateway_face: Face,
    make_gateway: MakeGateway,
    provider: ScriptedProvider,
    mode: CacheMode,
    calls: int,
    stored: bool,
) -> None:
    gateway = make_gateway()
    gateway_face.generate(gateway, ask("seed"))  # cached under the default mode
    reply = gateway_face.generate(gateway, ask("seed", cache=mode))
    assert provider.calls == calls
    assert reply.cache_hit is (calls == 1)
    fresh = gateway_face.generate(gateway, ask("fresh", cache=mode))
    assert gateway.cache is not None
    assert (gateway.cache.get(fresh.key) is not None) is stored


def test_cache_entries_expire_after_their_ttl(
    gateway_face: Face, make_gateway: MakeGateway, provider: ScriptedProvider, clock: FakeClock
) -> None:
    gateway = make_gateway({"caching": {"ttl_seconds": 100}})
    gateway_face.generate(gateway, ask())
    clock.advance(99)
    assert gateway_face.generate(gateway, ask()).cache_hit
    clock.advance(2)
    assert not gateway_face.generate(gateway, ask()).cache_hit
    gateway_face.generate(gateway, ask("short", cache_ttl=5))
    clock.advance(6)
    assert not gateway_face.generate(gateway, ask("short")).cache_hit
    assert provider.calls == 4


def test_per_provider_settings_can_turn_the_cache_off(
    gateway_face: Face, make_gateway: MakeGateway, provider: ScriptedProvider
) -> None:
    gateway = make_gateway({"caching": {"per_provider": {"scripted": {"enabled": False}}}})
    gateway_face.generate(gateway, ask())
    assert not gateway_face.generate(gateway, ask()).cache_hit
    assert provider.calls == 2


def test_a_corrupt_cache_entry_is_a_miss(
    gateway_face: Face, make_gateway: MakeGateway, provider: ScriptedProvider
) -> None:
    gateway = make_gateway()
    key = gateway_face.generate(gateway, ask()).key
    assert gateway.cache is not None
    gateway.cache.set(key, b"\x80not json", None)
    reply = gateway_face.generate(gateway, ask())
    assert not reply.cache_hit and reply.text == "echo: hello"
    assert gateway_face.generate(gateway, ask()).cache_hit  # the miss rewrote a good entry


class BrokenCache:
    capabilities = frozenset[str]()

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise OSError("disk on fire")

        return fail

    def close(self) -> None:
        pass


class BrokenCachePlugin:
    @hookimpl
    def cache_backends(self) -> dict[str, Any]:
        return {"broken": lambda settings, context: BrokenCache()}


def test_a_cache_backend_that_raises_is_bypassed_with_one_warning(
    gateway_face: Face,
    make_gateway: MakeGateway,
    provider: ScriptedProvider,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gateway = make_gateway({"caching": {"backend": "broken"}}, ("broken", BrokenCachePlugin()))
    with caplog.at_level(logging.WARNING, "questfoundry.gateway"):
        assert gateway_face.generate(gateway, ask()).text == "echo: hello"
        assert gateway_face.generate(gateway, ask()).text == "echo: hello"
    assert provider.calls == 2
    messages = [r.getMessage() for r in caplog.records]
    assert sum("cache read failed" in m for m in messages) == 1
    assert sum("cache write failed" in m for m in messages) == 1


@pytest.mark.slow
def test_64_concurrent_identical_requests_make_one_provider_call(
    gateway_face: Face,
    make_gateway: MakeGateway,
) -> None:
    gate = threading.Event()
    slow = ScriptedProvider(gate=gate)
    gateway = make_gateway({}, scripted_plugin(slow, "slow"))
    request = ask(provider="slow", model="m1")
    started = threading.Barrier(65)
    replies = []

    def worker() -> None:
        started.wait()
        replies.append(gateway_face.generate(gateway, request))

    threads = [threading.Thread(target=worker) for _ in range(64)]
    for thread in threads:
        thread.start()
    started.wait()
    threading.Timer(0.2, gate.set).start()
    for thread in threads:
        thread.join(10)
    assert slow.calls == 1
    assert len(replies) == 64
    assert sum(not r.coalesced and not r.cache_hit for r in replies) == 1
    assert {r.text for r in replies} == {"echo: hello"}


async def test_64_concurrent_identical_async_requests_make_one_provider_call(
    make_gateway: MakeGateway, provider: ScriptedProvider
) -> None:
    gateway = make_gateway()
    await gateway.agenerate(ask("warm-up"))  # backends built: no task waits on a thread for them
    replies = await asyncio.gather(*(gateway.agenerate(ask()) for _ in range(64)))
    assert provider.calls == 2
    assert sum(r.coalesced for r in replies) == 63


# ------------------------------------------------------------------ limits and budgets


def test_on_limit_raise_throws_rate_limit_error_with_retry_after(
    gateway_face: Face, make_gateway: MakeGateway, provider: ScriptedProvider
) -> None:
    gateway = make_gateway(
        {"rate_limiting": {"on_limit": "raise", "global": {"requests_per_minute": 2}}}
    )
    gateway_face.generate(gateway, ask("a"))
    gateway_face.generate(gateway, ask("b"))
    with pytest.raises(RateLimitError) as caught:
        gateway_face.generate(gateway, ask("c"))
    assert caught.value.retry_after == pytest.approx(30.0)
    assert provider.calls == 2


def test_on_limit_wait_sleeps_until_admitted(
    gateway_face: Face, make_gateway: MakeGateway, provider: ScriptedProvider, clock: FakeClock
) -> None:
    gateway = make_gateway(
        {"rate_limiting": {"providers": {"scripted": {"requests_per_minute": 1}}}}
    )
    gateway_face.generate(gateway, ask("a"))
    reply = gateway_face.generate(gateway, ask("b"))
    assert 60.0 <= reply.waited <= 60.02  # the wait, plus at most 20 ms of jitter
    assert clock.slept == [reply.waited]


def test_a_wait_longer_than_max_wait_seconds_raises(
    gateway_face: Face, make_gateway: MakeGateway
) -> None:
    gateway = make_gateway(
        {"rate_limiting": {"max_wait_seconds": 10, "global": {"requests_per_minute": 1}}}
    )
    gateway_face.generate(gateway, ask("a"))
    with pytest.raises(RateLimitError):
        gateway_face.generate(gateway, ask("b"))


def test_tokens_are_reconciled_with_real_usage(
    gateway_face: Face, make_gateway: MakeGateway
) -> None:
    gateway = make_gateway({"rate_limiting": {"global": {"tokens_per_hour": 10_000}}})
    gateway_face.generate(gateway, ask(params={"max_tokens": 500}))
    assert gateway.limiter is not None
    gateway.runtime.deferred.drain()  # a limiter that blocks is reconciled after the reply
    (level,) = [b for b in gateway.limiter.levels() if b.key == "global/tokens"]
    assert level.available == pytest.approx(10_000 - 42)  # the scripted usage: 12 + 30


def test_a_cache_hit_takes_nothing_from_limits_or_budgets(
    gateway_face: Face, make_gateway: MakeGateway
) -> None:
    gateway = make_gateway(
        {
            "rate_limiting": {
                "max_output_tokens": 100,
                "global": {"requests_per_minute": 5, "cost_per_day": 5},
            }
        }
    )
    gateway_face.generate(gateway, ask())
    assert gateway.limiter is not None
    before = {b.key: b.available for b in gateway.limiter.levels()}
    assert gateway.runtime.budgets is not None
    spent = [level.spent for level in gateway.runtime.budgets.levels()]
    for _ in range(10):
        assert gateway_face.generate(gateway, ask()).cache_hit
    assert {b.key: b.available for b in gateway.limiter.levels()} == before
    assert [level.spent for level in gateway.runtime.budgets.levels()] == spent
    gateway.ledger.flush()
    (row,) = gateway.ledger.report("provider")
    assert row.calls == 11 and row.hits == 10
    assert row.saved == Decimal("0.72")


def test_a_budget_is_refused_before_the_request_is_sent(
    gateway_face: Face, make_gateway: MakeGateway, provider: ScriptedProvider
) -> None:
    # each call is estimated at (2+4+1)*0.001 + 100*0.002 = 0.207 and costs 0.072
    gateway = make_gateway({"rate_limiting": {"providers": {"scripted": {"cost_per_day": 0.25}}}})
    request = ask("x", params={"max_tokens": 100})
    gateway_face.generate(gateway, request)
    with pytest.raises(CostLimitExceededError):
        gateway_face.generate(gateway, ask("y", params={"max_tokens": 100}))
    assert provider.calls == 1


def test_restarting_never_resets_a_budget(
    gateway_face: Face, make_gateway: MakeGateway, provider: ScriptedProvider
) -> None:
    budget = {"rate_limiting": {"global": {"cost_per_month": 0.1}}}
    gateway_face.generate(make_gateway(budget), ask("x", params={"max_tokens": 10}))
    with pytest.raises(CostLimitExceededError):
        gateway_face.generate(make_gateway(budget), ask("y", params={"max_tokens": 30}))
    assert provider.calls == 1


# ------------------------------------------------------------------ retries


def test_retriable_failures_are_retried_honouring_retry_after(
    gateway_face: Face, make_gateway: MakeGateway, provider: ScriptedProvider, clock: FakeClock
) -> None:
    provider.script.extend(
        [RetriableProviderError("503"), ProviderRateLimitError("slow down", retry_after=7)]
    )
    reply = gateway_face.generate(make_gateway(), ask())
    assert reply.retries == 2 and reply.text == "echo: hello"
    assert provider.calls == 3
    assert len(clock.slept) == 2 and clock.slept[1] == 7
    assert 0 <= clock.slept[0] <= 0.5


def test_each_retry_passes_the_limiter_again(
    gateway_face: Face, make_gateway: MakeGateway, provider: ScriptedProvider
) -> None:
    provider.script.extend([RetriableProviderError("503"), RetriableProviderError("503")])
    gateway = make_gateway({"rate_limiting": {"global": {"requests_per_minute": 10}}})
    gateway_face.generate(gateway, ask())
    assert gateway.limiter is not None
    (level,) = [b for b in gateway.limiter.levels() if b.key == "global/requests"]
    assert level.available == pytest.approx(7, abs=0.5)  # plus the refill while backing off


def test_non_retriable_failures_fail_at_once(
    gateway_face: Face, make_gateway: MakeGateway, provider: ScriptedProvider, clock: FakeClock
) -> None:
    provider.script.append(NonRetriableProviderError("bad key", status_code=401))
    with pytest.raises(NonRetriableProviderError):
        gateway_face.generate(make_gateway(), ask())
    assert provider.calls == 1 and clock.slept == []


def test_retries_stop_after_max_retries(
    gateway_face: Face, make_gateway: MakeGateway, provider: ScriptedProvider
) -> None:
    provider.script.extend([RetriableProviderError("down")] * 5)
    with pytest.raises(RetriableProviderError):
        gateway_face.generate(make_gateway({"retry": {"max_retries": 2}}), ask())
    assert provider.calls == 3


# ------------------------------------------------------------------ cost, ledger, observers


def test_a_model_nobody_can_price_is_recorded_as_unknown_with_one_warning(
    gateway_face: Face, make_gateway: MakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = make_gateway({"rate_limiting": {"providers": {"scripted": None}}})
    with caplog.at_level(logging.WARNING, "questfoundry.gateway"):
        assert gateway_face.generate(gateway, ask("a")).cost is None
        assert gateway_face.generate(gateway, ask("b")).cost is None
    assert sum("no price known" in r.getMessage() for r in caplog.records) == 1
    (row,) = gateway.ledger.report("provider")
    assert row.unknown_cost_calls == 2


def test_every_call_is_in_the_ledger_by_role(gateway_face: Face, make_gateway: MakeGateway) -> None:
    gateway = make_gateway()
    gateway_face.generate(gateway, ask("a", role="scene_smith"))
    gateway_face.generate(gateway, ask("a", role="scene_smith"))
    gateway_face.generate(gateway, ask("b", role="gatekeeper"))
    gateway.ledger.flush()
    rows = {row.key: row for row in gateway.ledger.report("role")}
    assert rows["scene_smith"].calls == 2 and rows["scene_smith"].hits == 1
    assert rows["gatekeeper"].cost == Decimal("0.072")


class Observer:
    def __init__(self) -> None:
        self.events: list[Any] = []

    @hookimpl
    def call_completed(self, event: Any) -> None:
        self.events.append(event)


def test_observers_see_hits_misses_and_failures(
    gateway_face: Face, make_gateway: MakeGateway, provider: ScriptedProvider
) -> None:
    observer = Observer()
    gateway = make_gateway({}, ("observer", observer))
    gateway_face.generate(gateway, ask())
    gateway_face.generate(gateway, ask())
    provider.script.append(NonRetriableProviderError("no"))
    with pytest.raises(NonRetriableProviderError):
        gateway_face.generate(gateway, ask("fails"))
    hits = [e.reply.cache_hit if e.reply else None for e in observer.events]
    assert hits == [False, True, None]
    assert isinstance(observer.events[2].error, NonRetriableProviderError)


# ------------------------------------------------------------------ roles, images, async, streams


def test_roles_use_their_own_provider_model_and_parameters(
    gateway_face: Face, make_gateway: MakeGateway, provider: ScriptedProvider
) -> None:
    gateway = make_gateway(
        {"roles": {"gatekeeper": {"model": "m2", "temperature": 0.2, "max_tokens": 100}}}
    )
    gateway_face.generate(gateway, ask(role="gatekeeper"))
    gateway_face.generate(gateway, ask(role="scene_smith"))
    gateway_face.generate(gateway, ask(role="gatekeeper", model="m3", params={"temperature": 0.9}))
    models = [(r.model, dict(r.params)) for r in provider.requests]
    assert models == [
        ("m2", {"temperature": 0.2, "max_tokens": 100}),
        ("m1", {}),
        ("m3", {"temperature": 0.9, "max_tokens": 100}),
    ]


def test_image_roles_get_image_bytes_that_survive_the_cache(
    gateway_face: Face, make_gateway: MakeGateway, provider: ScriptedProvider
) -> None:
    gateway = make_gateway(
        {"providers": {"image": {"default": "scripted", "scripted": {"model": "img"}}}}
    )
    first = gateway_face.generate(gateway, Request(role="illustrator", prompt="a lighthouse"))
    second = gateway_face.generate(gateway, Request(role="illustrator", prompt="a lighthouse"))
    assert provider.requests[0].kind == "image"
    assert second.cache_hit and second.image == first.image == IMAGE


def test_sync_and_async_calls_share_one_cache(
    make_gateway: MakeGateway, provider: ScriptedProvider
) -> None:
    gateway = make_gateway()
    first = ASYNC.generate(gateway, ask())
    second = SYNC.generate(gateway, ask())
    assert second.cache_hit and second.text == first.text
    assert provider.calls == 1


def test_a_stream_is_replayed_from_the_cache_in_order(
    gateway_face: Face, make_gateway: MakeGateway, provider: ScriptedProvider
) -> None:
    gateway = make_gateway()
    first = gateway_face.stream(gateway, ask("tell me a story"))
    assert "".join(first.pieces) == "echo: tell me a story" and len(first.pieces) > 1
    assert first.reply is not None and first.reply.usage == Usage(12, 30)
    replay = gateway_face.stream(gateway, ask("tell me a story"))
    assert replay.pieces == first.pieces
    assert replay.reply is not None and replay.reply.cache_hit
    assert gateway_face.generate(gateway, ask("tell me a story")).cache_hit
    assert provider.calls == 1


def test_an_abandoned_stream_is_recorded_but_never_stored(
    gateway_face: Face, make_gateway: MakeGateway, provider: ScriptedProvider
) -> None:
    gateway = make_gateway()
    seen = gateway_face.stream(gateway, ask("long story"), stop_after=1)
    assert len(seen.pieces) == 1
    assert seen.reply is not None and seen.reply.text == seen.pieces[0]
    assert not gateway_face.generate(gateway, ask("long story")).cache_hit
    assert provider.calls == 2
    (row,) = gateway.ledger.report("provider")
    assert row.calls == 2 and row.hits == 0


def test_sync_and_async_streams_share_one_cache(
    make_gateway: MakeGateway, provider: ScriptedProvider
) -> None:
    gateway = make_gateway()
    chunks = ASYNC.stream(gateway, ask("async story")).pieces
    assert "".join(chunks) == "echo: async story"
    assert SYNC.stream(gateway, ask("async story")).pieces == chunks
    assert provider.calls == 1


def test_a_provider_reply_object_from_the_script_is_passed_through(
    gateway_face: Face, make_gateway: MakeGateway, provider: ScriptedProvider
) -> None:
    provider.script.append(ProviderReply("m1-2025", text="scripted!", usage=Usage(1, 2, 1)))
    reply = gateway_face.generate(make_gateway(), ask())
    assert reply.text == "scripted!" and reply.model == "m1-2025"
    assert reply.usage.cached_input_tokens == 1
