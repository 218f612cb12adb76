"""Registers the cache backend ``redis`` (``caching.backend: redis``).

This module is loaded whenever plugins are listed, so it imports nothing heavy: redis-py is
imported by :func:`make_redis_cache`, only when a Redis cache is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from questfoundry.kit import Backend, BackendContext, Capability, ConfigError, hookimpl

if TYPE_CHECKING:
    from questfoundry_cache_redis.cache import RedisCache

DEFAULTS: dict[str, Any] = {
    "redis_url": "redis://localhost:6379/0",
    "key_prefix": "questfoundry:",
    "socket_timeout": 0.1,
    "connect_timeout": 0.1,
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
        "redis_url": {
            "type": "string",
            "pattern": "^rediss?://",
            "default": DEFAULTS["redis_url"],
            "description": (
                "Redis of the `redis` cache backend: `redis://[:password@]host[:port][/db]`, "
                "`rediss://` for TLS. Its password never appears in messages."
            ),
        },
        "key_prefix": {
            "type": "string",
            "default": DEFAULTS["key_prefix"],
            "description": (
                "Put before every key, ahead of the project namespace: separates deployments "
                "sharing one Redis."
            ),
        },
        "socket_timeout": _seconds(
            "Seconds the `redis` cache waits for an answer before calling the provider instead.",
            DEFAULTS["socket_timeout"],
        ),
        "connect_timeout": _seconds(
            "Seconds the `redis` cache waits for a connection before calling the provider instead.",
            DEFAULTS["connect_timeout"],
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

    values = {name: settings.get(name, default) for name, default in DEFAULTS.items()}
    url = values["redis_url"]
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://")):
        raise ConfigError("must be a redis:// or rediss:// URL", path="caching.redis_url")
    for name in ("socket_timeout", "connect_timeout", "breaker_cooldown_seconds"):
        _require_positive(name, values[name])
    _require_positive("breaker_failures", values["breaker_failures"], integer=True)
    return RedisCache(
        url,
        namespace=context.namespace,
        key_prefix=str(values["key_prefix"]),
        socket_timeout=float(values["socket_timeout"]),
        connect_timeout=float(values["connect_timeout"]),
        breaker_failures=int(values["breaker_failures"]),
        breaker_cooldown=float(values["breaker_cooldown_seconds"]),
        clock=context.clock,
    )


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
