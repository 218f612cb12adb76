"""Built-in cache backend ``memory``: bounded LRU with TTL, shared by the threads of one process.

Bounded twice, by entry count (``caching.max_entries``) and by the bytes of the values it holds
(``caching.max_cache_size_mb``): whichever is reached first evicts the least recently used entries.
A single value larger than the byte bound is not stored. Hits and misses count this process only.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from questfoundry.kit import (
    Backend,
    BackendContext,
    CacheStats,
    Capability,
    Clock,
    ConfigError,
    hookimpl,
)

DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_MAX_CACHE_SIZE_MB = 1024
_MB = 1024 * 1024


class MemoryCache:
    """Evicts the least recently used entries beyond ``max_entries`` or ``max_bytes``.

    Expired entries are misses, dropped when read or pruned.
    """

    capabilities = frozenset({Capability.TTL, Capability.SIZE_LIMIT, Capability.NON_BLOCKING})

    def __init__(
        self,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Clock | None = None,
        max_bytes: int = DEFAULT_MAX_CACHE_SIZE_MB * _MB,
    ) -> None:
        if max_entries < 1:
            raise ConfigError(f"must be at least 1, not {max_entries}", path="caching.max_entries")
        if max_bytes < 1:
            raise ConfigError(
                f"must be a positive number of megabytes, not {max_bytes / _MB:g}",
                path="caching.max_cache_size_mb",
            )
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock or Clock()
        self._entries: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()
        self._bytes = 0  # the sum of the values' lengths, kept as entries come and go
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    def get(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                value, expires = entry
                if expires is None or expires > self._clock.monotonic():
                    self._entries.move_to_end(key)
                    self._hits += 1
                    return value
                self._drop(key)
            self._misses += 1
            return None

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store ``value``, evicting as needed; one larger than ``max_bytes`` replaces nothing."""
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"cache values are bytes, not {type(value).__name__}")
        value = bytes(value)
        expires = None if ttl is None else self._clock.monotonic() + ttl
        with self._lock:
            if key in self._entries:
                self._drop(key)
            if len(value) > self.max_bytes:
                return
            self._entries[key] = (value, expires)
            self._bytes += len(value)
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                _, (evicted, _) = self._entries.popitem(last=False)
                self._bytes -= len(evicted)

    def delete(self, key: str) -> bool:
        with self._lock:
            if key not in self._entries:
                return False
            self._drop(key)
            return True

    def clear(self) -> int:
        with self._lock:
            count = len(self._entries)
            self._entries.clear()
            self._bytes = 0
            return count

    def prune(self) -> int:
        now = self._clock.monotonic()
        with self._lock:
            expired = [k for k, (_, exp) in self._entries.items() if exp is not None and exp <= now]
            for key in expired:
                self._drop(key)
            return len(expired)

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(len(self._entries), self._bytes, self._hits, self._misses)

    def close(self) -> None:
        """Nothing to release."""

    def _drop(self, key: str) -> None:
        """Remove ``key`` (present; the lock held) and its bytes from the total."""
        value, _ = self._entries.pop(key)
        self._bytes -= len(value)


def make_memory_cache(settings: Mapping[str, Any], context: BackendContext) -> MemoryCache:
    """The memory cache bounded by the ``caching`` section's ``max_entries`` and size in MB."""
    size_mb = settings.get("max_cache_size_mb", DEFAULT_MAX_CACHE_SIZE_MB)
    return MemoryCache(
        int(settings.get("max_entries", DEFAULT_MAX_ENTRIES)),
        context.clock,
        max_bytes=int(size_mb * _MB),
    )


@hookimpl
def cache_backends() -> dict[str, Backend]:
    return {
        "memory": Backend(
            make_memory_cache,
            settings={"$ref": "#/$defs/memory_cache"},  # the core schema holds built-ins' settings
            capabilities=MemoryCache.capabilities,
            description="least recently used replies in this process's memory",
        )
    }
