"""questfoundry-pricing-openai passes the core's standard plugin suite.

Found through its entry point, it registers what it declares, with valid settings, and loads no
library until a backend is built.
"""

from __future__ import annotations

from questfoundry.testing.plugin_suite import PluginSuite


class TestPricingOpenAIPlugin(PluginSuite):
    distribution = "questfoundry-pricing-openai"
    registers = {"cost model": ["openai"]}
    lazy_modules = ("genai_prices",)
