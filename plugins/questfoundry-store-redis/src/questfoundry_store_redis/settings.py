"""The ``redis`` store's settings: their schema fragment, and the one the kit does not read.

The URL, key prefix and timeouts are the kit's :class:`~questfoundry.kit.RedisSettings`, read as
every Redis plugin reads them (its password registered for redaction, ``host:port/db`` for
messages); the store adds ``pool_size`` and ``lease_seconds``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from questfoundry.kit import Capability, ConfigError, RedisSettings, redis_schema

DEFAULT_URL = "redis://127.0.0.1:6379/0"
DEFAULT_KEY_PREFIX = "questfoundry:"
DEFAULT_POOL_SIZE = 10
DEFAULT_LEASE_SECONDS = 15.0
CAPABILITIES = frozenset(
    {
        Capability.TTL,
        Capability.ATOMIC,
        Capability.SHARED,
        Capability.PERSISTENT,
        Capability.LEASES,
    }
)

#: the settings of the ``redis`` store, written flat in ``state`` beside ``backend: redis``
SETTINGS = {
    "properties": {
        **redis_schema(
            url=(
                "Server of the `redis` store: `redis://[:password@]host[:port][/db]`, "
                "`rediss://` for TLS, `unix:///path/to/redis.sock` for a socket. Write the "
                "password as `${REDIS_PASSWORD}` rather than in the file; it never appears in "
                "messages."
            ),
            key_prefix=(
                "Put before every key of the `redis` store, ahead of the project's namespace "
                "(`<key_prefix><namespace>:state:<key>`)."
            ),
            socket_timeout="Seconds the `redis` store waits for Redis to answer a command.",
            connect_timeout="Seconds the `redis` store waits for a connection to Redis.",
            default_url=DEFAULT_URL,
            default_prefix=DEFAULT_KEY_PREFIX,
        ),
        "pool_size": {
            "type": "integer",
            "minimum": 1,
            "maximum": 1000,
            "default": DEFAULT_POOL_SIZE,
            "description": "Connections the `redis` store keeps open to Redis at most.",
        },
        "lease_seconds": {
            "type": "number",
            "minimum": 1,
            "maximum": 3600,
            "default": DEFAULT_LEASE_SECONDS,
            "description": (
                "How long the `redis` store's lease on the project (one run at a time) lasts "
                "unless its run renews it (every third of it): a run killed outright frees the "
                "project this long after, at most."
            ),
        },
    }
}


def redis_settings(state: Mapping[str, Any]) -> RedisSettings:
    """Where and how the store talks to Redis, from the ``state`` section (defaults filled in)."""
    return RedisSettings.read(state, "state", url=DEFAULT_URL, key_prefix=DEFAULT_KEY_PREFIX)


def lease_seconds(state: Mapping[str, Any]) -> float:
    """How long a lease lasts unless renewed, from the ``state`` section."""
    seconds = state.get("lease_seconds", DEFAULT_LEASE_SECONDS)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 1:
        raise ConfigError(
            f"must be a number of seconds, at least 1, not {seconds!r}",
            path="state.lease_seconds",
        )
    return float(seconds)


def pool_size(state: Mapping[str, Any]) -> int:
    """The most connections the store keeps open, from the ``state`` section."""
    size = state.get("pool_size", DEFAULT_POOL_SIZE)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(
            f"must be a whole number of connections, at least 1, not {size!r}",
            path="state.pool_size",
        )
    return size
