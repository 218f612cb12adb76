"""The ``redis`` cache backend's settings and capabilities, apart from the code that uses them,
so the plugin module and the cache both read them without importing each other."""

from __future__ import annotations

from typing import Any

from questfoundry.kit import Capability, redis_schema

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
