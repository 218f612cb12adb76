"""Registers the cache backend ``redis`` (``caching.backend: redis``).

This module is loaded whenever plugins are listed, so it imports nothing heavy: redis-py is
imported by :func:`make_redis_cache`, only when a Redis cache is built.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from questfoundry.kit import (
    Backend,
    BackendContext,
    Capability,
    ConfigError,
    RedisSettings,
    hookimpl,
    redis_schema,
)

if TYPE_CHECKING:
    from questfoundry_cache_redis.cache import RedisCache

KEY_PREFIX = "questfoundry:"
DEFAULTS: dict[str, Any] = {
    "breaker_failures": 3,
    "breaker_cooldown_seconds": 5.0,
}

CAPABILITIES = frozenset(
    {
        Capability.TTL,
        Capability.PERSISTENT,
        Capability.SHARED,
        Capability.LOCKS,
        Capability.ASYNC_GET,
    }
)


def _seconds(description: str, default: float) -> dict[str, Any]:
    return {
        "type": "number",
        "exclusiveMinimum": 0,
        "default": default,
        "description": description,
    }


#: the settings of the ``redis`` backend, written flat in ``caching`` beside ``backend: redis``
SETTINGS = {
    "properties": {
        **redis_schema(
            url=(
                "Redis of the `redis` cache backend: `redis://[:password@]host[:port][/db]`, "
                "`rediss://` for TLS, `unix:///path/to/redis.sock` for a socket. Its password "
                "never appears in messages."
            ),
            key_prefix=(
                "Put before every key, ahead of the project namespace: separates deployments "
                "sharing one Redis."
            ),
            socket_timeout=(
                "Seconds the `redis` cache waits for an answer before calling the provider instead."
            ),
            connect_timeout=(
                "Seconds the `redis` cache waits for a connection before calling the provider "
                "instead."
            ),
            default_prefix=KEY_PREFIX,
        ),
        "breaker_failures": {
            "type": "integer",
            "minimum": 1,
            "default": DEFAULTS["breaker_failures"],
            "description": (
                "Consecutive Redis failures after which the `redis` cache stops trying Redis "
                "for `breaker_cooldown_seconds`."
            ),
        },
        "breaker_cooldown_seconds": _seconds(
            "Seconds the `redis` cache leaves Redis alone after `breaker_failures` failures in "
            "a row; then one call tries it again.",
            DEFAULTS["breaker_cooldown_seconds"],
        ),
    }
}


def make_redis_cache(settings: Mapping[str, Any], context: BackendContext) -> RedisCache:
    """Build the Redis cache from the whole ``caching`` section (see :data:`SETTINGS`).

    Connects lazily: a Redis that is down when the cache is built costs one warning on first
    use, not an error. ``ttl_seconds`` is not read here: the gateway passes a TTL with each entry.
    """
    from questfoundry_cache_redis.cache import RedisCache

    redis = RedisSettings.read(settings, "caching", key_prefix=KEY_PREFIX)
    values = {name: settings.get(name, default) for name, default in DEFAULTS.items()}
    _require_positive("breaker_cooldown_seconds", values["breaker_cooldown_seconds"])
    _require_positive("breaker_failures", values["breaker_failures"], integer=True)
    where = f"{redis.address} {redis.prefix(context.namespace)}"
    return RedisCache(
        redis,
        namespace=context.namespace,
        breaker_failures=int(values["breaker_failures"]),
        breaker_cooldown=float(values["breaker_cooldown_seconds"]),
        breaker_file=context.project_dir / f"redis-cache-{_digest(where)}.breaker",
        clock=context.clock,
    )


def _digest(text: str) -> str:
    """A short name for ``text`` (which Redis and project a breaker file is for)."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _require_positive(name: str, value: object, *, integer: bool = False) -> None:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not value > 0:
        what = "a positive whole number" if integer else "a positive number of seconds"
        raise ConfigError(f"must be {what}, not {value!r}", path=f"caching.{name}")


@hookimpl
def cache_backends() -> Mapping[str, Backend]:
    return {
        "redis": Backend(
            make_redis_cache,
            settings=SETTINGS,
            capabilities=CAPABILITIES,
            description="replies in Redis, shared by every worker of every machine using it",
        )
    }
