"""Built-in cache backend ``memory``: bounded LRU with TTL, shared by the threads of one process."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from questfoundry.errors import ConfigError
from questfoundry.hookspecs import hookimpl
from questfoundry.interfaces import BackendContext, CacheStats, Capability, Clock
from questfoundry.plugins import Backend

DEFAULT_MAX_ENTRIES = 10_000


class MemoryCache:
    """Evicts the least recently used entries beyond ``max_entries``; expired ones are misses."""

    capabilities = frozenset({Capability.TTL, Capability.SIZE_LIMIT})

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES, clock: Clock | None = None) -> None:
        if max_entries < 1:
            raise ConfigError(f"must be at least 1, not {max_entries}", path="caching.max_entries")
        self.max_entries = max_entries
        self._clock = clock or Clock()
        self._entries: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()
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
                del self._entries[key]
            self._misses += 1
            return None

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"cache values are bytes, not {type(value).__name__}")
        expires = None if ttl is None else self._clock.monotonic() + ttl
        with self._lock:
            self._entries[key] = (bytes(value), expires)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def delete(self, key: str) -> bool:
        with self._lock:
            return self._entries.pop(key, None) is not None

    def clear(self) -> int:
        with self._lock:
            count = len(self._entries)
            self._entries.clear()
            return count

    def prune(self) -> int:
        now = self._clock.monotonic()
        with self._lock:
            expired = [k for k, (_, exp) in self._entries.items() if exp is not None and exp <= now]
            for key in expired:
                del self._entries[key]
            return len(expired)

    def stats(self) -> CacheStats:
        with self._lock:
            size = sum(len(value) for value, _ in self._entries.values())
            return CacheStats(len(self._entries), size, self._hits, self._misses)

    def close(self) -> None:
        """Nothing to release."""


def make_memory_cache(settings: Mapping[str, Any], context: BackendContext) -> MemoryCache:
    return MemoryCache(int(settings.get("max_entries", DEFAULT_MAX_ENTRIES)), context.clock)


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
