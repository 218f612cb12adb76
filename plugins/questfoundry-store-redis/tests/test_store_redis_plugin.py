"""questfoundry-store-redis passes the core's standard plugin suite.

Found through its entry point, it registers what it declares, with valid settings, and loads no
library until a backend is built.
"""

from __future__ import annotations

from questfoundry.testing.plugin_suite import PluginSuite


class TestStoreRedisPlugin(PluginSuite):
    distribution = "questfoundry-store-redis"
    registers = {"state store": ["redis"]}
    lazy_modules = ("redis", "questfoundry_store_redis.store")
