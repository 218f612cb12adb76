"""Prices written in config.yml: a per-token :class:`~questfoundry.contracts.protocols.CostModel`.

The seed config prices a provider next to its rate limits::

    rate_limiting:
      providers:
        openai:
          cost_per_input_token: 0.00002
          cost_per_output_token: 0.00006

and ``pricing.providers.<provider>`` takes the same keys. Prices given in config override the
provider's cost model plugin. Money is :class:`~decimal.Decimal`: a YAML float is converted through
its shortest ``repr`` (``str(0.00002)``), so the price a user wrote is the price used, exactly,
not the binary float nearest to it.

The cost model plugins build on :class:`DailyPrices` (a dated price list, looked up once a day);
:class:`GenaiPrices` is one over the data bundled in genai-prices, shared by the ``openai`` and
``gemini`` cost models.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from questfoundry.contracts.errors import ConfigError
from questfoundry.contracts.records import Usage

if TYPE_CHECKING:
    import genai_prices

INPUT_KEY = "cost_per_input_token"
OUTPUT_KEY = "cost_per_output_token"
CACHED_INPUT_KEY = "cost_per_cached_input_token"
#: the keys that set a price; other ``cost_per_*`` keys (``cost_per_day``) are budgets
PRICE_KEYS = (INPUT_KEY, OUTPUT_KEY, CACHED_INPUT_KEY)

PriceValue = Decimal | float | int | str


def to_price(value: object, *, path: str = "") -> Decimal:
    """A finite, non-negative Decimal from a config value; ConfigError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (Decimal, float, int, str)):
        raise ConfigError(f"a price must be a number, not {value!r}", path=path)
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"a price must be a finite number, not {value!r}", path=path)
    try:
        price = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        raise ConfigError(f"a price must be a number, not {value!r}", path=path) from None
    if not price.is_finite() or price < 0:
        raise ConfigError(f"a price must be a finite number of at least 0, not {value}", path=path)
    return price


class FixedPrices:
    """The same per-token prices for every model of a provider, in US dollars.

    Cached input tokens (the part of the input the provider had cached) cost
    ``cached_input_per_token`` when given, else the normal input price: without a configured
    discount the cost is never under-estimated.
    """

    __slots__ = ("cached_input_per_token", "input_per_token", "output_per_token")

    def __init__(
        self,
        input_per_token: PriceValue,
        output_per_token: PriceValue,
        cached_input_per_token: PriceValue | None = None,
    ) -> None:
        self.input_per_token = to_price(input_per_token)
        self.output_per_token = to_price(output_per_token)
        self.cached_input_per_token = (
            None if cached_input_per_token is None else to_price(cached_input_per_token)
        )

    @classmethod
    def per_million(
        cls, input_mtok: object, output_mtok: object, cached_input_mtok: object = None
    ) -> FixedPrices | None:
        """Prices stated per million tokens, as price lists give them (a missing input or output
        price is 0); None when one is not a plain number (a tiered price, say)."""
        rates = (input_mtok, output_mtok, cached_input_mtok)
        if not all(rate is None or isinstance(rate, Decimal) for rate in rates):
            return None
        per_token = [rate / 1_000_000 if isinstance(rate, Decimal) else None for rate in rates]
        zero = Decimal(0)
        return cls(per_token[0] or zero, per_token[1] or zero, per_token[2])

    def price(self, model: str, usage: Usage) -> Decimal:
        """The cost of ``usage``; the model does not matter, so the price is never unknown."""
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        cached_rate = self.cached_input_per_token
        if cached_rate is None:
            cached_rate = self.input_per_token
        return (
            (usage.input_tokens - cached) * self.input_per_token
            + cached * cached_rate
            + usage.output_tokens * self.output_per_token
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FixedPrices):
            return NotImplemented
        return self._prices() == other._prices()

    def __hash__(self) -> int:
        return hash(self._prices())

    def __repr__(self) -> str:
        cached = self.cached_input_per_token
        return (
            f"FixedPrices(input_per_token={self.input_per_token}, "
            f"output_per_token={self.output_per_token}, cached_input_per_token={cached})"
        )

    def _prices(self) -> tuple[Decimal, Decimal, Decimal | None]:
        return (self.input_per_token, self.output_per_token, self.cached_input_per_token)


class DailyPrices:
    """A cost model over a dated price list: each model's price is found once a UTC day.

    Subclasses implement :meth:`lookup` (the model's price on that date: :class:`FixedPrices` for
    plain per-token rates, anything else for prices :meth:`priced` must work out per call, None
    when the model is unknown) and, for the latter, :meth:`priced`. Prices that change on a date
    apply from that day on.
    """

    def __init__(self) -> None:
        self._found: dict[tuple[str, date], object] = {}

    def name_of(self, model: str) -> str:
        """The name the price list knows ``model`` by (as given, unless overridden)."""
        return model

    def lookup(self, name: str, now: datetime) -> object:
        raise NotImplementedError

    def priced(self, found: object, usage: Usage) -> Decimal:
        raise NotImplementedError(f"{type(self).__name__} found a price it cannot apply")

    def price(self, model: str, usage: Usage) -> Decimal | None:
        """The cost in US dollars, or None when the price list does not know ``model``."""
        now = datetime.now(timezone.utc)
        handle = (self.name_of(model), now.date())
        found = self._found.get(handle)
        if found is None and handle not in self._found:
            found = self._found[handle] = self.lookup(handle[0], now)
        if found is None:
            return None
        if isinstance(found, FixedPrices):
            return found.price(model, usage)
        return self.priced(found, usage)


class GenaiPrices(DailyPrices):
    """One provider's prices from the data bundled in genai-prices, never from the network.

    genai-prices' own ``calc_price`` reads a process-wide snapshot that ``UpdatePrices`` (its
    background fetcher, started by any library in the process) may replace with prices
    downloaded at run time. This cost model builds its own snapshot from the bundled data
    instead, so what a call costs depends only on the installed genai-prices version.

    Matching a model name costs genai-prices about 100 µs, so the price found is kept for the
    day (:class:`DailyPrices`); a plain per-token rate is then applied directly, a tiered price
    (long context) still goes through genai-prices for every call.

    genai-prices is imported when one is built, never with the kit: a plugin using this class
    depends on genai-prices itself. ``provider_id`` is genai-prices' name for the provider;
    ``model_prefix`` is dropped from a model's name before it is looked up (``models/`` of the
    Gemini API).
    """

    def __init__(self, provider_id: str, *, model_prefix: str = "") -> None:
        from genai_prices.data import providers
        from genai_prices.data_snapshot import DataSnapshot

        super().__init__()
        self.provider_id = provider_id
        self.model_prefix = model_prefix
        self._snapshot = DataSnapshot(providers=providers, from_auto_update=False)

    def name_of(self, model: str) -> str:
        return model.removeprefix(self.model_prefix)

    def lookup(self, name: str, now: datetime) -> object:
        try:
            _, info = self._snapshot.find_provider_model(name, None, self.provider_id, None)
        except LookupError:
            return None
        prices = info.get_prices(now)
        plain = FixedPrices.per_million(
            prices.input_mtok, prices.output_mtok, prices.cache_read_mtok
        )
        return plain or prices

    def priced(self, found: object, usage: Usage) -> Decimal:
        from genai_prices.types import ModelPrice

        assert isinstance(found, ModelPrice)
        total: Decimal = found.calc_price(_genai_usage(usage))["total_price"]
        return total


def _genai_usage(usage: Usage) -> genai_prices.Usage:
    """genai-prices counts cached tokens inside ``input_tokens``, as QuestFoundry does."""
    import genai_prices

    return genai_prices.Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=min(usage.cached_input_tokens, usage.input_tokens),
    )


def fixed_prices_from(settings: Mapping[str, Any], *, path: str = "") -> FixedPrices | None:
    """The prices set in one provider's settings, or None when it sets none.

    Input and output prices go together: setting only one would price the other at a silent $0,
    so that is a :class:`~questfoundry.contracts.errors.ConfigError`. ``path`` is where ``settings``
    sit in config.yml, for error messages.
    """
    if not any(key in settings for key in PRICE_KEYS):
        return None
    prefix = f"{path}." if path else ""
    for key in (INPUT_KEY, OUTPUT_KEY):
        if key not in settings:
            present = next(k for k in PRICE_KEYS if k in settings)
            raise ConfigError(f"{key} is missing: {present} needs it too", path=f"{prefix}{key}")
    cached = settings.get(CACHED_INPUT_KEY)
    return FixedPrices(
        to_price(settings[INPUT_KEY], path=f"{prefix}{INPUT_KEY}"),
        to_price(settings[OUTPUT_KEY], path=f"{prefix}{OUTPUT_KEY}"),
        None if cached is None else to_price(cached, path=f"{prefix}{CACHED_INPUT_KEY}"),
    )
