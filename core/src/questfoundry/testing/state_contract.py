"""Conformance suite for state stores: subclass :class:`StateStoreContract` in your tests.

Two fixtures say how to reach your store:

``store``
    An empty store, ready to use (closed by your fixture when the test ends, if it needs closing).

``store_opener``
    A :class:`StoreOpener`: how *another process* opens that very same store (same folder, same
    Redis database and prefix…). It holds an importable, picklable callable — a class or a
    module-level function, never a lambda or a local function — and picklable arguments; the
    suite sends it to child processes and calls it there, and calls it in this process for a
    second handle on the store. Stores declaring ``SHARED``, ``ATOMIC`` or ``PERSISTENT`` must
    define it; the default (None) makes the tests needing it fail for them and skip for the rest.

A file store's conformance file is therefore a few lines::

    class TestFileStore(StateStoreContract):
        @pytest.fixture
        def store_opener(self, tmp_path):
            return StoreOpener(FileStore, (tmp_path / "state",))

        @pytest.fixture
        def store(self, store_opener):
            return store_opener()

Optional features are tested by capability and skipped (``pytest.skip``) when the store does not
declare them: ``TTL`` (expiry, and refusing a ttl otherwise), ``ATOMIC`` (8 processes x 200
``update`` increments of one counter end at exactly 1600), ``SHARED`` (a second handle sees the
first one's writes), ``PERSISTENT`` (a reopened store keeps its documents), ``LEASES`` (one
holder at a time, named to whoever is refused; only the holder renews or gives it back; a
holder killed in another process frees it at once, or within the store's ``lease_seconds``),
``SYNC`` (``sync()`` after sets, updates and deletes, or with nothing to sync, loses nothing, and
a write outlives its writer killed before any sync or close).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from questfoundry.contracts.errors import StateError
from questfoundry.contracts.protocols import Capability, LeaseHolder, Leasing, StateStore, Syncing
from questfoundry.testing.contract import StandardSuite

__all__ = ["StateStoreContract", "StoreOpener"]

DOCUMENT = {"version": 2, "title": "The Lighthouse", "sections": [{"id": 1, "text": "Storm."}]}
PROCESSES = 8
INCREMENTS = 200
#: how long a ttl of TTL_SECONDS may take to expire (servers expire lazily or by sampling)
TTL_SECONDS = 0.2
TTL_PATIENCE = 5.0
BAD_KEYS = (
    *("", "../escape", "a/../../b", "/etc/passwd", "a//b", "trailing/", "nul\0key", "a\\b"),
    *("del\x7fkey", "c1\x85key", "line\u2028sep", "para\u2029sep"),  # DEL, C1, U+2028/9
    "a/" + "é" * 100 + "x",  # a part of 201 bytes
    "/".join(["y" * 200] * 5) + "/" + "z" * 20,  # a key of 1,025 bytes
)
#: the longest key every store takes: five parts of 200 UTF-8 bytes and one of 19 (1,024 bytes)
LONGEST_KEY = "/".join(["é" * 100, "ß" * 100, "x" * 200, "%" * 200, "€" * 66 + "ab", "q" * 19])


@dataclass(frozen=True)
class StoreOpener:
    """How any process opens one store: ``factory(*args, **kwargs)``; picklable."""

    factory: Callable[..., StateStore]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self) -> StateStore:
        return self.factory(*self.args, **self.kwargs)


def _increment(opener: StoreOpener, key: str, times: int) -> None:
    """A child process: ``times`` atomic increments of ``key``'s counter."""
    store = opener()
    try:
        for _ in range(times):
            store.update(key, lambda doc: {"n": (doc or {"n": 0})["n"] + 1})
    finally:
        store.close()


def _write_then_wait(opener: StoreOpener, count: int, written: Any) -> None:
    """A child process: ``count`` documents set, then wait to be killed, never syncing."""
    store = opener()
    for n in range(count):
        store.set(f"unsynced/{n}", {"n": n})
    written.set()
    time.sleep(120)


def holder(run_id: str = "") -> LeaseHolder:
    """A lease holder of this process, for the lease tests."""
    return LeaseHolder(os.urandom(8).hex(), run_id, "story_spark", os.getpid(), "here", 1.0)


def _hold_lease(opener: StoreOpener, taken: Any) -> None:
    """A child process: take the lease, say so, and keep it until killed."""
    store: Any = opener()
    if store.take_lease(holder("child")) is None:
        taken.set()
    time.sleep(120)


def _context(opener: StoreOpener) -> Any:
    """Forkserver where there is one, else spawn: never a fork of a threaded parent.

    The forkserver imports the suite and the store's module once, so each child is a cheap fork.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, opener.factory.__module__])
    return context


class StateStoreContract(StandardSuite):
    """Standard tests every :class:`~questfoundry.contracts.protocols.StateStore` must pass."""

    @pytest.fixture
    def store(self) -> StateStore:
        """Override: return an empty store."""
        raise NotImplementedError(f"{type(self).__qualname__} must define a `store` fixture")

    @pytest.fixture
    def store_opener(self) -> StoreOpener | None:
        """Override: how another process opens the same store as ``store`` (see the module)."""
        return None

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _requires(store: StateStore, capability: str) -> None:
        if capability not in store.capabilities:
            pytest.skip(f"the store does not declare {capability!r}")

    @staticmethod
    def _opener(store: StateStore, opener: StoreOpener | None, capability: str) -> StoreOpener:
        StateStoreContract._requires(store, capability)
        if opener is None:
            pytest.fail(f"the store declares {capability!r}: define a `store_opener` fixture")
        return opener

    # ------------------------------------------------------------------ basics

    def test_store_satisfies_the_protocol(self, store: StateStore) -> None:
        assert isinstance(store, StateStore)
        assert isinstance(store.capabilities, frozenset)

    def test_a_missing_key_reads_as_none(self, store: StateStore) -> None:
        assert store.get("nothing-here") is None

    def test_a_document_round_trips(self, store: StateStore) -> None:
        store.set("project/main", DOCUMENT)
        assert store.get("project/main") == DOCUMENT

    def test_put_replaces_the_whole_document(self, store: StateStore) -> None:
        store.set("doc", {"a": 1, "b": 2})
        store.set("doc", {"a": 3})
        assert store.get("doc") == {"a": 3}

    def test_delete_reports_whether_it_removed_something(self, store: StateStore) -> None:
        store.set("doc", {"a": 1})
        assert store.delete("doc") is True
        assert store.delete("doc") is False
        assert store.get("doc") is None

    def test_keys_are_listed_by_prefix(self, store: StateStore) -> None:
        for key in ("hooks/1", "hooks/2", "canon/1", "odd key: ü/ß", ".tmp-looking", "%25"):
            store.set(key, {"key": key})
        assert store.list_keys("hooks/") == ["hooks/1", "hooks/2"]
        assert store.list_keys() == sorted(
            ["canon/1", "hooks/1", "hooks/2", "odd key: ü/ß", ".tmp-looking", "%25"]
        )
        assert store.list_keys("nothing/") == []

    def test_the_longest_key_any_store_takes_round_trips(self, store: StateStore) -> None:
        assert len(LONGEST_KEY.encode()) == 1024
        store.set(LONGEST_KEY, {"n": 1})
        assert store.update(LONGEST_KEY, lambda doc: {"n": (doc or {"n": 0})["n"] + 1}) == {"n": 2}
        assert store.get(LONGEST_KEY) == {"n": 2}
        assert store.list_keys() == [LONGEST_KEY]
        assert store.delete(LONGEST_KEY) is True
        assert store.list_keys() == []

    def test_two_spellings_of_one_key_are_one_key(self, store: StateStore) -> None:
        composed, decomposed = "book/caf\u00e9", "book/cafe\u0301"  # NFC and NFD of "café"
        store.set(decomposed, {"n": 1})
        assert store.get(composed) == {"n": 1}
        assert store.list_keys() == [composed]
        assert store.delete(decomposed) is True
        assert store.get(composed) is None

    def test_internal_keys_are_readable_but_never_listed(self, store: StateStore) -> None:
        store.set("_qf/schema_version", {"versions": {"questfoundry": 1}})
        store.set("book/1", {"n": 1})
        assert store.get("_qf/schema_version") == {"versions": {"questfoundry": 1}}
        assert store.list_keys() == ["book/1"]
        assert store.list_keys("_qf/") == []

    def test_a_document_that_is_not_json_is_refused(self, store: StateStore) -> None:
        with pytest.raises(StateError):
            store.set("doc", {"when": object()})
        assert store.get("doc") is None

    @pytest.mark.parametrize("key", BAD_KEYS)
    def test_a_key_that_could_escape_the_store_is_refused(
        self, store: StateStore, key: str
    ) -> None:
        for attempt in (
            lambda: store.set(key, {"a": 1}),
            lambda: store.get(key),
            lambda: store.delete(key),
            lambda: store.update(key, lambda doc: {"a": 1}),
        ):
            with pytest.raises(StateError):
                attempt()
        assert store.list_keys() == []

    def test_concurrent_writers_never_leave_a_torn_document(self, store: StateStore) -> None:
        def write(n: int) -> None:
            for i in range(25):
                store.set("shared", {"writer": n, "i": i, "pad": "x" * 2000})

        threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        document = store.get("shared")
        assert document is not None and document["pad"] == "x" * 2000

    # ------------------------------------------------------------------ update

    def test_update_creates_a_missing_document(self, store: StateStore) -> None:
        seen: list[Any] = []

        def change(doc: dict[str, Any] | None) -> dict[str, Any]:
            seen.append(doc)
            return {"n": 1}

        assert store.update("counter", change) == {"n": 1}
        assert seen[-1] is None
        assert store.get("counter") == {"n": 1}

    def test_update_changes_the_current_document_and_returns_it(self, store: StateStore) -> None:
        store.set("doc", {"n": 1, "keep": "me"})
        written = store.update("doc", lambda doc: {**(doc or {}), "n": (doc or {})["n"] + 1})
        assert written == {"n": 2, "keep": "me"}
        assert store.get("doc") == {"n": 2, "keep": "me"}

    def test_update_returning_none_deletes_the_key(self, store: StateStore) -> None:
        store.set("doc", {"n": 1})
        assert store.update("doc", lambda doc: None) is None
        assert store.get("doc") is None
        assert store.update("never-there", lambda doc: None) is None
        assert store.list_keys() == []

    def test_a_failing_change_writes_nothing(self, store: StateStore) -> None:
        store.set("doc", {"n": 1})

        def change(doc: dict[str, Any] | None) -> dict[str, Any]:
            raise LookupError("the change gives up")

        with pytest.raises(LookupError):
            store.update("doc", change)
        assert store.get("doc") == {"n": 1}

    def test_update_to_a_document_that_is_not_json_is_refused(self, store: StateStore) -> None:
        store.set("doc", {"n": 1})
        with pytest.raises(StateError):
            store.update("doc", lambda doc: {"when": object()})
        assert store.get("doc") == {"n": 1}

    @pytest.mark.slow
    def test_threads_updating_one_key_lose_no_increment(self, store: StateStore) -> None:
        def work() -> None:
            for _ in range(50):
                store.update("counter", lambda doc: {"n": (doc or {"n": 0})["n"] + 1})

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert store.get("counter") == {"n": 200}

    # ------------------------------------------------------------------ capabilities

    def test_without_ttl_a_ttl_is_refused(self, store: StateStore) -> None:
        if Capability.TTL in store.capabilities:
            pytest.skip("the store declares 'ttl'")
        with pytest.raises(StateError, match="ttl"):
            store.set("doc", {"n": 1}, ttl=60)
        with pytest.raises(StateError, match="ttl"):
            store.update("doc", lambda doc: {"n": 1}, ttl=60)
        assert store.get("doc") is None

    def test_a_document_with_a_ttl_expires(self, store: StateStore) -> None:
        self._requires(store, Capability.TTL)
        store.set("lasting", {"n": 0})
        store.set("brief", {"n": 1}, ttl=TTL_SECONDS)
        store.update("brief-too", lambda doc: {"n": 2}, ttl=TTL_SECONDS)
        assert store.get("brief") == {"n": 1}
        deadline = time.monotonic() + TTL_PATIENCE
        while store.get("brief") is not None or store.get("brief-too") is not None:
            assert time.monotonic() < deadline, "a document outlived its ttl by seconds"
            time.sleep(0.05)  # the server's clock decides; nothing to wait on but time
        assert store.list_keys() == ["lasting"]

    @pytest.mark.slow
    def test_processes_updating_one_counter_lose_no_increment(
        self, store: StateStore, store_opener: StoreOpener | None
    ) -> None:
        opener = self._opener(store, store_opener, Capability.ATOMIC)
        self._requires(store, Capability.SHARED)
        context = _context(opener)
        children = [
            context.Process(target=_increment, args=(opener, "counter", INCREMENTS))
            for _ in range(PROCESSES)
        ]
        for child in children:
            child.start()
        for child in children:
            child.join(timeout=120)
        assert [child.exitcode for child in children] == [0] * PROCESSES
        assert store.get("counter") == {"n": PROCESSES * INCREMENTS}

    def test_a_second_handle_sees_the_first_ones_writes(
        self, store: StateStore, store_opener: StoreOpener | None
    ) -> None:
        other = self._opener(store, store_opener, Capability.SHARED)()
        try:
            store.set("doc", {"from": "first"})
            assert other.get("doc") == {"from": "first"}
            other.update("doc", lambda doc: {**(doc or {}), "seen": True})
            assert store.get("doc") == {"from": "first", "seen": True}
            assert other.delete("doc") is True
            assert store.get("doc") is None
        finally:
            other.close()

    # ------------------------------------------------------------------ one run at a time

    def _leasing(self, store: StateStore) -> Leasing:
        self._requires(store, Capability.LEASES)
        return store  # type: ignore[return-value]

    def test_a_second_holder_is_refused_and_told_who_holds_the_lease(
        self, store: StateStore, store_opener: StoreOpener | None
    ) -> None:
        leases = self._leasing(store)
        other: Any = store_opener() if store_opener is not None else store
        try:
            first, second = holder("run-1"), holder("run-2")
            assert leases.take_lease(first) is None
            refused = other.take_lease(second)
            assert refused is not None
            assert (refused.run_id, refused.loop) == ("run-1", "story_spark")
            assert refused.pid == first.pid
            assert "run-1" in refused.describe() and "story_spark" in refused.describe()
            leases.release_lease(first)
            assert other.take_lease(second) is None
            other.release_lease(second)
        finally:
            if other is not store:
                other.close()

    def test_a_holder_renews_its_lease_and_names_its_run(self, store: StateStore) -> None:
        leases = self._leasing(store)
        mine = holder()
        assert leases.take_lease(mine) is None
        named = LeaseHolder(mine.token, "run-7", mine.loop, mine.pid, mine.host, mine.started)
        assert leases.renew_lease(named) is True
        refused = leases.take_lease(holder())
        assert refused is not None and refused.run_id == "run-7"
        leases.release_lease(named)

    def test_only_the_holder_renews_or_gives_back_its_lease(self, store: StateStore) -> None:
        leases = self._leasing(store)
        mine, stranger = holder("mine"), holder("stranger")
        assert leases.take_lease(mine) is None
        assert leases.renew_lease(stranger) is False
        leases.release_lease(stranger)  # not theirs to give: nothing happens
        refused = leases.take_lease(holder())
        assert refused is not None and refused.run_id == "mine"
        leases.release_lease(mine)
        assert leases.take_lease(stranger) is None
        leases.release_lease(stranger)

    @pytest.mark.slow
    def test_a_killed_holder_frees_the_lease(
        self, store: StateStore, store_opener: StoreOpener | None
    ) -> None:
        leases = self._leasing(store)
        opener = self._opener(store, store_opener, Capability.SHARED)
        context = _context(opener)
        taken = context.Event()
        child = context.Process(target=_hold_lease, args=(opener, taken))
        child.start()
        try:
            assert taken.wait(60), "the child never took the lease"
            refused = leases.take_lease(holder())
            assert refused is not None and refused.run_id == "child"
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.join(30)
        patience = (leases.lease_seconds or 0) + 2.0
        deadline = time.monotonic() + patience
        mine = holder()
        while leases.take_lease(mine) is not None:
            assert time.monotonic() < deadline, f"still held {patience:g} s after its holder died"
            time.sleep(0.05)
        leases.release_lease(mine)

    def test_a_reopened_store_keeps_its_documents(
        self, store: StateStore, store_opener: StoreOpener | None
    ) -> None:
        opener = self._opener(store, store_opener, Capability.PERSISTENT)
        store.set("project/main", DOCUMENT)
        store.close()
        reopened = opener()
        try:
            assert reopened.get("project/main") == DOCUMENT
            assert reopened.list_keys() == ["project/main"]
        finally:
            reopened.close()

    # ------------------------------------------------------------------ sync

    def _syncing(self, store: StateStore) -> Syncing:
        self._requires(store, Capability.SYNC)
        return store  # type: ignore[return-value]

    def test_sync_keeps_every_kind_of_write(
        self, store: StateStore, store_opener: StoreOpener | None
    ) -> None:
        syncing = self._syncing(store)
        syncing.sync()  # nothing written yet: nothing to do, no error
        store.set("kept", {"n": 1})
        store.set("gone", {"n": 2})
        store.update("kept", lambda doc: {"n": (doc or {"n": 0})["n"] + 1})
        assert store.delete("gone") is True
        syncing.sync()
        syncing.sync()  # twice in a row: the second has nothing left to do
        assert store.get("kept") == {"n": 2}
        assert store.list_keys() == ["kept"]
        if store_opener is not None:
            other = store_opener()
            try:
                assert other.get("kept") == {"n": 2} and other.get("gone") is None
            finally:
                other.close()

    def test_a_write_outlives_its_writer_killed_before_any_sync(
        self, store: StateStore, store_opener: StoreOpener | None
    ) -> None:
        self._syncing(store)
        opener = self._opener(store, store_opener, Capability.SHARED)
        context = _context(opener)
        written = context.Event()
        child = context.Process(target=_write_then_wait, args=(opener, 20, written))
        child.start()
        try:
            assert written.wait(60), "the child never finished writing"
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.join(30)
        assert store.list_keys("unsynced/") == sorted(f"unsynced/{n}" for n in range(20))
        assert [store.get(f"unsynced/{n}") for n in range(20)] == [{"n": n} for n in range(20)]
