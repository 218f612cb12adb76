"""One way for every Redis plugin to read where its Redis is, print it, and name its keys.

The cache, the limiter and the state store each take ``redis_url``, ``key_prefix``,
``socket_timeout`` and ``connect_timeout`` in their config section. :class:`RedisSettings` reads
and checks them once for all three (without importing redis-py: the core does not depend on it):

- **the URL**: ``redis://``, ``rediss://`` (TLS) or ``unix://``; a bad one is a
  :class:`~questfoundry.contracts.errors.ConfigError` naming the key, never quoting the URL;
- **its password** is registered for redaction the moment it is read, and :attr:`~RedisSettings.
  address` (``host:port/db``, or ``unix:<path>/db``) is what messages show instead of the URL;
- **the keys** of a project: :meth:`~RedisSettings.prefix` puts the namespace, escaped, between
  ``key_prefix`` and the plugin's own area (``<key_prefix><namespace>:<area>:``), so no
  project's keys begin like another's; :func:`redis_scan_pattern` matches a prefix literally;
- **the connection**: :meth:`~RedisSettings.client_options` are the keyword arguments every
  plugin gives redis-py's ``from_url`` (short timeouts, no retry on a timeout, no health checks);
  the plugin adds ``retry=Retry(NoBackoff(), 0)``, which needs redis-py itself;
- **outages**: :func:`redis_outage` says when to warn, so an outage costs one warning per process
  and backend, and when to say Redis is back.

The namespace is escaped by percent-encoding exactly ``%``, ``:``, ``{`` and ``}``: a ``:``
would let one project's prefix begin another's, braces would break a Redis Cluster hash tag, and
``%`` keeps the encoding reversible. Every other character is kept, so the keys of an ordinary
project name read as written.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from questfoundry.contracts.errors import ConfigError
from questfoundry.kit.redaction import register_secret

__all__ = ["RedisSettings", "redis_outage", "redis_scan_pattern", "redis_schema"]

SCHEMES = ("redis", "rediss", "unix")
DEFAULT_URL = "redis://localhost:6379/0"
DEFAULT_TIMEOUT = 0.1
DEFAULT_PORT = 6379
SCHEMES_TEXT = "a redis://, rediss:// or unix:// URL"
EXAMPLE = "e.g. redis://localhost:6379/0"

_ESCAPES = str.maketrans({char: f"%{ord(char):02X}" for char in "%:{}"})
_GLOB = str.maketrans({char: "\\" + char for char in "*?[]\\"})


@dataclass(frozen=True)
class RedisSettings:
    """Where a Redis plugin connects and how; its ``repr`` never shows the URL or password.

    Built by :meth:`read` from a config section, or directly; either way every value is checked
    (``section`` is where they sit in config.yml, for the error's path).
    """

    url: str = field(default=DEFAULT_URL, repr=False)
    key_prefix: str = ""
    socket_timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = DEFAULT_TIMEOUT
    section: str = field(default="", repr=False, compare=False)
    #: ``host:port/db`` (``unix:<path>/db`` for a socket): what messages may show
    address: str = field(init=False)
    password: str | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        address, password = self._parse(self.url)
        object.__setattr__(self, "address", address)
        object.__setattr__(self, "password", password)
        register_secret(password)
        if not isinstance(self.key_prefix, str):
            raise ConfigError(f"must be text, not {self.key_prefix!r}", path=self._at("key_prefix"))
        for name in ("socket_timeout", "connect_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                value = math.nan
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(
                    f"must be a positive number of seconds, not {getattr(self, name)!r}",
                    path=self._at(name),
                )

    @classmethod
    def read(
        cls,
        settings: Mapping[str, Any],
        section: str,
        *,
        url: str | None = DEFAULT_URL,
        key_prefix: str = "",
    ) -> RedisSettings:
        """The four settings of the config section ``section``; missing ones take these
        defaults (``url=None``: the URL is required)."""
        found = settings.get("redis_url") or url
        if found is None:
            raise ConfigError(
                f"is missing: the redis backend needs {SCHEMES_TEXT}, {EXAMPLE}",
                path=f"{section}.redis_url",
            )
        return cls(
            url=found,
            key_prefix=settings.get("key_prefix", key_prefix),
            socket_timeout=settings.get("socket_timeout", DEFAULT_TIMEOUT),
            connect_timeout=settings.get("connect_timeout", DEFAULT_TIMEOUT),
            section=section,
        )

    def prefix(self, namespace: str, area: str = "", *, hash_tag: bool = False) -> str:
        """The start of every key of project ``namespace``: ``<key_prefix><namespace>:<area>:``.

        With ``hash_tag`` the namespace is a Redis Cluster hash tag, ``{qf:<namespace>}``, so
        every key of the project hashes to one slot and one script may touch them all.
        """
        name = namespace.translate(_ESCAPES)
        project = f"{{qf:{name}}}" if hash_tag else name
        return f"{self.key_prefix}{project}:" + (f"{area}:" if area else "")

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for redis-py's ``from_url``: bounded waits, nothing retried."""
        return {
            "socket_timeout": float(self.socket_timeout),
            "socket_connect_timeout": float(self.connect_timeout),
            "retry_on_timeout": False,
            "health_check_interval": 0,
        }

    def _parse(self, url: object) -> tuple[str, str | None]:
        """``(address, password)`` of a Redis URL; a ConfigError that never quotes it."""
        if not isinstance(url, str):
            raise ConfigError(
                f"must be {SCHEMES_TEXT}, not {type(url).__name__}", path=self._at("redis_url")
            )
        try:
            parts = urlsplit(url)
            port = parts.port or DEFAULT_PORT
        except ValueError:
            raise ConfigError(
                "is not a valid URL (check the port)", path=self._at("redis_url")
            ) from None
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES or not url.lower().startswith(f"{scheme}://"):
            raise ConfigError(f"must be {SCHEMES_TEXT}, {EXAMPLE}", path=self._at("redis_url"))
        query = parse_qs(parts.query)
        db = query.get("db", [parts.path.strip("/") if scheme != "unix" else ""])[0] or "0"
        if not db.isdigit():
            raise ConfigError(
                "names no database number (the path must be /0, /1, …)",
                path=self._at("redis_url"),
            )
        if scheme == "unix":
            if not parts.path:
                raise ConfigError(
                    "names no socket: write unix:///path/to/redis.sock",
                    path=self._at("redis_url"),
                )
            place = f"unix:{unquote(parts.path)}"
        elif parts.hostname:
            host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
            place = f"{host}:{port}"
        else:
            raise ConfigError(f"names no host, {EXAMPLE}", path=self._at("redis_url"))
        password = unquote(parts.password) if parts.password else query.get("password", [None])[0]
        return f"{place}/{int(db)}", password

    def _at(self, name: str) -> str:
        return f"{self.section}.{name}" if self.section else name


_down: set[str] = set()
_down_lock = threading.Lock()


def redis_outage(backend: str, *, down: bool) -> bool:
    """Note whether the Redis behind ``backend`` (a label naming the backend and its address)
    just failed or just answered; True when that changes what this process knows.

    So a plugin warns when it returns True for ``down=True`` (the first failure of an outage,
    once per process however many objects, threads and calls meet it) and says Redis is back
    when it returns True for ``down=False``.
    """
    if down == (backend in _down):  # nothing new: the usual answer, without the lock
        return False
    with _down_lock:
        if down == (backend in _down):
            return False
        if down:
            _down.add(backend)
        else:
            _down.discard(backend)
        return True


def redis_scan_pattern(prefix: str) -> str:
    """A ``SCAN … MATCH`` pattern for every key starting with ``prefix``, taken literally."""
    return prefix.translate(_GLOB) + "*"


def redis_schema(
    *,
    url: str,
    key_prefix: str,
    socket_timeout: str,
    connect_timeout: str,
    default_url: str | None = DEFAULT_URL,
    default_prefix: str | None = None,
) -> dict[str, dict[str, Any]]:
    """The schema properties of the four settings :class:`RedisSettings` reads, each described
    in the plugin's own words (what its timeouts mean for a call differs from one to another).

    ``default_url`` None: the URL is required; ``default_prefix`` None: no prefix by default.
    """
    timeout = {"type": "number", "exclusiveMinimum": 0, "default": DEFAULT_TIMEOUT}
    where: dict[str, Any] = {"type": "string", "pattern": "^(redis|rediss|unix)://"}
    before: dict[str, Any] = {"type": "string"}
    if default_url is not None:
        where["default"] = default_url
    if default_prefix is not None:
        before["default"] = default_prefix
    return {
        "redis_url": {**where, "description": url},
        "key_prefix": {**before, "description": key_prefix},
        "socket_timeout": {**timeout, "description": socket_timeout},
        "connect_timeout": {**timeout, "description": connect_timeout},
    }
