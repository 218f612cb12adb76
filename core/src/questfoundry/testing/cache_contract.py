"""Conformance suite for cache backends: subclass :class:`CacheBackendContract` in your tests.

::

    from questfoundry.testing.cache_contract import CacheBackendContract

    class TestMyCache(CacheBackendContract):
        @pytest.fixture
        def cache(self, backend_context):
            backend = make_my_cache({}, backend_context)
            yield backend
            backend.close()

The ``cache`` fixture returns an *empty* backend. Every standard test then runs against it. Tests of
optional features skip themselves when the backend does not declare the matching
:class:`~questfoundry.contracts.protocols.Capability` (the TTL tests need ``Capability.TTL``). Three
more fixtures serve tests that need more than one empty backend; each test that needs one skips,
saying which fixture to define, until you override it:

- ``small_cache`` (for ``Capability.SIZE_LIMIT``): an empty backend limited to
  :data:`SMALL_LIMIT` bytes (``max_cache_size_mb: 1``);
- ``reopen`` (for ``Capability.PERSISTENT``): a function that closes a backend and opens a new one
  on the same storage, as the next process would;
- ``unavailable_cache``: a backend whose storage cannot be reached, opened or written (a folder
  that is a file, a server that is down). A backend with no storage to lose (``memory``) has none.

Time: the TTL tests move time with the ``advance_time`` fixture instead of sleeping. By default it
advances the ``fake_clock`` fixture, which is the clock of the ``backend_context`` fixture, so a
backend that reads ``context.clock`` needs nothing more. A backend whose TTLs run on a clock it does
not take from the context (a database's own time, diskcache's ``time.time()``) overrides
``advance_time`` to make its entries ``seconds`` older.

A subclass that defines a test with the name of a standard test is refused when the class is
created: a silently replaced standard test would let a non-conforming backend pass.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from questfoundry.contracts.errors import BackendUnavailableError
from questfoundry.contracts.protocols import CacheBackend, Capability
from questfoundry.testing.clock import FakeClock
from questfoundry.testing.contract import StandardSuite

AdvanceTime = Callable[[float], None]
Reopen = Callable[[CacheBackend], CacheBackend]

#: the size limit of the ``small_cache`` fixture: one MiB (``max_cache_size_mb: 1``)
SMALL_LIMIT = 1024 * 1024

#: bytes that are not valid UTF-8 (and a NUL), so no backend can get away with storing text
NON_UTF8 = bytes(range(256)) + b"\xff\xfe\x00\xc3\x28"

#: the calls that must say so when the backend is unavailable, rather than pass for a miss
MAINTENANCE: dict[str, Callable[[CacheBackend], object]] = {
    "delete": lambda cache: cache.delete("k"),
    "clear": lambda cache: cache.clear(),
    "prune": lambda cache: cache.prune(),
    "stats": lambda cache: cache.stats(),
}

THREADS = 8
OPS_PER_THREAD = 200


class CacheBackendContract(StandardSuite):
    """Standard tests every :class:`~questfoundry.contracts.protocols.CacheBackend` must pass.

    Override the :meth:`cache` fixture; override :meth:`advance_time` when the backend's TTLs do
    not run on ``backend_context.clock``.
    """

    @pytest.fixture
    def cache(self) -> CacheBackend:
        """Override: return an empty backend (and close it after the test if it needs closing)."""
        raise NotImplementedError(
            f"{type(self).__qualname__} must define a `cache` fixture returning an empty backend"
        )

    @pytest.fixture
    def advance_time(self, fake_clock: FakeClock) -> AdvanceTime:
        """Return a function that makes every entry ``seconds`` older, as if time had passed."""
        return fake_clock.advance

    @pytest.fixture
    def small_cache(self) -> CacheBackend:
        """Override for ``Capability.SIZE_LIMIT``: an empty backend of :data:`SMALL_LIMIT` bytes."""
        pytest.skip("define a `small_cache` fixture to test the size limit")

    @pytest.fixture
    def reopen(self) -> Reopen:
        """Override for ``Capability.PERSISTENT``: close a backend, open its storage afresh."""
        pytest.skip("define a `reopen` fixture to test that entries outlive the backend")

    @pytest.fixture
    def unavailable_cache(self) -> CacheBackend:
        """Override: a backend whose storage is unreachable, unopenable or unwritable."""
        pytest.skip("define an `unavailable_cache` fixture to test a broken storage")

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def requires(cache: CacheBackend, capability: str) -> None:
        """Skip the calling test unless ``cache`` declares ``capability``."""
        if capability not in cache.capabilities:
            pytest.skip(f"the backend does not declare Capability {capability!r}")

    # ------------------------------------------------------------------ standard tests

    def test_backend_satisfies_the_protocol(self, cache: CacheBackend) -> None:
        assert isinstance(cache, CacheBackend)
        assert isinstance(cache.capabilities, frozenset)
        assert all(isinstance(name, str) for name in cache.capabilities)

    def test_a_new_backend_is_empty(self, cache: CacheBackend) -> None:
        stats = cache.stats()
        assert (stats.entries, stats.hits, stats.misses) == (0, 0, 0)
        assert cache.get("anything") is None

    def test_missing_key_is_a_miss_until_set_then_a_hit(self, cache: CacheBackend) -> None:
        assert cache.get("k") is None
        cache.set("k", b"reply")
        assert cache.get("k") == b"reply"

    @pytest.mark.parametrize(
        "value",
        [b"", b"\x00", NON_UTF8, '{"text": "d\u00e9j\u00e0 vu \u2013 \U0001f409"}'.encode()],
        ids=["empty", "nul", "non-utf8", "utf8-json"],
    )
    def test_bytes_round_trip_exactly(self, cache: CacheBackend, value: bytes) -> None:
        cache.set("k", value)
        got = cache.get("k")
        assert type(got) is bytes
        assert got == value

    def test_keys_differ_by_exact_text(self, cache: CacheBackend) -> None:
        keys = ["key", "Key", "key ", "k\u00e9y", "ns:v1:" + "a" * 64, "ns:v1:" + "a" * 63 + "b"]
        for index, key in enumerate(keys):
            cache.set(key, str(index).encode())
        assert [cache.get(key) for key in keys] == [str(i).encode() for i in range(len(keys))]

    def test_set_overwrites_the_previous_value(self, cache: CacheBackend) -> None:
        cache.set("k", b"first")
        cache.set("k", b"second, and longer than the first")
        assert cache.get("k") == b"second, and longer than the first"
        assert cache.stats().entries == 1

    def test_delete_removes_the_entry_and_says_whether_it_was_there(
        self, cache: CacheBackend
    ) -> None:
        cache.set("gone", b"1")
        cache.set("kept", b"2")
        assert cache.delete("gone") is True
        assert cache.delete("gone") is False
        assert cache.delete("never-set") is False
        assert cache.get("gone") is None
        assert cache.get("kept") == b"2"

    def test_clear_removes_every_entry_and_counts_them(self, cache: CacheBackend) -> None:
        for index in range(5):
            cache.set(f"k{index}", b"v")
        assert cache.clear() == 5
        assert cache.stats().entries == 0
        assert all(cache.get(f"k{index}") is None for index in range(5))
        assert cache.clear() == 0

    def test_entry_expires_after_its_ttl(
        self, cache: CacheBackend, advance_time: AdvanceTime
    ) -> None:
        self.requires(cache, Capability.TTL)
        cache.set("short", b"v", ttl=10)
        advance_time(9)
        assert cache.get("short") == b"v"
        advance_time(2)
        assert cache.get("short") is None

    def test_entry_without_ttl_never_expires(
        self, cache: CacheBackend, advance_time: AdvanceTime
    ) -> None:
        self.requires(cache, Capability.TTL)
        cache.set("forever", b"v")
        cache.set("was-short", b"old", ttl=5)
        cache.set("was-short", b"new")  # overwriting without a TTL drops the old one
        advance_time(10 * 365 * 86400)
        assert cache.get("forever") == b"v"
        assert cache.get("was-short") == b"new"

    def test_prune_removes_expired_entries_only(
        self, cache: CacheBackend, advance_time: AdvanceTime
    ) -> None:
        self.requires(cache, Capability.TTL)
        cache.set("short", b"v", ttl=10)
        cache.set("long", b"v", ttl=1000)
        cache.set("forever", b"v")
        advance_time(11)
        assert cache.prune() == 1
        assert cache.stats().entries == 2
        assert cache.get("long") == b"v"
        assert cache.get("forever") == b"v"
        assert cache.prune() == 0

    def test_prune_of_a_fresh_backend_removes_nothing(self, cache: CacheBackend) -> None:
        cache.set("k", b"v")
        assert cache.prune() == 0
        assert cache.get("k") == b"v"

    def test_stats_count_entries_bytes_hits_and_misses(self, cache: CacheBackend) -> None:
        values = {"a": b"x" * 100, "b": b"y" * 300, "c": b"z" * 600}
        for key, value in values.items():
            cache.set(key, value)
        cache.get("a")
        cache.get("b")
        cache.get("a")
        cache.get("missing")
        stats = cache.stats()
        assert stats.entries == 3
        assert stats.bytes >= sum(len(v) for v in values.values())
        assert (stats.hits, stats.misses) == (3, 1)

    def test_a_large_value_round_trips(self, cache: CacheBackend) -> None:
        value = bytes(range(256)) * 4096  # 1 MiB, every byte value
        cache.set("large", value)
        assert cache.get("large") == value
        assert cache.stats().bytes >= len(value)

    @pytest.mark.slow
    def test_many_keys_keep_their_own_values(self, cache: CacheBackend) -> None:
        count = 500
        for index in range(count):
            cache.set(f"key-{index}", f"value-{index}".encode())
        assert cache.stats().entries == count
        wrong = [i for i in range(count) if cache.get(f"key-{i}") != f"value-{i}".encode()]
        assert wrong == []

    def test_an_expired_entry_counts_as_a_miss(
        self, cache: CacheBackend, advance_time: AdvanceTime
    ) -> None:
        self.requires(cache, Capability.TTL)
        cache.set("short", b"v", ttl=10)
        assert cache.get("short") == b"v"
        advance_time(11)
        assert cache.get("short") is None
        assert (cache.stats().hits, cache.stats().misses) == (1, 1)

    @pytest.mark.slow
    def test_writing_past_the_size_limit_keeps_the_newest_entries(
        self, cache: CacheBackend, request: pytest.FixtureRequest
    ) -> None:
        self.requires(cache, Capability.SIZE_LIMIT)
        small: CacheBackend = request.getfixturevalue("small_cache")
        value, count = SMALL_LIMIT // 50, 150  # three times what fits; evicting several is fine
        for index in range(count):
            small.set(f"k{index}", index.to_bytes(2, "big") * (value // 2))
            assert small.stats().bytes <= SMALL_LIMIT * 1.5
        assert small.get("k0") is None
        assert small.get(f"k{count - 1}") == (count - 1).to_bytes(2, "big") * (value // 2)

    def test_a_value_larger_than_the_size_limit_is_not_stored(
        self, cache: CacheBackend, request: pytest.FixtureRequest
    ) -> None:
        """Storing it would evict every other entry; its key's older value must not linger."""
        self.requires(cache, Capability.SIZE_LIMIT)
        small: CacheBackend = request.getfixturevalue("small_cache")
        small.set("kept", b"small")
        small.set("replaced", b"old answer")
        huge = b"h" * (SMALL_LIMIT + 1)
        small.set("huge", huge)
        small.set("replaced", huge)
        assert small.get("huge") is None
        assert small.get("replaced") is None
        assert small.get("kept") == b"small"
        assert small.stats().entries == 1

    def test_entries_survive_reopening(
        self, cache: CacheBackend, request: pytest.FixtureRequest
    ) -> None:
        self.requires(cache, Capability.PERSISTENT)
        reopen: Reopen = request.getfixturevalue("reopen")
        cache.set("k", b"kept")
        again = reopen(cache)
        assert again.get("k") == b"kept"
        assert again.stats().entries == 1

    def test_persistent_counts_survive_reopening(
        self, cache: CacheBackend, request: pytest.FixtureRequest
    ) -> None:
        if not cache.stats().persistent_counts:
            pytest.skip("the backend counts hits and misses per process")
        reopen: Reopen = request.getfixturevalue("reopen")
        cache.set("k", b"v")
        cache.get("k")
        cache.get("k")
        cache.get("missing")
        again = reopen(cache)
        again.get("k")
        stats = again.stats()
        assert (stats.hits, stats.misses, stats.persistent_counts) == (3, 1, True)

    def test_an_unavailable_backend_misses_stores_nothing_and_warns_once(
        self, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
    ) -> None:
        broken: CacheBackend = request.getfixturevalue("unavailable_cache")
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                assert broken.get("k") is None
                broken.set("k", b"v")
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert "\n" not in warnings[0].getMessage()

    @pytest.mark.parametrize("operation", MAINTENANCE, ids=MAINTENANCE)
    def test_maintenance_of_an_unavailable_backend_raises_one_line(
        self, request: pytest.FixtureRequest, operation: str
    ) -> None:
        broken: CacheBackend = request.getfixturevalue("unavailable_cache")
        with pytest.raises(BackendUnavailableError) as caught:
            MAINTENANCE[operation](broken)
        assert str(caught.value) and "\n" not in str(caught.value)

    @pytest.mark.slow
    def test_concurrent_threads_see_whole_values_and_the_last_write_wins(
        self, cache: CacheBackend
    ) -> None:
        """8 threads x 200 mixed operations on own and shared keys: no error, no torn value.

        Each thread's own keys end holding the last value that thread wrote to them; the shared key
        ends holding the last value one of the threads wrote to it.
        """
        start = threading.Barrier(THREADS)

        def work(thread: int) -> tuple[dict[str, bytes], bytes]:
            own: dict[str, bytes] = {}
            shared = b""
            start.wait()
            for op in range(OPS_PER_THREAD):
                key, value = f"own-{thread}-{op % 7}", _stamped(thread, op)
                step = op % 4
                if step == 0:
                    cache.set(key, value)
                    own[key] = value
                elif step == 1:
                    _check_whole(cache.get(key))
                elif step == 2:
                    cache.set("shared", value)
                    shared = value
                else:
                    _check_whole(cache.get("shared"))
            return own, shared

        with ThreadPoolExecutor(THREADS) as pool:
            results = [future.result() for future in [pool.submit(work, t) for t in range(THREADS)]]
        for own, _ in results:
            assert {key: cache.get(key) for key in own} == own
        assert cache.get("shared") in {shared for _, shared in results}


def _stamped(thread: int, op: int) -> bytes:
    """A value that says who wrote it and is long enough that a torn write would show."""
    header = f"{thread}:{op}|".encode()
    return header + header * 200


def _check_whole(value: bytes | None) -> None:
    if value is None:
        return
    header, _, body = value.partition(b"|")
    assert value == _stamped(*map(int, header.split(b":"))), f"torn value {body[:40]!r}"
