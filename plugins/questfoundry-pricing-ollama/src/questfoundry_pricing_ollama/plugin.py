"""Cost model ``ollama``: a model running on your own machine costs nothing per token.

Free is a known price, so :meth:`FreeCostModel.price` answers ``Decimal(0)`` for every model and
never None: a budget on the ``ollama`` provider is then a real (never reached) limit, not an
unpriceable one.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from questfoundry.kit import Backend, BackendContext, Usage, hookimpl

ZERO = Decimal(0)


class FreeCostModel:
    """Prices every call of every model at zero."""

    def price(self, model: str, usage: Usage) -> Decimal:
        """Zero, whatever the model and usage."""
        return ZERO


def make_free_cost_model(settings: Mapping[str, Any], context: BackendContext) -> FreeCostModel:
    """Build the cost model; it has no settings."""
    return FreeCostModel()


@hookimpl
def cost_models() -> Mapping[str, Backend]:
    return {
        "ollama": Backend(
            make_free_cost_model, description="every call to a local Ollama model costs nothing"
        )
    }
