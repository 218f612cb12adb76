"""questfoundry-provider-gemini passes the core's standard plugin suite.

Found through its entry point, it registers what it declares, with valid settings, and loads no
library until a backend is built.
"""

from __future__ import annotations

from questfoundry.testing.plugin_suite import PluginSuite


class TestProviderGeminiPlugin(PluginSuite):
    distribution = "questfoundry-provider-gemini"
    registers = {"provider": ["gemini"]}
    lazy_modules = ("google.genai", "httpx", "pydantic", "questfoundry_provider_gemini.provider")
