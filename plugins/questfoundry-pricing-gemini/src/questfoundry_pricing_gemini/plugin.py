"""Registers cost model ``gemini``. genai-prices is imported by the factory, not here, so listing
plugins stays fast."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from questfoundry.kit import Backend, BackendContext, hookimpl

if TYPE_CHECKING:
    from questfoundry_pricing_gemini.prices import GeminiPrices


def make_gemini_prices(settings: Mapping[str, Any], context: BackendContext) -> GeminiPrices:
    """Build the cost model; it has no settings."""
    from questfoundry_pricing_gemini.prices import GeminiPrices

    return GeminiPrices()


@hookimpl
def cost_models() -> Mapping[str, Backend]:
    return {
        "gemini": Backend(
            make_gemini_prices,
            description="Gemini prices, long-context tiers included, from genai-prices data",
        )
    }
