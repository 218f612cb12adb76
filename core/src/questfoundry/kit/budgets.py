"""How every budget keeper says no: one error, worded one way."""

from __future__ import annotations

from decimal import Decimal

from questfoundry.contracts.errors import CostLimitExceededError
from questfoundry.contracts.records import Budget
from questfoundry.kit.money import from_pico, usd


def budget_refusal(budget: Budget, used: int, estimate: Decimal) -> CostLimitExceededError:
    """The error refusing a call of ``estimate`` dollars when ``used`` pico-dollars are taken."""
    return CostLimitExceededError(
        f"{budget.describe()}: {usd(from_pico(used))} spent of "
        f"{usd(budget.limit)}; this call may cost {usd(estimate)}"
    )
