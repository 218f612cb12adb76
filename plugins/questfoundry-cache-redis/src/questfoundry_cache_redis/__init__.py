"""QuestFoundry cache backend ``redis``: replies shared by every worker on one Redis.

Importing this package does not import redis-py;
:func:`~questfoundry_cache_redis.plugin.make_redis_cache` does, when a Redis cache is built.
"""

from __future__ import annotations

__all__: list[str] = []
