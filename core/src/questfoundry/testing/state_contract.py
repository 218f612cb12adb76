"""Conformance suite for state stores: subclass :class:`StateStoreContract` in your tests.

Provide a ``store`` fixture returning an empty store; every standard test then runs against it.
"""

from __future__ import annotations

import threading

import pytest

from questfoundry.errors import StateError
from questfoundry.interfaces import StateStore
from questfoundry.testing.contract import StandardSuite

DOCUMENT = {"version": 2, "title": "The Lighthouse", "sections": [{"id": 1, "text": "Storm."}]}


class StateStoreContract(StandardSuite):
    """Standard tests every :class:`~questfoundry.interfaces.StateStore` must pass."""

    @pytest.fixture
    def store(self) -> StateStore:
        """Override: return an empty store."""
        raise NotImplementedError(f"{type(self).__qualname__} must define a `store` fixture")

    def test_store_satisfies_the_protocol(self, store: StateStore) -> None:
        assert isinstance(store, StateStore)

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
        for key in ("hooks/1", "hooks/2", "canon/1", "odd key: ü/ß", ".tmp-looking"):
            store.set(key, {"key": key})
        assert store.list_keys("hooks/") == ["hooks/1", "hooks/2"]
        assert sorted(store.list_keys()) == sorted(
            ["canon/1", "hooks/1", "hooks/2", "odd key: ü/ß", ".tmp-looking"]
        )

    def test_a_document_that_is_not_json_is_refused(self, store: StateStore) -> None:
        with pytest.raises(StateError):
            store.set("doc", {"when": object()})
        assert store.get("doc") is None

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
