"""Registers cost model ``openai``. genai-prices is imported by the factory, not here, so listing
plugins stays fast."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from questfoundry.kit import Backend, BackendContext, hookimpl

if TYPE_CHECKING:
    from questfoundry_pricing_openai.prices import OpenAIPrices


def make_openai_prices(settings: Mapping[str, Any], context: BackendContext) -> OpenAIPrices:
    """Build the cost model; it has no settings."""
    from questfoundry_pricing_openai.prices import OpenAIPrices

    return OpenAIPrices()


@hookimpl
def cost_models() -> Mapping[str, Backend]:
    return {
        "openai": Backend(
            make_openai_prices,
            description="OpenAI prices from the genai-prices data shipped in its wheel",
        )
    }
