"""The ``redis`` store on the shared test Redis: where keys live, JSON values, SCAN, TTL, update."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from questfoundry_store_redis.plugin import make_redis_store
from questfoundry_store_redis.store import MAX_CONFLICTS, RedisStore

from questfoundry.kit import BackendContext, RedisSettings, StateError, StateStore
from questfoundry.testing.clock import FakeClock
from questfoundry.testing.state_contract import StateStoreContract, StoreOpener

pytestmark = pytest.mark.redis


def open_store(url: str, prefix: str, context: BackendContext) -> RedisStore:
    return make_redis_store({"redis_url": url, "key_prefix": prefix}, context)


@pytest.fixture
def store(
    redis_url: str, redis_prefix: str, backend_context: BackendContext
) -> Iterator[RedisStore]:
    built = open_store(redis_url, redis_prefix, backend_context)
    yield built
    built.close()


class TestRedisStore(StateStoreContract):
    """The core's conformance suite over the shared test Redis, under this test's key prefix."""

    @pytest.fixture
    def store_opener(self, redis_url: str, redis_prefix: str) -> StoreOpener:
        """The store class itself (not the plugin's lazy factory), so the suite's forkserver
        preloads redis-py once instead of every child importing it. A lease lasts 0.3 s unless
        renewed, so a killed holder's is free soon (config takes no less than a second)."""
        settings = RedisSettings(url=redis_url, key_prefix=redis_prefix)
        return StoreOpener(RedisStore, (settings, "contract"), {"lease_seconds": 0.3})

    @pytest.fixture
    def store(self, store_opener: StoreOpener) -> Iterator[StateStore]:
        built = store_opener()
        yield built
        built.close()


def test_documents_are_json_strings_under_the_prefix_and_namespace(
    store: RedisStore, redis_client: Any, redis_prefix: str
) -> None:
    store.set("book/sections/1", {"text": "Storm.", "ü": [1, 2]})
    value = redis_client.get(f"{redis_prefix}test:state:book/sections/1")
    assert json.loads(value) == {"text": "Storm.", "ü": [1, 2]}
    assert redis_client.type(f"{redis_prefix}test:state:book/sections/1") == b"string"


def test_projects_with_other_namespaces_never_see_each_others_keys(
    store: RedisStore, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    other = open_store(redis_url, redis_prefix, BackendContext(tmp_path, "other"))
    try:
        store.set("doc", {"project": "test"})
        other.set("doc", {"project": "other"})
        other.set("only-other", {})
        assert store.get("doc") == {"project": "test"}
        assert store.list_keys() == ["doc"]
        assert other.list_keys() == ["doc", "only-other"]
    finally:
        other.close()


def test_a_namespace_spelling_another_projects_keys_never_reaches_them(
    store: RedisStore, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    """Namespace ``test:state:x``, written as it is, would put its keys inside project ``test``'s
    (``<prefix>test:state:x:state:<key>``); escaped, it keeps to its own."""
    lookalike = open_store(redis_url, redis_prefix, BackendContext(tmp_path, "test:state:x"))
    try:
        lookalike.set("doc", {"project": "lookalike"})
        assert store.list_keys() == []
        assert lookalike.list_keys() == ["doc"]
        assert lookalike.prefix == f"{redis_prefix}test%3Astate%3Ax:state:"
    finally:
        lookalike.close()


def test_list_keys_takes_glob_characters_literally_and_hides_internal_keys(
    store: RedisStore,
) -> None:
    for key in ("a*", "a[1]", "a?b", "ab", "_qf/schema_version"):
        store.set(key, {"key": key})
    assert store.list_keys("a*") == ["a*"]
    assert store.list_keys("a[") == ["a[1]"]
    assert store.list_keys("a?") == ["a?b"]
    assert store.list_keys("a\\") == []
    assert store.list_keys() == ["a*", "a?b", "a[1]", "ab"]


def test_keys_others_wrote_under_the_prefix_that_no_key_may_have_are_not_listed(
    store: RedisStore, redis_client: Any, redis_prefix: str
) -> None:
    store.set("book/1", {})
    for name in ("../escape", "a//b", "", "back\\slash", "_qf/journal"):
        redis_client.set(f"{redis_prefix}test:state:{name}", b"{}")
    redis_client.set(f"{redis_prefix}test:state:".encode() + b"not utf-8 \xff", b"{}")
    assert store.list_keys() == ["book/1"]


def test_a_value_that_is_not_a_json_object_is_a_clear_error(
    store: RedisStore, redis_client: Any, redis_prefix: str
) -> None:
    redis_client.set(f"{redis_prefix}test:state:broken", b"{not json")
    redis_client.set(f"{redis_prefix}test:state:list", b"[1, 2]")
    with pytest.raises(StateError, match=r"^state 'broken' in redis 127\.0\.0\.1:\d+/\d+ is not"):
        store.get("broken")
    with pytest.raises(StateError, match=r"'list' .* is not a JSON object"):
        store.update("list", lambda _: {})
    assert redis_client.get(f"{redis_prefix}test:state:list") == b"[1, 2]"


def test_a_ttl_is_set_in_milliseconds_and_a_write_without_one_clears_it(
    store: RedisStore, redis_client: Any, redis_prefix: str
) -> None:
    name = f"{redis_prefix}test:state:session"
    store.set("session", {"n": 1}, ttl=30)
    assert 29_000 < redis_client.pttl(name) <= 30_000
    store.update("session", lambda d: {"n": 2}, ttl=0.5)
    assert 0 < redis_client.pttl(name) <= 500
    store.set("session", {"n": 3})
    assert redis_client.pttl(name) == -1  # no expiry
    for ttl in (0, -1, float("nan"), float("inf"), "10", True):
        with pytest.raises(StateError, match="TTL must be a positive number of seconds"):
            store.set("session", {"n": 4}, ttl=ttl)  # type: ignore[arg-type]
    assert store.get("session") == {"n": 3}


def test_an_update_that_always_loses_the_race_gives_up_and_says_so(
    store: RedisStore, redis_client: Any, redis_prefix: str, fake_clock: FakeClock
) -> None:
    """Another writer changes the key between every read and write: a bounded number of tries."""
    calls: list[int] = []

    def change(document: dict[str, Any] | None) -> dict[str, Any]:
        calls.append(1)
        redis_client.set(f"{redis_prefix}test:state:counter", json.dumps({"n": -len(calls)}))
        return {"n": 1}

    started = fake_clock.monotonic()
    with pytest.raises(StateError, match=rf"'counter' .* changed it {MAX_CONFLICTS} times"):
        store.update("counter", change)
    assert len(calls) == MAX_CONFLICTS
    assert store.get("counter") == {"n": -MAX_CONFLICTS}  # the other writer's, never ours
    assert fake_clock.monotonic() > started  # it paused between tries (on the context's clock)


def test_an_update_whose_change_fails_writes_nothing(store: RedisStore) -> None:
    store.set("doc", {"n": 1})

    def broken(document: dict[str, Any] | None) -> dict[str, Any]:
        raise ValueError("the change itself failed")

    with pytest.raises(ValueError, match="the change itself failed"):
        store.update("doc", broken)
    with pytest.raises(StateError, match="returned list, not a mapping or None"):
        store.update("doc", lambda _: [1])  # type: ignore[arg-type, return-value]
    with pytest.raises(StateError, match="not JSON-serialisable"):
        store.update("doc", lambda _: {"when": object()})
    assert store.get("doc") == {"n": 1}


def test_an_update_returning_none_deletes_and_one_of_a_missing_key_writes_nothing(
    store: RedisStore,
) -> None:
    store.set("doc", {"n": 1})
    assert store.update("doc", lambda _: None) is None
    assert store.get("doc") is None
    seen: list[Any] = []
    assert store.update("doc", seen.append) is None
    assert seen == [None] and store.list_keys() == []


def test_a_closed_store_refuses_calls(store: RedisStore) -> None:
    store.close()
    with pytest.raises(StateError, match=r"^the state store redis 127\.0\.0\.1:\d+/\d+ is closed"):
        store.get("doc")
