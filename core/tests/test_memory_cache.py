"""The built-in ``memory`` cache: the conformance suite, its LRU bound, and many threads at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from questfoundry.default_plugins import memory_cache
from questfoundry.default_plugins.memory_cache import MemoryCache, make_memory_cache
from questfoundry.interfaces import BackendContext, CacheBackend
from questfoundry.plugins import get_plugin_manager
from questfoundry.testing.cache_contract import CacheBackendContract
from questfoundry.testing.clock import FakeClock


class TestMemoryCache(CacheBackendContract):
    @pytest.fixture
    def cache(self, backend_context: BackendContext) -> Iterator[CacheBackend]:
        backend = make_memory_cache({}, backend_context)
        yield backend
        backend.close()


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
