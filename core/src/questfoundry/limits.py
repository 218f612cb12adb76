"""Rate limits and budgets as config.yml states them, and the estimate a call is admitted on.

``rate_limiting.global`` and ``rate_limiting.providers.<name>`` both apply to a call. Requests and
tokens are token buckets in the limiter (keys ``global/requests``, ``provider:openai/tokens``, …);
cost per day and per month are :class:`Budget` s, kept by a budget keeper
(:mod:`questfoundry.budgets`) and checked before a call is sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from questfoundry.interfaces import Message, Rate, Usage

#: a budget's calendar window, in ``rate_limiting.timezone``
Period = Literal["day", "month"]

#: config key → (limiter dimension, seconds in its period)
RATE_KEYS = {"requests_per_minute": ("requests", 60.0), "tokens_per_hour": ("tokens", 3600.0)}
BUDGET_KEYS: dict[str, Period] = {"cost_per_day": "day", "cost_per_month": "month"}

#: output tokens assumed when a request sets no max_tokens
DEFAULT_OUTPUT_ESTIMATE = 1024
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4


@dataclass(frozen=True)
class Budget:
    """At most ``limit`` US dollars per calendar ``period``, for one provider or (None) for all."""

    scope: str | None
    period: Period
    limit: Decimal

    def applies_to(self, provider: str) -> bool:
        return self.scope is None or self.scope == provider

    def describe(self) -> str:
        span = "daily" if self.period == "day" else "monthly"
        return f"{span} budget for {self.scope or 'all providers'}"


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


def estimate_usage(
    messages: Iterable[Message], prompt: str | None, params: Mapping[str, Any]
) -> Usage:
    """A deliberately generous guess of a call's tokens, made without a tokenizer download.

    Input: about four characters a token plus a few tokens of framing per message. Output: the
    request's ``max_tokens``, or :data:`DEFAULT_OUTPUT_ESTIMATE`. Reconciled with the real usage
    once the provider answers.
    """
    chars = len(prompt or "")
    count = 0
    for message in messages:
        chars += len(message.content)
        count += 1
    input_tokens = chars // CHARS_PER_TOKEN + 1 + TOKENS_PER_MESSAGE * count
    output_tokens = int(params.get("max_tokens") or DEFAULT_OUTPUT_ESTIMATE)
    return Usage(input_tokens, output_tokens)


def admission(provider: str, tokens: int) -> dict[str, float]:
    """What one attempt takes from the buckets: one request and its estimated tokens, twice."""
    return {
        "global/requests": 1.0,
        "global/tokens": float(tokens),
        f"provider:{provider}/requests": 1.0,
        f"provider:{provider}/tokens": float(tokens),
    }
