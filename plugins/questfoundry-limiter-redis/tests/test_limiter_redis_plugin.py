"""questfoundry-limiter-redis passes the core's standard plugin suite.

Found through its entry point, it registers what it declares, with valid settings, and loads no
library until a backend is built.
"""

from __future__ import annotations

from questfoundry.testing.plugin_suite import PluginSuite


class TestLimiterRedisPlugin(PluginSuite):
    distribution = "questfoundry-limiter-redis"
    registers = {"limiter strategy": ["redis"], "budget keeper": ["redis"]}
    lazy_modules = (
        "redis",
        "questfoundry_limiter_redis.limiter",
        "questfoundry_limiter_redis.budgets",
    )
