"""questfoundry-pricing-gemini passes the core's standard plugin suite.

Found through its entry point, it registers what it declares, with valid settings, and loads no
library until a backend is built.
"""

from __future__ import annotations

from questfoundry.testing.plugin_suite import PluginSuite


class TestPricingGeminiPlugin(PluginSuite):
    distribution = "questfoundry-pricing-gemini"
    registers = {"cost model": ["gemini"]}
    lazy_modules = ("genai_prices",)
