"""The ``redis`` store's settings: their schema fragment, and the one the kit does not read.

The URL, key prefix and timeouts are the kit's :class:`~questfoundry.kit.RedisSettings`, read as
every Redis plugin reads them (its password registered for redaction, ``host:port/db`` for
messages); the store adds ``pool_size``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from questfoundry.kit import Capability, ConfigError, RedisSettings, redis_schema

DEFAULT_URL = "redis://127.0.0.1:6379/0"
DEFAULT_KEY_PREFIX = "questfoundry:"
DEFAULT_POOL_SIZE = 10
CAPABILITIES = frozenset(
    {Capability.TTL, Capability.ATOMIC, Capability.SHARED, Capability.PERSISTENT}
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
    }
}


def redis_settings(state: Mapping[str, Any]) -> RedisSettings:
    """Where and how the store talks to Redis, from the ``state`` section (defaults filled in)."""
    return RedisSettings.read(state, "state", url=DEFAULT_URL, key_prefix=DEFAULT_KEY_PREFIX)


def pool_size(state: Mapping[str, Any]) -> int:
    """The most connections the store keeps open, from the ``state`` section."""
    size = state.get("pool_size", DEFAULT_POOL_SIZE)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(
            f"must be a whole number of connections, at least 1, not {size!r}",
            path="state.pool_size",
        )
    return size
