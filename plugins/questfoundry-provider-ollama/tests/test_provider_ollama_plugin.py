"""questfoundry-provider-ollama passes the core's standard plugin suite.

Found through its entry point, it registers what it declares, with valid settings, and loads no
library until a backend is built.
"""

from __future__ import annotations

from questfoundry.testing.plugin_suite import PluginSuite


class TestProviderOllamaPlugin(PluginSuite):
    distribution = "questfoundry-provider-ollama"
    registers = {"provider": ["ollama"]}
    lazy_modules = ("ollama", "httpx", "pydantic", "questfoundry_provider_ollama.provider")
