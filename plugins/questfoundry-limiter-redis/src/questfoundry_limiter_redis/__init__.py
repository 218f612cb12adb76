"""QuestFoundry limiter strategy and budget keeper ``redis``: limits and budgets every worker on one
Redis shares exactly.

Importing this package does not import redis-py; the factories in
:mod:`questfoundry_limiter_redis.plugin` do, when a limiter or keeper is actually built.
"""

from __future__ import annotations

__all__: list[str] = []
