"""QuestFoundry state store ``redis``: project state as JSON documents in Redis.

Importing this package does not import redis-py;
:func:`~questfoundry_store_redis.plugin.make_redis_store` does, when a store is actually built.
"""

from __future__ import annotations

__all__: list[str] = []
