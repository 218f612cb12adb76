"""The SQLite budget keeper against the standard suite, and what only it promises."""

from __future__ import annotations

import pytest

from questfoundry.budgets import open_budgets
from questfoundry.testing.budget_contract import BudgetContract, Opener


class TestSQLiteBudgets(BudgetContract):
    @pytest.fixture
    def budgets_opener(self) -> Opener:
        return open_budgets
