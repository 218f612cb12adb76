"""QuestFoundry cost model ``ollama``: local models, every token free."""

from __future__ import annotations

from questfoundry_pricing_ollama.plugin import FreeCostModel

__all__ = ["FreeCostModel"]
