"""Gemini prices from the data bundled in genai-prices, never from the network.

genai-prices' own ``calc_price`` reads a process-wide snapshot that ``UpdatePrices`` (its
background fetcher, started by any library in the process) may replace with prices downloaded at
run time. This cost model builds its own snapshot from the bundled data instead, so what a call
costs depends only on the installed genai-prices version.

Matching a model name and working out its price takes genai-prices about 100 µs, so the price
found for a model is kept per calendar day (UTC): prices that change on a date apply from that
day on. A price that is a plain per-token rate is then applied directly; tiered prices (long
context) still go through genai-prices for every call.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from genai_prices import Usage as GenaiUsage
from genai_prices.data import providers as bundled_providers
from genai_prices.data_snapshot import DataSnapshot
from genai_prices.types import ModelPrice

from questfoundry.kit import DailyPrices, FixedPrices, Usage

#: genai-prices' id for Google (Gemini API and Vertex AI)
PROVIDER_ID = "google"
#: the Gemini API names models ``models/<name>``; genai-prices knows the bare name
API_PREFIX = "models/"


class GeminiPrices(DailyPrices):
    """Prices input, output and cached-input tokens of Gemini models, long-context tiers too."""

    def __init__(self) -> None:
        super().__init__()
        self._snapshot = DataSnapshot(providers=bundled_providers, from_auto_update=False)

    def name_of(self, model: str) -> str:
        return model.removeprefix(API_PREFIX)

    def lookup(self, name: str, now: datetime) -> FixedPrices | ModelPrice | None:
        try:
            _, info = self._snapshot.find_provider_model(name, None, PROVIDER_ID, None)
        except LookupError:
            return None
        prices = info.get_prices(now)
        plain = FixedPrices.per_million(
            prices.input_mtok, prices.output_mtok, prices.cache_read_mtok
        )
        return plain or prices

    def priced(self, found: object, usage: Usage) -> Decimal:
        assert isinstance(found, ModelPrice)
        return found.calc_price(to_genai_usage(usage))["total_price"]


def to_genai_usage(usage: Usage) -> GenaiUsage:
    """genai-prices counts cached tokens inside ``input_tokens``, as QuestFoundry does."""
    return GenaiUsage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=min(usage.cached_input_tokens, usage.input_tokens),
    )
