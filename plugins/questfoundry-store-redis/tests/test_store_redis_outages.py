"""The ``redis`` store when its server is stopped, frozen (SIGSTOP) or refuses the password.

Each test has a private ``redis-server`` (the ``redis_server`` fixture) so the shared one is never
disturbed. The store runs with its default timeouts (0.1 s).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from questfoundry_store_redis.plugin import make_redis_store
from questfoundry_store_redis.store import RedisStore

from questfoundry.kit import BackendContext, StateError
from questfoundry.testing.redis import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture
def store(redis_server: RedisServer, backend_context: BackendContext) -> Iterator[RedisStore]:
    built = make_redis_store({"redis_url": redis_server.url}, backend_context)
    yield built
    built.close()


def address(server: RedisServer) -> str:
    return f"127.0.0.1:{server.port}/0"


def every_call(store: RedisStore) -> dict[str, Callable[[], Any]]:
    """One call of each kind the store offers, each writing ``{"n": 99}`` if it writes."""
    return {
        "get": lambda: store.get("doc"),
        "set": lambda: store.set("doc", {"n": 99}),
        "update": lambda: store.update("doc", lambda _: {"n": 99}),
        "delete": lambda: store.delete("doc"),
        "list_keys": store.list_keys,
    }


def failures(store: RedisStore) -> dict[str, StateError]:
    """Every call's StateError (a call that does not fail fails the test)."""
    errors: dict[str, StateError] = {}
    for name, call in every_call(store).items():
        with pytest.raises(StateError) as caught:
            call()
        errors[name] = caught.value
    return errors


@pytest.mark.slow
def test_a_stopped_redis_fails_every_call_clearly_and_the_store_works_once_it_is_back(
    store: RedisStore, redis_server: RedisServer
) -> None:
    store.set("doc", {"n": 1})
    redis_server.stop()
    for name, error in failures(store).items():
        message = str(error)
        assert address(redis_server) in message, name
        assert "cannot reach Redis" in message, name
        assert "\n" not in message and error.__cause__ is None, name
    redis_server.start()  # a fresh server: it keeps nothing on disk
    assert store.get("doc") is None
    assert store.update("doc", lambda d: {"n": (d or {"n": 0})["n"] + 1}) == {"n": 1}
    assert store.list_keys() == ["doc"]


@pytest.mark.slow
def test_a_frozen_redis_fails_every_call_in_time_and_loses_nothing(
    store: RedisStore, redis_server: RedisServer
) -> None:
    store.set("doc", {"n": 1})
    store.set("other", {"kept": True})
    redis_server.freeze()
    try:
        errors = failures(store)
    finally:
        redis_server.thaw()
    for name, error in errors.items():
        message = str(error)
        assert address(redis_server) in message, name
        assert "did not answer in time (socket_timeout 0.1 s" in message, name
    # the update sent while frozen did not apply: its WATCH went unanswered, so nothing followed
    assert store.get("other") == {"kept": True}
    document = store.get("doc")
    assert document in ({"n": 1}, {"n": 99}, None)  # a timed-out set/delete may still land whole
    store.set("doc", {"n": 1})
    assert store.update("doc", lambda d: {"n": d["n"] + 1} if d else None) == {"n": 2}
    assert store.list_keys() == ["doc", "other"]


@pytest.mark.slow
def test_an_update_while_frozen_never_half_applies(
    store: RedisStore, redis_server: RedisServer
) -> None:
    store.set("doc", {"n": 1})
    seen: list[dict[str, Any] | None] = []

    def freeze_then_change(document: dict[str, Any] | None) -> dict[str, Any]:
        seen.append(document)
        redis_server.freeze()  # between the read and the MULTI/EXEC
        return {"n": 2}

    try:
        with pytest.raises(StateError, match="cannot be updated"):
            store.update("doc", freeze_then_change)
    finally:
        redis_server.thaw()
    assert seen == [{"n": 1}]
    assert store.get("doc") in ({"n": 1}, {"n": 2})  # the transaction lands whole or not at all


def test_a_wrong_password_is_a_clear_error_that_never_shows_the_password(
    locked_server: RedisServer,
    redis_password: str,
    backend_context: BackendContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = locked_server.port
    good = make_redis_store(
        {"redis_url": f"redis://:{redis_password}@127.0.0.1:{port}/0"}, backend_context
    )
    bad = make_redis_store(
        {"redis_url": f"redis://:{redis_password}-wrong@127.0.0.1:{port}/0"}, backend_context
    )
    anonymous = make_redis_store({"redis_url": locked_server.url}, backend_context)
    try:
        good.set("doc", {"n": 1})
        assert good.get("doc") == {"n": 1}
        caplog.set_level(logging.DEBUG)
        for store in (bad, anonymous):
            for name, error in failures(store).items():
                rendered = "".join(traceback.format_exception(error)) + repr(error)
                assert f"127.0.0.1:{port}/0" in str(error), name
                assert redis_password not in rendered, name
                assert error.__cause__ is None and error.__suppress_context__, name
        assert "refused the credentials" in str(failures(bad)["get"])
        for text in (repr(good), repr(bad), repr(good.settings), caplog.text):
            assert redis_password not in text
    finally:
        for store in (good, bad, anonymous):
            store.close()


@pytest.mark.slow
def test_a_tls_url_to_a_server_without_tls_fails_clearly(
    redis_server: RedisServer, backend_context: BackendContext
) -> None:
    url = f"rediss://:hunter22-Secret@127.0.0.1:{redis_server.port}/0"
    store = make_redis_store({"redis_url": url}, backend_context)
    try:
        with pytest.raises(StateError) as caught:
            store.get("doc")
    finally:
        store.close()
    message = str(caught.value)
    assert f"state 'doc' in redis 127.0.0.1:{redis_server.port}/0 cannot be read" in message
    assert "hunter22" not in message
