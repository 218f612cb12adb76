"""Registers cost model ``openai``: the kit's :class:`~questfoundry.kit.GenaiPrices` over OpenAI's
prices. genai-prices is imported when the cost model is built, not here, so listing plugins stays
fast."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from questfoundry.kit import Backend, BackendContext, GenaiPrices, hookimpl

#: genai-prices' id for OpenAI
PROVIDER_ID = "openai"


def make_openai_prices(settings: Mapping[str, Any], context: BackendContext) -> GenaiPrices:
    """Build the cost model; it has no settings."""
    return GenaiPrices(PROVIDER_ID)


@hookimpl
def cost_models() -> Mapping[str, Backend]:
    return {
        "openai": Backend(
            make_openai_prices,
            description="OpenAI prices from the genai-prices data shipped in its wheel",
        )
    }
