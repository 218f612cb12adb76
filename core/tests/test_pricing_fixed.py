"""Prices from config.yml (``FixedPrices``), and the guard of the cost-model conformance suite."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest

from questfoundry.config.rates import fixed_prices_for
from questfoundry.contracts.errors import ConfigError
from questfoundry.contracts.protocols import CostModel
from questfoundry.contracts.records import Usage
from questfoundry.kit.prices import FixedPrices, fixed_prices_from
from questfoundry.testing.cost_contract import CostModelContract, replaces_standard_test

SEED_CONFIG: Mapping[str, Any] = {
    "rate_limiting": {
        "global": {"requests_per_minute": 100, "tokens_per_hour": 100000},
        "providers": {
            "openai": {
                "requests_per_minute": 90,
                "cost_per_input_token": 0.00002,
                "cost_per_output_token": 0.00006,
            },
            "ollama": {
                "requests_per_minute": 1000,
                "cost_per_input_token": 0.0,
                "cost_per_output_token": 0.0,
            },
        },
    }
}


class TestFixedPricesContract(CostModelContract):
    known_model = "gpt-4o"
    prices_every_model = True

    @pytest.fixture
    def cost_model(self) -> CostModel:
        return FixedPrices(0.00002, 0.00006, cached_input_per_token=0.00001)


class TestZeroFixedPricesContract(CostModelContract):
    """The seed's ollama prices: zero from config is free, not unknown."""

    known_model = None

    @pytest.fixture
    def cost_model(self) -> CostModel:
        prices = fixed_prices_for(SEED_CONFIG, "ollama")
        assert prices is not None
        return prices


def test_seed_prices_are_exact_decimals_not_floats() -> None:
    prices = fixed_prices_for(SEED_CONFIG, "openai")
    assert prices == FixedPrices(Decimal("0.00002"), Decimal("0.00006"))
    cost = prices.price("gpt-4o", Usage(input_tokens=1_000, output_tokens=1_000))
    assert cost == Decimal("0.08")


def test_cached_input_costs_the_input_price_when_no_cached_price_is_set() -> None:
    prices = FixedPrices("0.00002", "0.00006")
    cached = prices.price("m", Usage(input_tokens=100, cached_input_tokens=100))
    uncached = prices.price("m", Usage(input_tokens=100))
    assert cached == uncached == Decimal("0.002")


def test_cached_input_costs_the_cached_price_when_set() -> None:
    prices = FixedPrices("0.00002", "0.00006", "0.000005")
    cost = prices.price("m", Usage(input_tokens=100, output_tokens=10, cached_input_tokens=40))
    assert cost == 60 * Decimal("0.00002") + 40 * Decimal("0.000005") + 10 * Decimal("0.00006")


def test_cached_tokens_beyond_the_input_are_not_charged_twice() -> None:
    prices = FixedPrices("0.00002", "0.00006", "0.000005")
    cost = prices.price("m", Usage(input_tokens=10, cached_input_tokens=50))
    assert cost == 10 * Decimal("0.000005")


def test_settings_without_prices_give_none() -> None:
    assert fixed_prices_from({}) is None
    assert fixed_prices_from({"requests_per_minute": 90, "cost_per_day": 5.0}) is None


def test_the_pricing_section_wins_over_rate_limiting() -> None:
    config = {
        **SEED_CONFIG,
        "pricing": {
            "providers": {
                "openai": {
                    "cost_per_input_token": 0.000001,
                    "cost_per_output_token": 0.000002,
                    "cost_per_cached_input_token": 0.0000005,
                }
            }
        },
    }
    assert fixed_prices_for(config, "openai") == FixedPrices("0.000001", "0.000002", "0.0000005")


def test_a_provider_without_prices_in_config_has_none() -> None:
    assert fixed_prices_for(SEED_CONFIG, "gemini") is None
    assert fixed_prices_for({}, "openai") is None
    assert fixed_prices_for({"pricing": None, "rate_limiting": {"providers": None}}, "x") is None


def test_an_input_price_without_an_output_price_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as raised:
        fixed_prices_from({"cost_per_input_token": 0.00002}, path="rate_limiting.providers.openai")
    assert raised.value.path == "rate_limiting.providers.openai.cost_per_output_token"


@pytest.mark.parametrize(
    "bad", [-0.1, "cheap", True, None, [1], float("nan"), float("inf"), "Infinity"]
)
def test_a_price_that_is_not_a_non_negative_number_is_a_config_error(bad: object) -> None:
    settings = {"cost_per_input_token": bad, "cost_per_output_token": 0.1}
    with pytest.raises(ConfigError) as raised:
        fixed_prices_from(settings, path="pricing.providers.p")
    assert raised.value.path == "pricing.providers.p.cost_per_input_token"
    assert "\n" not in str(raised.value)


def test_prices_compare_and_hash_by_value() -> None:
    assert FixedPrices(0.5, 1) == FixedPrices("0.5", Decimal(1))
    assert len({FixedPrices(0.5, 1), FixedPrices("0.50", "1.0")}) == 1
    assert FixedPrices(0.5, 1) != FixedPrices(0.5, 1, 0.25)
    assert "0.00002" in repr(FixedPrices(0.00002, 0))


# ----------------------------------------------------------------------------- the suite's guard


def test_contract_refuses_a_subclass_that_silently_replaces_a_standard_test() -> None:
    with pytest.raises(TypeError, match="test_zero_usage_costs_nothing"):

        class Sloppy(CostModelContract):
            def test_zero_usage_costs_nothing(self, cost_model: CostModel) -> None:
                """Would always pass."""


def test_contract_accepts_a_replacement_that_says_why() -> None:
    class Deliberate(CostModelContract):
        @replaces_standard_test("this model charges a minimum fee per call")
        def test_zero_usage_costs_nothing(self, cost_model: CostModel) -> None:
            assert cost_model.price("m", Usage()) == Decimal("0.01")

    assert "test_zero_usage_costs_nothing" in vars(Deliberate)


def test_a_replacement_needs_a_reason() -> None:
    with pytest.raises(ValueError, match="why"):
        replaces_standard_test("  ")
