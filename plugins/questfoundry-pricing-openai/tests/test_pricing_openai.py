"""The ``openai`` cost model: conformance, agreement with genai-prices, and no network ever."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
import pytest
from genai_prices.data import providers as bundled_providers
from genai_prices.data_snapshot import DataSnapshot, set_custom_snapshot
from hypothesis import given, settings
from hypothesis import strategies as st
from questfoundry_pricing_openai.plugin import make_openai_prices

from questfoundry.kit import BackendContext, CostModel, GenaiPrices, Usage
from questfoundry.testing.app import get_plugin_manager
from questfoundry.testing.cost_contract import (
    CostModelContract,
    price_offline_in_fresh_interpreter,
)

USAGE = Usage(input_tokens=12_345, output_tokens=678, cached_input_tokens=2_048)


class TestGenaiPricesContract(CostModelContract):
    known_model = "gpt-4o"
    unknown_model = "questfoundry-no-such-model"

    @pytest.fixture
    def cost_model(self, backend_context: BackendContext) -> CostModel:
        manager = get_plugin_manager(env={"QUESTFOUNDRY_LOAD_PLUGINS": "pricing-openai"})
        model: CostModel = manager.create("cost model", "openai", {}, backend_context)
        return model


def built() -> GenaiPrices:
    """The cost model as the plugin's factory builds it."""
    return make_openai_prices({}, BackendContext(Path.cwd(), "pricing"))


@pytest.fixture
def prices() -> GenaiPrices:
    return built()


@pytest.fixture
def fetched_snapshot_is_empty() -> Iterator[None]:
    """Stand in for genai-prices' auto-update having replaced its prices with a fetched set."""
    set_custom_snapshot(DataSnapshot(providers=[], from_auto_update=True))
    yield
    set_custom_snapshot(None)


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4o-mini"])
def test_price_equals_genai_prices_calc_price_for_the_same_usage(
    prices: GenaiPrices, model: str
) -> None:
    usage = genai_prices.Usage(input_tokens=12_345, output_tokens=678, cache_read_tokens=2_048)
    expected = genai_prices.calc_price(usage, model, provider_id="openai").total_price
    assert prices.price(model, USAGE) == expected
    assert expected > 0


def test_gpt_4o_costs_its_published_per_token_prices(prices: GenaiPrices) -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000, cached_input_tokens=0)
    assert prices.price("gpt-4o", usage) == Decimal("2.5") + Decimal("10")


def test_cached_input_tokens_cost_less_than_uncached_ones(prices: GenaiPrices) -> None:
    uncached = prices.price("gpt-4o", Usage(input_tokens=10_000))
    cached = prices.price("gpt-4o", Usage(input_tokens=10_000, cached_input_tokens=10_000))
    assert uncached is not None and cached is not None
    assert 0 < cached < uncached


def test_a_dated_model_name_prices_as_its_model(prices: GenaiPrices) -> None:
    assert prices.price("gpt-4o-2024-08-06", USAGE) == prices.price("gpt-4o", USAGE)


def test_a_model_of_another_provider_is_unknown(prices: GenaiPrices) -> None:
    assert prices.price("gemini-2.5-flash", USAGE) is None


@pytest.mark.usefixtures("fetched_snapshot_is_empty")
def test_prices_come_from_the_bundled_data_even_when_a_fetched_snapshot_is_active(
    prices: GenaiPrices,
) -> None:
    with pytest.raises(LookupError):
        genai_prices.calc_price(genai_prices.Usage(input_tokens=1), "gpt-4o", provider_id="openai")
    assert prices.price("gpt-4o", Usage(input_tokens=1_000_000)) == Decimal("2.5")


@pytest.mark.slow
def test_building_and_pricing_opens_no_socket_and_starts_no_price_updater() -> None:
    report = price_offline_in_fresh_interpreter("pricing-openai", "openai", "gpt-4o")
    assert report.attempts == []
    assert report.threads == []
    assert report.known is not None and report.known > 0
    assert report.unknown is None


@settings(max_examples=60, deadline=None)
@given(
    model=st.sampled_from([m.id for p in bundled_providers if p.id == "openai" for m in p.models]),
    input_tokens=st.integers(0, 400_000),
    output_tokens=st.integers(0, 100_000),
    cached_share=st.floats(0, 1),
)
def test_every_bundled_model_prices_exactly_as_genai_prices_from_the_remembered_rates(
    model: str, input_tokens: int, output_tokens: int, cached_share: float
) -> None:
    prices = built()
    usage = Usage(input_tokens, output_tokens, int(input_tokens * cached_share))
    try:
        expected = genai_prices.calc_price(genai_usage(usage), model, provider_id="openai")
    except LookupError:  # a listed id its own match rules do not take (``ft:`` names)
        assert prices.price(model, usage) is None
        return
    first = prices.price(model, usage)
    again = prices.price(model, usage)  # from the rates remembered for today
    assert first == again == expected.total_price


def test_a_model_is_matched_once_a_day(
    prices: GenaiPrices, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups: list[str] = []
    original = prices.lookup

    def counting(model: str, now: Any) -> Any:
        lookups.append(model)
        return original(model, now)

    monkeypatch.setattr(prices, "lookup", counting)
    for tokens in range(1, 20):
        prices.price("gpt-4o", Usage(tokens * 100, tokens))
    assert len(lookups) == 1


def genai_usage(usage: Usage) -> genai_prices.Usage:
    """The same call as genai-prices counts it: cached tokens are part of the input tokens."""
    return genai_prices.Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=min(usage.cached_input_tokens, usage.input_tokens),
    )
