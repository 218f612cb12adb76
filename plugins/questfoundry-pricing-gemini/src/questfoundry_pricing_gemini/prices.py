"""Gemini prices from the data bundled in genai-prices, never from the network.

genai-prices' own ``calc_price`` reads a process-wide snapshot that ``UpdatePrices`` (its
background fetcher, started by any library in the process) may replace with prices downloaded at
run time. This cost model builds its own snapshot from the bundled data instead, so what a call
costs depends only on the installed genai-prices version.
"""

from __future__ import annotations

from decimal import Decimal

from genai_prices import Usage as GenaiUsage
from genai_prices.data import providers as bundled_providers
from genai_prices.data_snapshot import DataSnapshot

from questfoundry.interfaces import Usage

#: genai-prices' id for Google (Gemini API and Vertex AI)
PROVIDER_ID = "google"
#: the Gemini API names models ``models/<name>``; genai-prices knows the bare name
API_PREFIX = "models/"


class GeminiPrices:
    """Prices input, output and cached-input tokens of Gemini models, long-context tiers too."""

    def __init__(self) -> None:
        self._snapshot = DataSnapshot(providers=bundled_providers, from_auto_update=False)

    def price(self, model: str, usage: Usage) -> Decimal | None:
        """The cost in US dollars, or None when genai-prices does not know ``model``."""
        name = model.removeprefix(API_PREFIX)
        try:
            found = self._snapshot.calc(to_genai_usage(usage), name, PROVIDER_ID, None, None)
        except LookupError:
            return None
        return found.total_price


def to_genai_usage(usage: Usage) -> GenaiUsage:
    """genai-prices counts cached tokens inside ``input_tokens``, as QuestFoundry does."""
    return GenaiUsage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=min(usage.cached_input_tokens, usage.input_tokens),
    )
