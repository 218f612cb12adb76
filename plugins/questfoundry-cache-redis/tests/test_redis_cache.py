"""The ``redis`` cache backend on a real Redis: conformance, namespaces, locks, outages.

The conformance suite and most tests use the shared test Redis under a key prefix of their own
(``redis_prefix``); the outage tests start a private ``redis-server`` (``redis_server``) and
really stop, restart and freeze it under calls through the gateway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from questfoundry_cache_redis import plugin as redis_plugin
from questfoundry_cache_redis.breaker import Breaker
from questfoundry_cache_redis.cache import RedisCache
from questfoundry_cache_redis.plugin import make_redis_cache

from questfoundry.kit import (
    BackendContext,
    BackendUnavailableError,
    CacheBackend,
    Capability,
    ConfigError,
    Request,
)
from questfoundry.testing.app import Config, Gateway, get_plugin_manager, open_gateway
from questfoundry.testing.cache_contract import AdvanceTime, CacheBackendContract, Reopen
from questfoundry.testing.clock import FakeClock
from questfoundry.testing.contract import replaces_standard_test
from questfoundry.testing.faces import Face
from questfoundry.testing.redis import RedisServer, SilentServer, client, free_port
from questfoundry.testing.scripted import ScriptedProvider, scripted_plugin

LOGGER = "questfoundry.cache.redis"
#: generous timeouts for tests of behaviour on a healthy (if busy) Redis, not of outages
PATIENT = {"socket_timeout": 2.0, "connect_timeout": 2.0}

Make = Callable[..., RedisCache]


@pytest.fixture
def make(redis_url: str, redis_prefix: str, backend_context: BackendContext) -> Iterator[Make]:
    """Build Redis caches under this test's prefix (namespace ``test`` unless told); closes them."""
    built: list[RedisCache] = []

    def build(namespace: str = "test", **settings: Any) -> RedisCache:
        settings = {"redis_url": redis_url, "key_prefix": redis_prefix, **PATIENT, **settings}
        context = BackendContext(backend_context.project_dir, namespace, backend_context.clock)
        built.append(make_redis_cache(settings, context))
        return built[-1]

    yield build
    for cache in built:
        cache.close()


@pytest.mark.redis
class TestRedisCache(CacheBackendContract):
    @pytest.fixture
    def cache(self, make: Make) -> CacheBackend:
        return make()

    @pytest.fixture
    def advance_time(self, redis_client: Any, redis_prefix: str) -> AdvanceTime:
        """Redis measures TTLs on its own clock: shorten every entry's TTL instead."""

        def advance(seconds: float) -> None:
            for name in redis_client.scan_iter(match=redis_prefix + "*"):
                left = redis_client.pttl(name)
                if left > 0:
                    if left - seconds * 1000 <= 0:
                        redis_client.delete(name)  # what Redis itself does when the time comes
                    else:
                        redis_client.pexpire(name, int(left - seconds * 1000))

        return advance

    @pytest.fixture
    def reopen(self, make: Make) -> Reopen:
        def again(cache: CacheBackend) -> CacheBackend:
            cache.close()
            return make()

        return again

    @pytest.fixture
    def unavailable_cache(self, make: Make) -> CacheBackend:
        return make(redis_url=f"redis://127.0.0.1:{free_port()}/0")

    @replaces_standard_test("Redis drops expired entries itself: prune finds none left")
    def test_prune_removes_expired_entries_only(
        self, cache: CacheBackend, advance_time: AdvanceTime
    ) -> None:
        cache.set("short", b"v", ttl=10)
        cache.set("long", b"v", ttl=1000)
        cache.set("forever", b"v")
        advance_time(11)
        assert cache.prune() == 0
        assert cache.stats().entries == 2
        assert cache.get("short") is None
        assert cache.get("long") == b"v"
        assert cache.get("forever") == b"v"


# ----------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("settings", "path"),
    [
        ({"redis_url": "http://localhost:6379"}, "caching.redis_url"),
        ({"redis_url": "redis://localhost:notaport"}, "caching.redis_url"),
        ({"socket_timeout": 0}, "caching.socket_timeout"),
        ({"connect_timeout": "fast"}, "caching.connect_timeout"),
        ({"breaker_failures": 1.5}, "caching.breaker_failures"),
        ({"breaker_cooldown_seconds": -1}, "caching.breaker_cooldown_seconds"),
    ],
)
def test_bad_settings_are_config_errors_naming_the_key(
    backend_context: BackendContext, settings: dict[str, Any], path: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        make_redis_cache(settings, backend_context)
    assert caught.value.path == path


def test_messages_name_the_redis_without_its_password(
    backend_context: BackendContext, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"redis://user:s3cret-word@127.0.0.1:{free_port()}/3"
    cache = make_redis_cache({"redis_url": url}, backend_context)
    with caplog.at_level(logging.DEBUG, LOGGER):
        assert cache.get("k") is None
        with pytest.raises(BackendUnavailableError) as caught:
            cache.stats()
    cache.close()
    logged = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert logged
    said = [str(caught.value), repr(cache), *logged]
    assert all("s3cret" not in text and "user" not in text for text in said), said
    assert f"127.0.0.1:{url.rsplit(':', maxsplit=1)[-1]}" in str(caught.value)  # host:port/db


# ----------------------------------------------------------------------------- what is stored


@pytest.mark.redis
def test_values_are_stored_as_the_same_bytes_with_their_ttl(make: Make, redis_client: Any) -> None:
    cache = make()
    cache.set("timed", b'{"text": "hi"}', ttl=30)
    cache.set("kept", memoryview(b"\x00\xff"))
    ((timed,), (kept,)) = (
        list(redis_client.scan_iter(match=f"*:cache:e:{name}")) for name in ("timed", "kept")
    )
    assert redis_client.get(timed) == b'{"text": "hi"}'
    assert 0 < redis_client.pttl(timed) <= 30_000
    assert (redis_client.get(kept), redis_client.pttl(kept)) == (b"\x00\xff", -1)


@pytest.mark.redis
@pytest.mark.parametrize("value", ["text", {"a": 1}, 42], ids=["str", "dict", "int"])
def test_values_that_are_not_bytes_are_refused_never_serialised(make: Make, value: Any) -> None:
    cache = make()
    with pytest.raises(TypeError, match="bytes"):
        cache.set("k", value)
    assert cache.stats().entries == 0


@pytest.mark.redis
def test_two_projects_on_one_redis_never_see_each_others_answers(make: Make) -> None:
    alpha, beta = make("alpha"), make("beta")
    alpha.set("same-key", b"alpha's answer")
    assert beta.get("same-key") is None
    beta.set("same-key", b"beta's answer")
    assert (alpha.get("same-key"), beta.get("same-key")) == (b"alpha's answer", b"beta's answer")
    assert (alpha.stats().entries, beta.stats().entries) == (1, 1)


@pytest.mark.redis
def test_clear_removes_only_this_namespaces_entries(
    make: Make, redis_client: Any, redis_prefix: str
) -> None:
    # "a:cache:e:x" would begin like "a"'s own keys if namespaces were not encoded
    mine, tricky, other = make("a"), make("a:cache:e:x"), make("b")
    for cache in (mine, tricky, other):
        cache.set("k1", b"v")
        cache.set("k2", b"v")
    redis_client.set(redis_prefix + "unrelated", b"someone else's data")
    assert mine.clear() == 2
    assert mine.stats().entries == 0
    assert (tricky.stats().entries, other.stats().entries) == (2, 2)
    assert tricky.get("k1") == other.get("k2") == b"v"
    assert redis_client.get(redis_prefix + "unrelated") == b"someone else's data"


@pytest.mark.redis
def test_counts_reach_redis_with_the_next_store_and_add_up_across_processes(make: Make) -> None:
    first, second = make(), make()
    first.set("k", b"v")
    first.get("k")
    first.get("missing")
    second.get("k")
    first.set("other", b"v")  # carries first's counts
    assert (second.stats().hits, second.stats().misses) == (2, 1)
    assert (first.stats().hits, first.stats().misses) == (2, 1)


@pytest.mark.redis
def test_a_key_of_another_type_is_a_miss_with_one_warning(
    make: Make, redis_client: Any, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache = make()
    redis_client.hset(f"{redis_prefix}test:cache:e:k", "field", "value")
    with caplog.at_level(logging.WARNING, LOGGER):
        for _ in range(5):  # more than breaker_failures
            assert cache.get("k") is None
    assert len(caplog.records) == 1
    assert "WRONGTYPE" in caplog.records[0].getMessage()
    cache.set("fine", b"v")  # the breaker stayed closed: Redis did answer
    assert cache.get("fine") == b"v"


# ----------------------------------------------------------------------------- flight locks


@pytest.mark.redis
def test_a_flight_lock_is_held_by_one_client_and_released_only_by_its_token(make: Make) -> None:
    one, two = make(), make()
    assert Capability.LOCKS in one.capabilities
    token = one.lock("key", 30)
    assert token
    assert two.lock("key", 30) is None
    two.unlock("key", "not-the-token")
    assert two.lock("key", 30) is None
    assert make("another-project").lock("key", 30)  # locks are per namespace too
    one.unlock("key", token)
    assert two.lock("key", 30)


@pytest.mark.redis
def test_an_expired_flight_lock_is_free_and_its_old_owner_cannot_release_the_new_one(
    make: Make, redis_client: Any, redis_prefix: str
) -> None:
    one, two = make(), make()
    name = f"{redis_prefix}test:cache:lock:key"
    old = one.lock("key", 0.05)
    assert old
    assert redis_client.pttl(name) in (-2, *range(1, 51))  # expiring within 50 ms, or already gone
    deadline = time.monotonic() + 5
    while (new := two.lock("key", 30)) is None and time.monotonic() < deadline:
        time.sleep(0.01)  # Redis's own clock must pass the lock's TTL
    assert new and new != old
    one.unlock("key", old)
    assert redis_client.get(name) == new.encode()


def test_flight_locks_of_an_unreachable_redis_say_go_ahead_and_never_raise(
    backend_context: BackendContext,
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    cache = make_redis_cache({"redis_url": url}, backend_context)
    assert cache.lock("key", 30) == ""
    cache.unlock("key", "some-token")
    cache.close()


# ----------------------------------------------------------------------------- the breaker


def test_the_breaker_opens_after_failures_in_a_row_and_lets_one_probe_through() -> None:
    clock = FakeClock()
    breaker = Breaker(3, 5.0, clock)
    assert breaker.failed() is False
    breaker.succeeded()  # a success in between: not in a row
    assert [breaker.failed() for _ in range(3)] == [False, False, True]
    assert breaker.allow() is False
    clock.advance(5)
    assert breaker.allow() is True  # the probe
    assert breaker.allow() is False  # everyone else waits for it
    assert breaker.failed() is True  # the probe failed: another cooldown
    clock.advance(4.9)
    assert breaker.allow() is False
    clock.advance(0.1)
    assert breaker.allow() is True
    breaker.succeeded()
    assert breaker.closed and breaker.allow() and breaker.allow()


@pytest.mark.slow
def test_a_silent_redis_costs_one_attempt_per_call_and_none_once_the_breaker_opens(
    silent_redis: SilentServer, backend_context: BackendContext
) -> None:
    """No retry loop: a client retrying as redis-py's ``Redis(host=...)`` does would connect
    eleven times for the first call."""
    url, silent = silent_redis.url, silent_redis
    cache = make_redis_cache({"redis_url": url, "breaker_failures": 3}, backend_context)
    assert cache.get("k") is None
    assert silent.connections() == 1
    for _ in range(10):
        assert cache.get("k") is None
        cache.set("k", b"v")
        assert cache.lock("k", 1) == ""
    assert silent.connections() == 3
    cache.close()


@pytest.mark.slow
@pytest.mark.redis
def test_an_open_breaker_leaves_redis_alone_until_the_cooldown_is_over(
    redis_server: RedisServer, backend_context: BackendContext, fake_clock: FakeClock
) -> None:
    settings = {"redis_url": redis_server.url, "breaker_failures": 2, **PATIENT}
    cache = make_redis_cache(settings, backend_context)
    redis_server.stop()
    cache.get("k")
    cache.get("k")
    redis_server.start()
    conn = client(redis_server.url)
    conn.set("questfoundry:test:cache:e:k", b"there")  # the default prefix, namespace "test"
    assert cache.get("k") is None  # open: Redis is not asked
    fake_clock.advance(5)
    assert cache.get("k") == b"there"  # the probe answers: closed again
    conn.close()
    cache.close()


# ----------------------------------------------------------------------------- through the gateway


PRICED = {"cost_per_input_token": 0.001, "cost_per_output_token": 0.002}


def _gateway(
    project: Path, provider: ScriptedProvider, clock: FakeClock, **caching: Any
) -> Gateway:
    config = Config(
        data={
            "project": {"name": "outage"},
            "providers": {"text": {"default": "scripted", "scripted": {"model": "m1"}}},
            "caching": {"backend": "redis", **caching},
            "rate_limiting": {"providers": {"scripted": PRICED}},
        },
        path=None,
        project_dir=project,
        secret_paths=frozenset(),
    )
    manager = get_plugin_manager(
        entry_points=False,
        plugins=[scripted_plugin(provider), ("questfoundry-cache-redis", redis_plugin)],
    )
    return open_gateway(config, manager, clock=clock)


HELLO = Request(messages=[{"role": "user", "content": "hello"}])


@pytest.mark.slow
@pytest.mark.redis
def test_calls_succeed_while_redis_is_stopped_with_one_warning_and_caching_resumes(
    redis_server: RedisServer,
    backend_context: BackendContext,
    fake_clock: FakeClock,
    gateway_face: Face,
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider = ScriptedProvider()
    project = backend_context.project_dir
    # a patient timeout, so a busy machine cannot fail the probe that ends the outage
    with _gateway(
        project, provider, fake_clock, redis_url=redis_server.url, socket_timeout=0.5
    ) as gw:
        assert gateway_face.generate(gw, HELLO).text == "echo: hello"
        assert gateway_face.generate(gw, HELLO).cache_hit
        assert provider.calls == 1
        redis_server.stop()
        with caplog.at_level(logging.WARNING):
            for _ in range(5):
                assert gateway_face.generate(gw, HELLO).text == "echo: hello"
        assert provider.calls == 6
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert [r.name for r in warnings] == [LOGGER], [r.getMessage() for r in warnings]
        redis_server.start()  # empty: it keeps nothing on disk
        fake_clock.advance(5)  # the breaker's cooldown
        with caplog.at_level(logging.INFO, LOGGER):
            assert not gateway_face.generate(gw, HELLO).cache_hit
            assert gateway_face.generate(gw, HELLO).cache_hit
        assert provider.calls == 7
        assert "answers again; caching resumes" in caplog.records[-1].getMessage()


@pytest.mark.slow
@pytest.mark.redis
def test_a_hundred_cached_calls_against_a_frozen_redis_finish_within_five_seconds(
    redis_server: RedisServer, backend_context: BackendContext, gateway_face: Face
) -> None:
    provider = ScriptedProvider()
    clock = FakeClock()
    requests = [Request(messages=[{"role": "user", "content": f"q{i}"}]) for i in range(100)]
    with _gateway(backend_context.project_dir, provider, clock, redis_url=redis_server.url) as gw:
        for request in requests:
            gateway_face.generate(gw, request)
        redis_server.freeze()
        try:
            started = time.monotonic()
            replies = [gateway_face.generate(gw, request) for request in requests]
            elapsed = time.monotonic() - started
        finally:
            redis_server.thaw()
    assert [reply.text for reply in replies] == [f"echo: q{i}" for i in range(100)]
    assert elapsed <= 5.0


@pytest.mark.redis
def test_the_async_face_reads_hits_with_aget_on_its_own_loop(
    redis_url: str, redis_prefix: str, backend_context: BackendContext
) -> None:
    provider = ScriptedProvider()
    settings = {"redis_url": redis_url, "key_prefix": redis_prefix, **PATIENT}
    with _gateway(backend_context.project_dir, provider, FakeClock(), **settings) as gw:
        gw.generate(HELLO)

        def no_blocking_get(key: str) -> bytes | None:
            raise AssertionError("the async face sent get() to a thread")

        gw.cache.get = no_blocking_get

        async def twice() -> list[Any]:
            return [await gw.agenerate(HELLO) for _ in range(2)]

        replies = asyncio.run(twice())
    assert [reply.cache_hit for reply in replies] == [True, True]
    assert provider.calls == 1


@pytest.mark.redis
async def test_aget_answers_as_get_does(make: Make) -> None:
    cache = make()
    cache.set("k", b"value")
    assert await cache.aget("k") == cache.get("k") == b"value"
    assert await cache.aget("missing") is None
    assert cache.stats().hits == 2 and cache.stats().misses == 1


@pytest.mark.redis
async def test_aget_of_a_stopped_redis_is_a_miss_sharing_the_breaker(
    redis_server: RedisServer, backend_context: BackendContext
) -> None:
    cache = make_redis_cache({"redis_url": redis_server.url}, backend_context)
    try:
        cache.set("k", b"value")
        assert await cache.aget("k") == b"value"
        redis_server.stop()
        assert [await cache.aget("k") for _ in range(3)] == [None, None, None]
        assert not cache._breaker.closed  # three failures in a row opened it, for get too
        assert cache.get("k") is None
    finally:
        cache.close()
