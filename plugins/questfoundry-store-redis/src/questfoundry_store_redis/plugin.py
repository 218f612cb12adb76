"""Registers the state store ``redis`` (``state.backend: redis``).

This module is loaded whenever plugins are listed, so it imports nothing heavy: redis-py is
imported by :func:`make_redis_store`, only when a store is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from questfoundry.kit import Backend, BackendContext, hookimpl
from questfoundry_store_redis.settings import (
    CAPABILITIES,
    SETTINGS,
    lease_seconds,
    pool_size,
    redis_settings,
)

if TYPE_CHECKING:
    from questfoundry_store_redis.store import RedisStore


def make_redis_store(settings: Mapping[str, Any], context: BackendContext) -> RedisStore:
    """Build the store from the whole ``state`` section; its keys sit under ``context.namespace``.

    Nothing is sent to Redis until the first call, so building never waits for the server.
    """
    from questfoundry_store_redis.store import RedisStore

    return RedisStore(
        redis_settings(settings),
        context.namespace,
        context.clock,
        pool_size=pool_size(settings),
        lease_seconds=lease_seconds(settings),
    )


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
