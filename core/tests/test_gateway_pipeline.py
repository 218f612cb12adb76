"""What the pipeline promises in both faces: observers, threads, loops, bounds, paid replies."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from questfoundry.builtins.memory_cache import MemoryCache
from questfoundry.config import Config
from questfoundry.contracts.errors import (
    ConfigError,
    NonRetriableProviderError,
    ProviderRateLimitError,
    RateLimitError,
    RetriableProviderError,
)
from questfoundry.contracts.hookspecs import hookimpl
from questfoundry.contracts.records import CacheStats, Chunk, Outcome, ProviderRequest, Request
from questfoundry.gateway import Gateway
from questfoundry.registry import get_plugin_manager
from questfoundry.runtime import open_gateway
from questfoundry.testing.clock import FakeClock
from questfoundry.testing.faces import ASYNC, SYNC, Face
from questfoundry.testing.scripted import ScriptedProvider, scripted_plugin

MakeGateway = Callable[..., Gateway]  #: see conftest.make_gateway


class Observer:
    """Records every ending and the thread it was seen on."""

    def __init__(self) -> None:
        self.events: list[tuple[Outcome, int]] = []

    @hookimpl
    def call_completed(self, event: Any) -> None:
        self.events.append((event.outcome, threading.get_ident()))

    @property
    def outcomes(self) -> list[Outcome]:
        return [outcome for outcome, _ in self.events]


class ThreadCache(MemoryCache):
    """A cache that says it blocks, and records the thread of every read and write."""

    capabilities = frozenset[str]()

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []

    def get(self, key: str) -> bytes | None:
        self.threads.append(threading.get_ident())
        return super().get(key)

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self.threads.append(threading.get_ident())
        super().set(key, value, ttl)


class Plugins:
    def __init__(self) -> None:
        self.cache = ThreadCache()

    @hookimpl
    def cache_backends(self) -> dict[str, Any]:
        return {"threads": lambda settings, context: self.cache}


@pytest.fixture
def observer() -> Observer:
    return Observer()


@pytest.fixture
def plugins() -> Plugins:
    return Plugins()


@pytest.fixture
def make(make_gateway: MakeGateway, observer: Observer, plugins: Plugins) -> MakeGateway:
    """A gateway observed by ``observer``, with cache ``threads`` available; sections merged."""

    def build(**sections: Any) -> Gateway:
        return make_gateway(sections, ("observer", observer), ("threads", plugins))

    return build


def ask(text: str = "hello", **kwargs: Any) -> Request:
    return Request(messages=[{"role": "user", "content": text}], **kwargs)


# ------------------------------------------------------------------ observers


def test_observers_see_a_miss_a_hit_and_an_error_once_each_on_the_callers_thread(
    gateway_face: Face, make: MakeGateway, provider: ScriptedProvider, observer: Observer
) -> None:
    gateway = make()
    gateway_face.generate(gateway, ask())
    gateway_face.generate(gateway, ask())
    provider.script.append(NonRetriableProviderError("no"))
    with pytest.raises(NonRetriableProviderError):
        gateway_face.generate(gateway, ask("fails"))
    assert observer.outcomes == [Outcome.MISS, Outcome.HIT, Outcome.ERROR]
    assert {thread for _, thread in observer.events} == {threading.get_ident()}


def test_observers_see_every_ending_of_a_stream(
    gateway_face: Face, make: MakeGateway, provider: ScriptedProvider, observer: Observer
) -> None:
    gateway = make()
    gateway_face.stream(gateway, ask("finished"))
    gateway_face.stream(gateway, ask("finished"))
    gateway_face.stream(gateway, ask("abandoned story"), stop_after=1)
    provider.script.append(NonRetriableProviderError("no"))
    with pytest.raises(NonRetriableProviderError):
        gateway_face.stream(gateway, ask("refused"))
    assert observer.outcomes == [
        Outcome.STREAM_FINISHED,
        Outcome.HIT,
        Outcome.STREAM_ABANDONED,
        Outcome.ERROR,
    ]
    assert {thread for _, thread in observer.events} == {threading.get_ident()}


class BreakingStream(ScriptedProvider):
    """Sends one chunk, then the connection drops."""

    def stream(self, request: ProviderRequest) -> Iterator[Chunk]:
        self._next(request)
        yield Chunk("Once upon")
        raise RetriableProviderError("connection reset")


def test_a_stream_that_breaks_after_its_first_chunk_is_observed_as_failed_and_not_retried(
    gateway_face: Face, tmp_path: Path, clock: FakeClock, observer: Observer
) -> None:
    broken = BreakingStream()
    config = Config(
        {"providers": {"text": {"default": "scripted", "scripted": {"model": "m1"}}}},
        None,
        tmp_path / ".questfoundry",
        frozenset(),
    )
    manager = get_plugin_manager(
        entry_points=False, plugins=[scripted_plugin(broken), ("observer", observer)]
    )
    with open_gateway(config, manager, clock=clock) as gateway:
        with pytest.raises(RetriableProviderError, match="connection reset"):
            gateway_face.stream(gateway, ask())
        assert broken.calls == 1
        assert observer.outcomes == [Outcome.STREAM_FAILED]
        assert gateway.cache is not None and gateway.cache.stats().entries == 0


def test_followers_of_a_flight_are_observed_as_coalesced(
    make: MakeGateway, observer: Observer
) -> None:
    gateway = make()
    SYNC.generate(gateway, ask("warm-up"))  # backends built, so no task waits on a thread

    async def many() -> None:
        await asyncio.gather(*(gateway.agenerate(ask()) for _ in range(8)))

    asyncio.run(many())
    assert observer.outcomes == [Outcome.MISS] * 2 + [Outcome.COALESCED] * 7


# ------------------------------------------------------------------ the cache


def test_a_miss_reads_the_cache_once(gateway_face: Face, make: MakeGateway) -> None:
    gateway = make()
    gateway_face.generate(gateway, ask())  # backends not built yet: read as a step
    assert gateway.cache is not None
    assert gateway.cache.stats() == CacheStats(1, gateway.cache.stats().bytes, 0, 1)
    gateway_face.generate(gateway, ask("another"))  # built: read in place by the face
    gateway_face.generate(gateway, ask("another"))
    stats = gateway.cache.stats()
    assert (stats.entries, stats.hits, stats.misses) == (2, 1, 2)


def test_blocking_cache_io_runs_off_the_event_loop(make: MakeGateway, plugins: Plugins) -> None:
    gateway = make(caching={"backend": "threads"})
    loop_threads: list[int] = []

    async def twice() -> None:
        loop_threads.append(threading.get_ident())
        await gateway.agenerate(ask())
        assert (await gateway.agenerate(ask())).cache_hit

    asyncio.run(twice())
    assert len(plugins.cache.threads) == 3  # get, set, get
    assert loop_threads[0] not in plugins.cache.threads


def test_a_non_blocking_cache_is_read_on_the_loop_without_a_thread(
    make: MakeGateway, plugins: Plugins
) -> None:
    plugins.cache.capabilities = frozenset({"non_blocking"})
    gateway = make(caching={"backend": "threads"})

    async def once() -> int:
        await gateway.agenerate(ask())
        return threading.get_ident()

    loop_thread = asyncio.run(once())
    assert set(plugins.cache.threads) == {loop_thread}


def test_one_gateway_serves_successive_event_loops_and_threads(
    make: MakeGateway, provider: ScriptedProvider, capfd: pytest.CaptureFixture[str]
) -> None:
    gateway = make()
    for text in ("a", "b", "c"):
        ASYNC.generate(gateway, ask(text))
    workers = [threading.Thread(target=ASYNC.generate, args=(gateway, ask(t))) for t in "de"]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    assert provider.calls == 5
    out, err = capfd.readouterr()
    assert out == err == ""


# ------------------------------------------------------------------ bounded waits


def test_a_retry_after_beyond_the_retry_budget_raises_at_once(
    gateway_face: Face, make: MakeGateway, provider: ScriptedProvider, clock: FakeClock
) -> None:
    provider.script.append(ProviderRateLimitError("slow down", retry_after=86_400))
    with pytest.raises(RateLimitError) as caught:
        gateway_face.generate(make(), ask())
    assert caught.value.retry_after == 86_400
    assert clock.slept == [] and provider.calls == 1


def test_a_zero_retry_after_falls_back_to_backoff(
    gateway_face: Face, make: MakeGateway, provider: ScriptedProvider, clock: FakeClock
) -> None:
    provider.script.append(ProviderRateLimitError("slow down", retry_after=0))
    reply = gateway_face.generate(make(), ask())
    assert reply.retries == 1
    assert len(clock.slept) == 1 and 0 <= clock.slept[0] <= 0.5


class SlowProvider(ScriptedProvider):
    """Every attempt takes ``seconds`` of the fake clock, then fails as retriable."""

    def __init__(self, clock: FakeClock, seconds: float) -> None:
        super().__init__()
        self.clock = clock
        self.seconds = seconds

    def _next(self, request: ProviderRequest) -> Any:
        self.requests.append(request)
        self.clock.advance(self.seconds)
        raise RetriableProviderError("timed out")


def test_the_call_deadline_bounds_every_attempt_and_the_retries(
    gateway_face: Face, tmp_path: Path, clock: FakeClock
) -> None:
    slow = SlowProvider(clock, 4.0)
    config = Config(
        {
            "providers": {"text": {"default": "scripted", "scripted": {"model": "m1"}}},
            "retry": {"deadline_seconds": 10, "max_retries": 20, "initial_delay_ms": 1},
        },
        None,
        tmp_path / ".questfoundry",
        frozenset(),
    )
    manager = get_plugin_manager(entry_points=False, plugins=[scripted_plugin(slow)])
    started = clock.monotonic()
    with (
        open_gateway(config, manager, clock=clock) as gateway,
        pytest.raises(RetriableProviderError),
    ):
        gateway_face.generate(gateway, ask())
    timeouts = [request.timeout for request in slow.requests]
    assert timeouts[0] == pytest.approx(10)
    assert all(t is not None and t <= 10 - 4 * i + 0.01 for i, t in enumerate(timeouts))
    assert clock.monotonic() - started <= 10 + 4  # no attempt starts after the deadline
    assert len(slow.requests) == 3


def test_a_provider_timeout_setting_is_each_attempts_deadline(
    gateway_face: Face, make: MakeGateway, provider: ScriptedProvider
) -> None:
    gateway = make(
        providers={
            "text": {"default": "scripted", "scripted": {"model": "m1", "timeout_seconds": 3}}
        }
    )
    gateway_face.generate(gateway, ask())
    assert provider.requests[0].timeout == 3


def test_a_limit_wait_past_the_deadline_raises_rate_limit_error(
    gateway_face: Face, make: MakeGateway, clock: FakeClock
) -> None:
    gateway = make(
        rate_limiting={"global": {"requests_per_minute": 1}, "max_wait_seconds": 600},
        retry={"deadline_seconds": 30},
    )
    gateway_face.generate(gateway, ask("a"))
    with pytest.raises(RateLimitError):
        gateway_face.generate(gateway, ask("b"))
    assert clock.slept == []


# ------------------------------------------------------------------ budgets that hold


def test_an_unpriced_model_under_a_budget_is_refused_before_sending(
    gateway_face: Face, make: MakeGateway, provider: ScriptedProvider
) -> None:
    gateway = make(
        rate_limiting={"global": {"cost_per_day": 0.001}, "providers": {"scripted": None}}
    )
    with pytest.raises(ConfigError, match="no known price") as caught:
        gateway_face.generate(gateway, ask())
    assert caught.value.path == "rate_limiting.providers.scripted"
    assert provider.calls == 0


def test_a_budgeted_request_without_max_tokens_is_capped_and_reserved_for_the_cap(
    gateway_face: Face, make: MakeGateway, provider: ScriptedProvider
) -> None:
    gateway = make(
        rate_limiting={
            "max_output_tokens": 200,
            "providers": {"scripted": {"cost_per_day": 1}},
        }
    )
    gateway_face.generate(gateway, ask())
    assert provider.requests[0].params["max_tokens"] == 200
    unbudgeted = make()
    gateway_face.generate(unbudgeted, ask("free"))
    assert "max_tokens" not in provider.requests[1].params


# ------------------------------------------------------------------ paid replies are kept


class BrokenLedger:
    """A ledger whose every write fails, as a read-only or locked file would."""

    capabilities = frozenset[str]()

    def intend(self, *args: Any, **kwargs: Any) -> int:
        raise OSError("attempt to write a readonly database")

    def record(self, *args: Any) -> None:
        raise OSError("attempt to write a readonly database")

    def record_hit(self, *args: Any) -> None:
        raise OSError("attempt to write a readonly database")

    def close(self) -> None:
        pass


def test_a_paid_reply_is_returned_and_cached_when_the_ledger_cannot_be_written(
    gateway_face: Face,
    make: MakeGateway,
    provider: ScriptedProvider,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gateway = make()
    vars(gateway.runtime)["ledger"] = BrokenLedger()
    with caplog.at_level(logging.WARNING, "questfoundry.gateway"):
        first = gateway_face.generate(gateway, ask())
        second = gateway_face.generate(gateway, ask())
    assert first.text == "echo: hello" and first.cost == Decimal("0.072")
    assert second.cache_hit and provider.calls == 1
    warnings = [r.getMessage() for r in caplog.records]
    assert sum("not recorded in the cost ledger" in m for m in warnings) == 1


def test_a_hot_cache_value_is_parsed_once_yet_every_hit_is_its_own_reply(
    make: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    import questfoundry.gateway.codec

    parsed: list[bytes] = []
    original = questfoundry.gateway.codec.decode

    def counting(raw: bytes, provider: str) -> Any:
        parsed.append(raw)
        return original(raw, provider)

    monkeypatch.setattr(questfoundry.gateway.codec, "decode", counting)
    gateway = make()
    SYNC.generate(gateway, ask())
    first = SYNC.generate(gateway, ask(role="scene_smith"))
    second = SYNC.generate(gateway, ask(role="gatekeeper"))
    assert len(parsed) == 1
    assert first is not second and first.text == second.text
    assert (first.role, second.role) == ("scene_smith", "gatekeeper")


def test_identical_requests_racing_a_cold_start_still_make_one_provider_call(
    make: MakeGateway, provider: ScriptedProvider, observer: Observer
) -> None:
    gateway = make()  # nothing built yet: every task first waits on a thread for the backends

    async def many() -> None:
        await asyncio.gather(*(gateway.agenerate(ask()) for _ in range(32)))

    asyncio.run(many())
    assert provider.calls == 1
    assert observer.outcomes.count(Outcome.MISS) == 1
    assert set(observer.outcomes) <= {Outcome.MISS, Outcome.COALESCED, Outcome.HIT}


def test_a_stream_read_twice_says_so_and_keeps_its_reply(make: MakeGateway) -> None:
    stream = make().stream(ask("once"))
    assert "".join(stream) == "echo: once"
    with pytest.raises(RuntimeError, match="read already"):
        list(stream)
    assert stream.reply is not None and stream.reply.text == "echo: once"
