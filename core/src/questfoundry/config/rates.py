"""What config.yml says about money and limits: rates, budgets and prices.

``rate_limiting.global`` and ``rate_limiting.providers.<name>`` both apply to a call. Requests and
tokens are token buckets in the limiter (keys ``global/requests``, ``provider:openai/tokens``, …);
cost per day and per month are :class:`~questfoundry.contracts.records.Budget` s, kept by a budget
keeper and checked before a call is sent. Prices written in config override a provider's cost
model plugin.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from questfoundry.contracts.records import Budget, Period, Rate
from questfoundry.kit.prices import FixedPrices, fixed_prices_from

#: config key → (limiter dimension, seconds in its period)
RATE_KEYS = {"requests_per_minute": ("requests", 60.0), "tokens_per_hour": ("tokens", 3600.0)}
BUDGET_KEYS: dict[str, Period] = {"cost_per_day": "day", "cost_per_month": "month"}


def _scopes(settings: Mapping[str, Any]) -> Iterable[tuple[str | None, Mapping[str, Any]]]:
    yield None, settings.get("global") or {}
    for provider, limits in (settings.get("providers") or {}).items():
        yield provider, limits or {}


def scope_key(provider: str | None, dimension: str) -> str:
    return f"global/{dimension}" if provider is None else f"provider:{provider}/{dimension}"


def rates_from(settings: Mapping[str, Any]) -> list[Rate]:
    """The limiter buckets the ``rate_limiting`` section asks for."""
    rates = []
    for provider, limits in _scopes(settings):
        for key, (dimension, period) in RATE_KEYS.items():
            if limits.get(key) is not None:
                rates.append(Rate(scope_key(provider, dimension), float(limits[key]), period))
    return rates


def budgets_from(settings: Mapping[str, Any]) -> list[Budget]:
    """The cost budgets the ``rate_limiting`` section asks for."""
    budgets = []
    for provider, limits in _scopes(settings):
        for key, period in BUDGET_KEYS.items():
            if limits.get(key) is not None:
                budgets.append(Budget(provider, period, Decimal(str(limits[key]))))
    return budgets


def fixed_prices_for(config: Mapping[str, Any], provider: str) -> FixedPrices | None:
    """The prices config.yml sets for ``provider``, or None.

    ``pricing.providers.<provider>`` wins over ``rate_limiting.providers.<provider>`` (where the
    seed config puts them): the pricing section is the more specific place to say it.
    """
    for section in ("pricing", "rate_limiting"):
        settings = _section(config, section, "providers", provider)
        prices = fixed_prices_from(settings, path=f"{section}.providers.{provider}")
        if prices is not None:
            return prices
    return None


def _section(config: Mapping[str, Any], *keys: str) -> Mapping[str, Any]:
    node: Any = config
    for key in keys:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else {}
