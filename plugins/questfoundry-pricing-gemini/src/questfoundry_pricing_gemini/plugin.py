"""Registers cost model ``gemini``: the kit's :class:`~questfoundry.kit.GenaiPrices` over Google's
prices. genai-prices is imported when the cost model is built, not here, so listing plugins stays
fast."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from questfoundry.kit import Backend, BackendContext, GenaiPrices, hookimpl

#: genai-prices' id for Google (Gemini API and Vertex AI)
PROVIDER_ID = "google"
#: the Gemini API names models ``models/<name>``; genai-prices knows the bare name
API_PREFIX = "models/"


def make_gemini_prices(settings: Mapping[str, Any], context: BackendContext) -> GenaiPrices:
    """Build the cost model; it has no settings."""
    return GenaiPrices(PROVIDER_ID, model_prefix=API_PREFIX)


@hookimpl
def cost_models() -> Mapping[str, Backend]:
    return {
        "gemini": Backend(
            make_gemini_prices,
            description="Gemini prices, long-context tiers included, from genai-prices data",
        )
    }
