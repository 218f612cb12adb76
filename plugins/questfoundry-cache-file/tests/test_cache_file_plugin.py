"""questfoundry-cache-file passes the core's standard plugin suite.

Found through its entry point, it registers what it declares, with valid settings, and loads no
library until a backend is built.
"""

from __future__ import annotations

from questfoundry.testing.plugin_suite import PluginSuite


class TestCacheFilePlugin(PluginSuite):
    distribution = "questfoundry-cache-file"
    registers = {"cache backend": ["file"]}
    lazy_modules = ("diskcache", "questfoundry_cache_file.cache")
