"""Registers the cache backend ``redis`` (``caching.backend: redis``).

This module is loaded whenever plugins are listed, so it imports nothing heavy: redis-py is
imported by :func:`make_redis_cache`, only when a Redis cache is built.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from questfoundry.kit import Backend, BackendContext, ConfigError, RedisSettings, hookimpl
from questfoundry_cache_redis.settings import CAPABILITIES, DEFAULTS, KEY_PREFIX, SETTINGS

if TYPE_CHECKING:
    from questfoundry_cache_redis.cache import RedisCache


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
