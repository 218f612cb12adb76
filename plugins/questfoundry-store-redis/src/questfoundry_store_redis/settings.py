"""The ``redis`` store's settings: their schema fragment, and the values read from ``state``.

The password a ``redis_url`` may carry is kept out of everything this module makes printable:
:attr:`RedisSettings.address` is ``host:port/db`` and the dataclass's ``repr`` omits the URL.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from questfoundry.kit import Capability, ConfigError

DEFAULT_URL = "redis://127.0.0.1:6379/0"
DEFAULT_KEY_PREFIX = "questfoundry:"
DEFAULT_TIMEOUT = 0.1
DEFAULT_POOL_SIZE = 10
SCHEMES = ("redis", "rediss")
CAPABILITIES = frozenset(
    {Capability.TTL, Capability.ATOMIC, Capability.SHARED, Capability.PERSISTENT}
)

_TIMEOUT = {
    "type": "number",
    "exclusiveMinimum": 0,
    "maximum": 60,
    "default": DEFAULT_TIMEOUT,
}

#: the settings of the ``redis`` store, written flat in ``state`` beside ``backend: redis``
SETTINGS = {
    "properties": {
        "redis_url": {
            "type": "string",
            "pattern": "^rediss?://",
            "default": DEFAULT_URL,
            "description": (
                "Server of the `redis` store: `redis://[:password@]host[:port][/db]`, "
                "`rediss://` for TLS. Write the password as `${REDIS_PASSWORD}` rather than "
                "in the file; it never appears in messages."
            ),
        },
        "key_prefix": {
            "type": "string",
            "default": DEFAULT_KEY_PREFIX,
            "description": (
                "Put before every key of the `redis` store, ahead of the project's namespace "
                "(`<key_prefix><namespace>:state:<key>`)."
            ),
        },
        "socket_timeout": {
            **_TIMEOUT,
            "description": "Seconds the `redis` store waits for Redis to answer a command.",
        },
        "connect_timeout": {
            **_TIMEOUT,
            "description": "Seconds the `redis` store waits for a connection to Redis.",
        },
        "pool_size": {
            "type": "integer",
            "minimum": 1,
            "maximum": 1000,
            "default": DEFAULT_POOL_SIZE,
            "description": "Connections the `redis` store keeps open to Redis at most.",
        },
    }
}


@dataclass(frozen=True)
class RedisSettings:
    """Where and how the store talks to Redis; ``url`` may hold a password (not in the repr)."""

    url: str = field(default=DEFAULT_URL, repr=False)
    key_prefix: str = DEFAULT_KEY_PREFIX
    socket_timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = DEFAULT_TIMEOUT
    pool_size: int = DEFAULT_POOL_SIZE
    address: str = field(init=False)
    password: str | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        address, password = _parse(self.url)
        object.__setattr__(self, "address", address)
        object.__setattr__(self, "password", password)
        for name in ("socket_timeout", "connect_timeout"):
            value = getattr(self, name)
            if not _positive(value):
                raise ConfigError(
                    f"must be a positive number of seconds, not {value!r}", path=_at(name)
                )
        if (
            isinstance(self.pool_size, bool)
            or not isinstance(self.pool_size, int)
            or self.pool_size < 1
        ):
            raise ConfigError(
                f"must be a whole number of connections, at least 1, not {self.pool_size!r}",
                path=_at("pool_size"),
            )
        if not isinstance(self.key_prefix, str):
            raise ConfigError(f"must be text, not {self.key_prefix!r}", path=_at("key_prefix"))

    @classmethod
    def from_state(cls, settings: Mapping[str, Any]) -> RedisSettings:
        """The settings in the ``state`` section of config.yml (missing keys take defaults)."""
        return cls(
            url=settings.get("redis_url") or DEFAULT_URL,
            key_prefix=settings.get("key_prefix", DEFAULT_KEY_PREFIX),
            socket_timeout=settings.get("socket_timeout", DEFAULT_TIMEOUT),
            connect_timeout=settings.get("connect_timeout", DEFAULT_TIMEOUT),
            pool_size=settings.get("pool_size", DEFAULT_POOL_SIZE),
        )


def _parse(url: Any) -> tuple[str, str | None]:
    """``(host:port/db, password)`` of a Redis URL; a bad one is a ConfigError not quoting it."""
    if not isinstance(url, str):
        raise ConfigError(
            f"must be a redis:// or rediss:// URL, not {type(url).__name__}", path=_at("redis_url")
        )
    try:
        parts = urlsplit(url)
        port = parts.port or 6379
    except ValueError:
        raise ConfigError("is not a valid URL (check the port)", path=_at("redis_url")) from None
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise ConfigError(
            "must be a redis:// or rediss:// URL naming a host, e.g. redis://localhost:6379/0",
            path=_at("redis_url"),
        )
    db = parts.path.strip("/") or parse_qs(parts.query).get("db", ["0"])[0]
    if not db.isdigit():
        raise ConfigError(
            "names no database number (the path must be /0, /1, …)", path=_at("redis_url")
        )
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    password = unquote(parts.password) if parts.password else None
    return f"{host}:{port}/{int(db)}", password


def _positive(value: Any) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and value > 0
    )


def _at(name: str) -> str:
    return f"state.{name}"
