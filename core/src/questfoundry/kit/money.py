"""Money as the ledger and the budgets keep it: whole pico-dollars (10⁻¹² USD) in integers.

Integers make every sum exact in SQLite and in Python alike; :class:`~decimal.Decimal` dollars are
what callers see.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

PICO = Decimal(10) ** 12


def to_pico(amount: Decimal) -> int:
    """Dollars to whole pico-dollars, rounding half-even below 10⁻¹² USD."""
    if not amount.is_finite():
        raise ValueError(f"not a finite amount of money: {amount}")
    return int((amount * PICO).to_integral_value(rounding=ROUND_HALF_EVEN))


def optional_pico(amount: Decimal | None) -> int | None:
    return None if amount is None else to_pico(amount)


def from_pico(amount: int) -> Decimal:
    """Whole pico-dollars to dollars, exactly, without trailing zeros (``0.144``)."""
    dollars = Decimal(amount).scaleb(-12).normalize()
    return dollars.quantize(Decimal(1)) if dollars == dollars.to_integral() else dollars


def usd(amount: Decimal) -> str:
    """Money as every report shows it: ``$0.02``, ``$5.00``; more places (up to six) when two
    would round the amount, so ``$0.000144`` and ``$0.1234`` read as spent."""
    places = 2
    shown = amount.quantize(Decimal(1).scaleb(-places))
    while shown != amount and places < 6:
        places += 1
        shown = amount.quantize(Decimal(1).scaleb(-places))
    return f"${shown}"
