"""questfoundry-cache-redis passes the core's standard plugin suite.

Found through its entry point, it registers what it declares, with valid settings, and loads no
library until a backend is built.
"""

from __future__ import annotations

from questfoundry.testing.plugin_suite import PluginSuite


class TestCacheRedisPlugin(PluginSuite):
    distribution = "questfoundry-cache-redis"
    registers = {"cache backend": ["redis"]}
    lazy_modules = ("redis", "questfoundry_cache_redis.cache")
