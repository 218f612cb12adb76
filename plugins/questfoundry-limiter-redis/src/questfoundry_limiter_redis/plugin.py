"""Registers the limiter strategy and the budget keeper ``redis`` (``rate_limiting.backend``).

This module is loaded whenever plugins are listed, so it imports nothing heavy: redis-py is
imported by the factories, only when a limiter or a keeper is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from questfoundry.kit import Backend, BackendContext, Capability, hookimpl, redis_schema

if TYPE_CHECKING:
    from questfoundry_limiter_redis.budgets import RedisBudgetKeeper
    from questfoundry_limiter_redis.limiter import RedisLimiter

CAPABILITIES = frozenset({Capability.SHARED, Capability.PERSISTENT, Capability.ATOMIC})

#: the settings of both, written flat in ``rate_limiting`` beside ``backend: redis``
SETTINGS = {
    "properties": {
        **redis_schema(
            url=(
                "Redis holding the limits and budgets of every worker: `redis://`, `rediss://` "
                "(TLS) or `unix://`; a password may come from `${VAR}`."
            ),
            key_prefix=(
                "Written before every key (none by default), e.g. to keep deployments sharing "
                "one Redis apart; the project namespace follows it, as a hash tag "
                "(`{qf:<namespace>}`)."
            ),
            socket_timeout=(
                "Seconds to wait for Redis's answer before the call is decided by "
                "`on_backend_error`."
            ),
            connect_timeout="Seconds to wait for a connection to Redis.",
            default_url=None,
        ),
        "hold_seconds": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 900,
            "description": (
                "How long a budget hold counts when its call never settles (its worker was "
                "killed); keep it above `retry.deadline_seconds`, the longest a call lasts."
            ),
        },
    },
    "required": ["redis_url"],
}


def make_redis_limiter(settings: Mapping[str, Any], context: BackendContext) -> RedisLimiter:
    """Build the limiter from the ``rate_limiting`` section and its ``rates``."""
    from questfoundry_limiter_redis.limiter import RedisLimiter

    return RedisLimiter(settings, context, settings.get("rates", ()))


def make_redis_keeper(settings: Mapping[str, Any], context: BackendContext) -> RedisBudgetKeeper:
    """Build the budget keeper from the ``rate_limiting`` section and its ``budgets``."""
    from questfoundry_limiter_redis.budgets import RedisBudgetKeeper

    return RedisBudgetKeeper(settings, context, settings.get("budgets", ()))


@hookimpl
def limiter_strategies() -> Mapping[str, Backend]:
    return {
        "redis": Backend(
            make_redis_limiter,
            settings=SETTINGS,
            capabilities=CAPABILITIES,
            description="token buckets every worker on one Redis shares, one round trip a call",
        )
    }


@hookimpl
def budget_keepers() -> Mapping[str, Backend]:
    return {
        "redis": Backend(
            make_redis_keeper,
            capabilities=CAPABILITIES,
            description="cost budgets every worker on one Redis shares, set like its limiter",
        )
    }
