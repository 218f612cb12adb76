"""The built-in ``memory`` cache: the conformance suite, its LRU bound, and many threads at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from questfoundry.builtins import memory_cache
from questfoundry.builtins.memory_cache import MemoryCache, make_memory_cache
from questfoundry.contracts.backends import BackendContext
from questfoundry.contracts.errors import ConfigError
from questfoundry.contracts.protocols import CacheBackend
from questfoundry.registry import get_plugin_manager
from questfoundry.testing.cache_contract import SMALL_LIMIT, CacheBackendContract
from questfoundry.testing.clock import FakeClock


class TestMemoryCache(CacheBackendContract):
    @pytest.fixture
    def cache(self, backend_context: BackendContext) -> Iterator[CacheBackend]:
        backend = make_memory_cache({}, backend_context)
        yield backend
        backend.close()

    @pytest.fixture
    def small_cache(self, backend_context: BackendContext) -> CacheBackend:
        assert SMALL_LIMIT == 1024 * 1024
        return make_memory_cache({"max_cache_size_mb": 1}, backend_context)


# ----------------------------------------------------------------------------- the contract's guard


def test_a_contract_subclass_that_replaces_a_standard_test_is_refused() -> None:
    with pytest.raises(TypeError, match="test_set_overwrites_the_previous_value"):

        class TestLaxCache(CacheBackendContract):  # pragma: no cover - never created
            def test_set_overwrites_the_previous_value(self, cache: Any) -> None:
                pass


def test_a_standard_test_swapped_after_class_creation_is_caught() -> None:
    class TestSwapped(CacheBackendContract):
        pass

    TestSwapped.test_delete_removes_the_entry_and_says_whether_it_was_there = (  # type: ignore[method-assign]
        lambda self, cache: None
    )
    with pytest.raises(AssertionError):
        TestSwapped().test_no_standard_test_is_replaced()


def test_a_subclass_adding_its_own_tests_is_accepted() -> None:
    class TestExtended(CacheBackendContract):
        def test_something_specific(self) -> None:
            pass

    TestExtended().test_no_standard_test_is_replaced()


# ----------------------------------------------------------------------------- memory specifics


def test_least_recently_used_entry_is_evicted_beyond_max_entries() -> None:
    cache = MemoryCache(max_entries=3)
    for key in ("a", "b", "c"):
        cache.set(key, key.encode())
    assert cache.get("a") == b"a"  # a is now the most recently used; b the least
    cache.set("d", b"d")
    assert cache.get("b") is None
    assert [cache.get(key) for key in ("a", "c", "d")] == [b"a", b"c", b"d"]
    assert cache.stats().entries == 3


def test_overwriting_an_entry_makes_it_most_recent_without_growing() -> None:
    cache = MemoryCache(max_entries=2)
    cache.set("a", b"1")
    cache.set("b", b"2")
    cache.set("a", b"3")
    cache.set("c", b"4")
    assert cache.get("b") is None
    assert cache.get("a") == b"3"
    assert cache.stats().entries == 2


def test_twenty_large_replies_stay_within_max_cache_size_mb(
    backend_context: BackendContext,
) -> None:
    """The reported case, scaled down: 20 replies of 20 % of the bound each, 4x what fits."""
    cache = make_memory_cache({"max_cache_size_mb": 1}, backend_context)
    reply = 200 * 1024
    for index in range(20):
        cache.set(f"r{index}", bytes([index]) * reply)
        assert cache.stats().bytes <= 1024 * 1024
    assert cache.stats().entries == 5
    assert [cache.get(f"r{i}") is not None for i in (14, 15, 19)] == [False, True, True]


def test_the_byte_bound_evicts_the_least_recently_used_not_the_oldest() -> None:
    cache = MemoryCache(max_bytes=30)
    for key in ("a", "b", "c"):
        cache.set(key, b"x" * 10)
    assert cache.get("a") is not None  # b is now the least recently used
    cache.set("d", b"y" * 10)
    assert [cache.get(key) is not None for key in "abcd"] == [True, False, True, True]
    assert cache.stats().bytes == 30


def test_a_value_over_the_byte_bound_drops_the_old_value_and_evicts_nothing() -> None:
    cache = MemoryCache(max_bytes=100)
    cache.set("other", b"o" * 50)
    cache.set("k", b"old")
    cache.set("k", b"n" * 101)
    assert (cache.get("k"), cache.get("other")) == (None, b"o" * 50)
    assert cache.stats().bytes == 50


def test_bytes_follow_overwrites_deletes_expiry_and_clear(fake_clock: FakeClock) -> None:
    cache = MemoryCache(clock=fake_clock)
    cache.set("a", b"1234")
    cache.set("a", b"12")
    cache.set("b", b"123", ttl=5)
    cache.set("c", b"1")
    assert cache.stats().bytes == 6
    cache.delete("c")
    fake_clock.advance(5)
    assert cache.prune() == 1
    assert cache.stats().bytes == 2
    cache.clear()
    assert cache.stats().bytes == 0


@pytest.mark.parametrize("size_mb", [0, 1e-9])
def test_a_byte_bound_below_one_byte_is_a_config_error(
    backend_context: BackendContext, size_mb: float
) -> None:
    with pytest.raises(ConfigError, match=r"caching\.max_cache_size_mb"):
        make_memory_cache({"max_cache_size_mb": size_mb}, backend_context)


def test_an_expired_entry_reads_as_a_miss_and_is_dropped(fake_clock: FakeClock) -> None:
    cache = MemoryCache(clock=fake_clock)
    cache.set("k", b"v", ttl=5)
    fake_clock.advance(5)
    assert cache.get("k") is None
    assert cache.stats().entries == 0


def test_factory_reads_max_entries_from_the_caching_section(
    backend_context: BackendContext,
) -> None:
    cache = make_memory_cache({"max_entries": 2, "ttl_seconds": 60}, backend_context)
    for key in ("a", "b", "c"):
        cache.set(key, b"v")
    assert cache.stats().entries == 2


def test_factory_uses_the_context_clock(backend_context: BackendContext) -> None:
    cache = make_memory_cache({}, backend_context)
    cache.set("k", b"v", ttl=1)
    assert isinstance(backend_context.clock, FakeClock)
    backend_context.clock.advance(2)
    assert cache.get("k") is None


def test_memory_is_registered_as_a_builtin_cache_backend(backend_context: BackendContext) -> None:
    manager = get_plugin_manager(entry_points=False)
    registration = manager.get("cache backend", "memory")
    assert registration.factory is memory_cache.make_memory_cache
    assert registration.distribution == "questfoundry"


def test_many_threads_keep_the_bound_and_count_every_get_exactly() -> None:
    cache = MemoryCache(max_entries=50)
    threads, ops = 8, 2_000
    start = threading.Barrier(threads)

    def work(thread: int) -> None:
        start.wait()
        for op in range(ops):
            key = f"k{(thread * 31 + op) % 120}"
            if op % 3 == 0:
                cache.set(key, key.encode())
            else:
                value = cache.get(key)
                assert value in (None, key.encode())
            if op % 97 == 0:
                cache.delete(key)

    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(work, t) for t in range(threads)]:
            future.result()
    stats = cache.stats()
    gets_per_thread = sum(1 for op in range(ops) if op % 3 != 0)
    assert stats.hits + stats.misses == threads * gets_per_thread
    assert stats.entries <= 50
    assert stats.bytes == sum(len(cache.get(f"k{i}") or b"") for i in range(120))
