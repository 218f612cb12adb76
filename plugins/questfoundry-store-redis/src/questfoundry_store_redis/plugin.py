"""Registers the state store ``redis`` (``state.backend: redis``).

This module is loaded whenever plugins are listed, so it imports nothing heavy: redis-py is
imported by :func:`make_redis_store`, only when a store is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from questfoundry.kit import Backend, BackendContext, hookimpl, register_secret
from questfoundry_store_redis.settings import CAPABILITIES, SETTINGS, RedisSettings

if TYPE_CHECKING:
    from questfoundry_store_redis.store import RedisStore


def make_redis_store(settings: Mapping[str, Any], context: BackendContext) -> RedisStore:
    """Build the store from the whole ``state`` section; its keys sit under ``context.namespace``.

    Nothing is sent to Redis until the first call, so building never waits for the server.
    """
    from questfoundry_store_redis.store import RedisStore

    parsed = RedisSettings.from_state(settings)
    register_secret(parsed.password)
    return RedisStore(parsed, context.namespace, context.clock)


@hookimpl
def state_stores() -> Mapping[str, Backend]:
    return {
        "redis": Backend(
            make_redis_store,
            settings=SETTINGS,
            capabilities=CAPABILITIES,
            description="JSON documents in Redis, shared by every process and machine using it",
        )
    }
