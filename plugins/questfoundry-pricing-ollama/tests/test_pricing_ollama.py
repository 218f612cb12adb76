"""The ``ollama`` cost model: conformance, and discovery through its installed entry point."""

from __future__ import annotations

from decimal import Decimal

import pytest
from questfoundry_pricing_ollama.plugin import FreeCostModel, make_free_cost_model

from questfoundry.kit import BackendContext, CostModel, Usage
from questfoundry.testing.app import get_plugin_manager
from questfoundry.testing.cost_contract import CostModelContract


class TestFreeCostModel(CostModelContract):
    known_model = None
    unknown_model = "llama3.1:8b"

    @pytest.fixture
    def cost_model(self, backend_context: BackendContext) -> CostModel:
        return make_free_cost_model({}, backend_context)


def test_installed_entry_point_registers_the_ollama_cost_model(
    backend_context: BackendContext,
) -> None:
    manager = get_plugin_manager(env={"QUESTFOUNDRY_LOAD_PLUGINS": "pricing-ollama"})
    registration = manager.get("cost model", "ollama")
    assert registration.distribution == "questfoundry-pricing-ollama"
    cost_model = manager.create("cost model", "ollama", {}, backend_context)
    assert isinstance(cost_model, FreeCostModel)


def test_a_huge_call_on_any_model_is_still_free() -> None:
    usage = Usage(input_tokens=10**9, output_tokens=10**9, cached_input_tokens=10**8)
    assert FreeCostModel().price("qwen2.5:72b", usage) == Decimal(0)
