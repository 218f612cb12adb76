"""Registers the cache backend ``file`` (``caching.backend: file``).

This module is loaded whenever plugins are listed, so it imports nothing heavy: diskcache is
imported by :func:`make_file_cache`, only when a file cache is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from questfoundry.kit import Backend, BackendContext, Capability, ConfigError, hookimpl

if TYPE_CHECKING:
    from questfoundry_cache_file.cache import FileCache

DEFAULT_CACHE_DIR = ".questfoundry/cache"
DEFAULT_MAX_CACHE_SIZE_MB = 1024
#: diskcache's eviction policies (its own names); the first is the default
EVICTION_POLICIES = ("least-recently-stored", "least-recently-used", "least-frequently-used")
_MB = 1024 * 1024

#: the settings of the ``file`` backend, written flat in ``caching`` beside ``backend: file``
SETTINGS = {
    "properties": {
        "cache_dir": {
            "type": "string",
            "minLength": 1,
            "default": DEFAULT_CACHE_DIR,
            "description": "Folder of the `file` backend, relative to the project root.",
        },
        "max_cache_size_mb": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": DEFAULT_MAX_CACHE_SIZE_MB,
            "description": (
                "Size the `file` backend keeps the cache under: past it, each new reply stored "
                "evicts ten others, chosen by `eviction_policy`."
            ),
        },
        "eviction_policy": {
            "enum": list(EVICTION_POLICIES),
            "default": EVICTION_POLICIES[0],
            "description": (
                "Which replies the `file` backend evicts when full (diskcache's policies): "
                "`least-recently-stored` the oldest stored, however often read (a hit is one "
                "read, no write); `least-recently-used` those read longest ago; "
                "`least-frequently-used` those read least often. The last two write on every hit."
            ),
        },
    }
}


def make_file_cache(settings: Mapping[str, Any], context: BackendContext) -> FileCache:
    """Build the file cache from the whole ``caching`` section.

    ``cache_dir`` (default ``.questfoundry/cache``, relative to the project root),
    ``max_cache_size_mb`` (default 1024) and ``eviction_policy`` are read here; ``ttl_seconds`` is
    not: the gateway passes a TTL with every ``set``.
    """
    from questfoundry_cache_file.cache import FileCache

    directory = context.resolve_path(settings.get("cache_dir") or DEFAULT_CACHE_DIR)
    return FileCache(
        directory,
        size_limit=_size_limit(settings),
        eviction_policy=_eviction_policy(settings),
        clock=context.clock,
    )


def _eviction_policy(settings: Mapping[str, Any]) -> str:
    policy = settings.get("eviction_policy") or EVICTION_POLICIES[0]
    if policy not in EVICTION_POLICIES:
        raise ConfigError(
            f"must be one of {', '.join(EVICTION_POLICIES)}, not {policy!r}",
            path="caching.eviction_policy",
        )
    return str(policy)


def _size_limit(settings: Mapping[str, Any]) -> int:
    size_mb = settings.get("max_cache_size_mb", DEFAULT_MAX_CACHE_SIZE_MB)
    if isinstance(size_mb, bool) or not isinstance(size_mb, (int, float)) or not size_mb > 0:
        raise ConfigError(
            f"must be a positive number of megabytes, not {size_mb!r}",
            path="caching.max_cache_size_mb",
        )
    return int(size_mb * _MB)


@hookimpl
def cache_backends() -> Mapping[str, Backend]:
    return {
        "file": Backend(
            make_file_cache,
            settings=SETTINGS,
            capabilities=frozenset(
                {Capability.TTL, Capability.SIZE_LIMIT, Capability.PERSISTENT, Capability.SHARED}
            ),
            description="replies in a diskcache folder, shared by the processes of one machine",
            priority=10,  # the default cache wherever installed: answers outlive the process
        )
    }
