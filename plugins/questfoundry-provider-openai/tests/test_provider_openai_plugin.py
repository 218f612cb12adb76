"""questfoundry-provider-openai passes the core's standard plugin suite.

Found through its entry point, it registers what it declares, with valid settings, and loads no
library until a backend is built.
"""

from __future__ import annotations

from questfoundry.testing.plugin_suite import PluginSuite


class TestProviderOpenAIPlugin(PluginSuite):
    distribution = "questfoundry-provider-openai"
    registers = {"provider": ["openai"]}
    lazy_modules = ("openai", "questfoundry_provider_openai.provider")
