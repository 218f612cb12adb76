"""Conformance suite for budget keepers: subclass :class:`BudgetContract` in your tests.

::

    from questfoundry.testing.budget_contract import BudgetContract
    from my_plugin import open_my_budgets

    class TestMyBudgets(BudgetContract):
        @pytest.fixture
        def budgets_opener(self):
            return open_my_budgets     # called like questfoundry.ledger.budgets.open_budgets

        @pytest.fixture
        def rate_limiting(self):
            return {"backend": "mine", "redis_url": "redis://localhost:6379/15"}

The opener is called as ``opener(config, ledger, context)`` — the shape of
:func:`questfoundry.ledger.budgets.open_budgets` — with a config whose ``rate_limiting`` section is
:meth:`rate_limiting` plus the budgets a test sets, a fresh SQLite ledger and a fresh
``backend_context`` (temporary project, fake clock at 2026-01-01 00:00 UTC), and must return an
empty keeper. Calls are recorded the way the pipeline records them, through
``ledger.record(reply, hold)``, so a keeper kept outside the ledger is settled through
:meth:`~questfoundry.contracts.protocols.BudgetKeeper.settle`.

The cross-process test, which runs only for a keeper declaring ``Capability.SHARED``, starts real
processes that open the keeper with the same opener (a module-level function), config and ledger
file on the real clock, and race one budget: together they may pass it by at most one request's
estimate (the SQLite keeper: not at all).

A subclass that defines a test with the name of a standard test is refused when the class is
created: a silently replaced standard test would let a non-conforming backend pass.
"""

from __future__ import annotations

import json
import textwrap
import threading
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any

import pytest

from questfoundry.config import Config
from questfoundry.contracts.backends import BackendContext, Clock
from questfoundry.contracts.errors import CostLimitExceededError
from questfoundry.contracts.protocols import BudgetKeeper, Capability
from questfoundry.contracts.records import BudgetLevel, Reply
from questfoundry.ledger import Ledger
from questfoundry.testing.clock import FakeClock
from questfoundry.testing.contract import StandardSuite
from questfoundry.testing.racing import READY, race

Opener = Callable[[Config, Ledger, BackendContext], BudgetKeeper | None]
#: ``open_keeper({"global": {"cost_per_day": 1}}, ...)``: a keeper of those budgets
OpenKeeper = Callable[..., BudgetKeeper]

PROCESSES = 4

_RACER = (
    textwrap.dedent(
        """
    import importlib, json, sys
    from decimal import Decimal
    from pathlib import Path
    from questfoundry.contracts.records import Reply
    from questfoundry.config import Config
    from questfoundry.contracts.errors import CostLimitExceededError
    from questfoundry.contracts.backends import BackendContext
    from questfoundry.ledger import Ledger

    spec = json.loads(sys.argv[1])
    module, _, name = spec["opener"].partition(":")
    opener = getattr(importlib.import_module(module), name)
    context = BackendContext(Path(spec["project_dir"]), spec["namespace"])
    ledger = Ledger(Path(spec["ledger"]), clock=context.clock)
    keeper = opener(Config(spec["config"], project_dir=context.project_dir), ledger, context)
    estimate = Decimal(spec["estimate"])
    READY
    calls = 0
    while True:
        try:
            hold = keeper.reserve("openai", estimate)
        except CostLimitExceededError:
            break
        ledger.record(Reply("openai", "m", cost=estimate), hold)
        calls += 1
    keeper.close()
    ledger.close()
    print(calls)
    """
    )
).replace("READY", READY)


def paid(cost: str | None, provider: str = "openai") -> Reply:
    """The reply of a paid call costing ``cost`` dollars (None: price unknown)."""
    return Reply(provider, "m", cost=None if cost is None else Decimal(cost))


class BudgetContract(StandardSuite):
    """Standard tests every :class:`~questfoundry.contracts.protocols.BudgetKeeper` must pass.

    Override :meth:`budgets_opener` (and :meth:`rate_limiting` when the keeper needs settings).
    """

    @pytest.fixture
    def budgets_opener(self) -> Opener:
        """Override: return the function that opens your keeper, shaped like ``open_budgets``."""
        raise NotImplementedError(
            f"{type(self).__qualname__} must define a `budgets_opener` fixture"
        )

    @pytest.fixture
    def rate_limiting(self) -> Mapping[str, Any]:
        """Override to give the keeper its own ``rate_limiting`` settings (JSON-able)."""
        return {}

    @pytest.fixture
    def ledger(self, backend_context: BackendContext) -> Iterator[Ledger]:
        with Ledger(
            backend_context.project_dir / "ledger.sqlite", clock=backend_context.clock
        ) as opened:
            yield opened

    @pytest.fixture
    def open_keeper(
        self,
        budgets_opener: Opener,
        rate_limiting: Mapping[str, Any],
        ledger: Ledger,
        backend_context: BackendContext,
    ) -> Iterator[OpenKeeper]:
        """``open_keeper({"global": {"cost_per_day": "1"}})``: an empty keeper of those budgets
        (given as ``rate_limiting`` states them), closed after the test."""
        opened: list[BudgetKeeper] = []

        def open_(
            limits: Mapping[str, Any],
            *,
            on: Ledger = ledger,
            context: BackendContext = backend_context,
        ) -> BudgetKeeper:
            config = self.config(rate_limiting, limits, context)
            keeper = budgets_opener(config, on, context)
            assert keeper is not None, "budgets are configured, so the opener must return a keeper"
            opened.append(keeper)
            return keeper

        yield open_
        for keeper in opened:
            keeper.close()

    @staticmethod
    def config(
        rate_limiting: Mapping[str, Any], limits: Mapping[str, Any], context: BackendContext
    ) -> Config:
        return Config(
            {"rate_limiting": {**rate_limiting, **limits}}, project_dir=context.project_dir
        )

    @staticmethod
    def requires(keeper: BudgetKeeper, capability: str) -> None:
        """Skip the calling test unless ``keeper`` declares ``capability``."""
        if capability not in keeper.capabilities:
            pytest.skip(f"the keeper does not declare Capability {capability!r}")

    @staticmethod
    def spent(keeper: BudgetKeeper) -> dict[tuple[str | None, str], Decimal]:
        return {(level.scope, level.period): level.spent for level in keeper.levels()}

    # ------------------------------------------------------------------ standard tests

    def test_keeper_satisfies_the_protocol(self, open_keeper: OpenKeeper) -> None:
        keeper = open_keeper({"global": {"cost_per_day": "1"}})
        assert isinstance(keeper, BudgetKeeper)
        assert isinstance(keeper.capabilities, frozenset)

    def test_no_budget_configured_means_no_keeper(
        self,
        budgets_opener: Opener,
        rate_limiting: Mapping[str, Any],
        ledger: Ledger,
        backend_context: BackendContext,
    ) -> None:
        config = self.config(rate_limiting, {"global": {"requests_per_minute": 5}}, backend_context)
        assert budgets_opener(config, ledger, backend_context) is None

    def test_levels_list_every_budget_with_nothing_spent(self, open_keeper: OpenKeeper) -> None:
        keeper = open_keeper(
            {"global": {"cost_per_day": "5"}, "providers": {"openai": {"cost_per_month": "40"}}}
        )
        assert sorted(keeper.levels(), key=str) == sorted(
            [
                BudgetLevel(None, "day", Decimal(5), Decimal(0)),
                BudgetLevel("openai", "month", Decimal(40), Decimal(0)),
            ],
            key=str,
        )

    def test_a_provider_no_budget_applies_to_gets_no_hold(self, open_keeper: OpenKeeper) -> None:
        keeper = open_keeper({"providers": {"gemini": {"cost_per_day": "1"}}})
        assert keeper.reserve("openai", Decimal(100)) is None
        keeper.release(None)
        assert self.spent(keeper) == {("gemini", "day"): 0}

    def test_a_hold_counts_until_released(self, open_keeper: OpenKeeper) -> None:
        keeper = open_keeper({"global": {"cost_per_day": "1"}})
        hold = keeper.reserve("openai", Decimal("0.6"))
        assert hold is not None
        assert (hold.provider, hold.amount) == ("openai", Decimal("0.6"))
        assert self.spent(keeper) == {(None, "day"): Decimal("0.6")}
        with pytest.raises(CostLimitExceededError):
            keeper.reserve("openai", Decimal("0.6"))

        keeper.release(hold)

        assert self.spent(keeper) == {(None, "day"): 0}
        assert keeper.reserve("openai", Decimal("0.6")) is not None

    def test_a_refused_reservation_holds_nothing_and_says_why(
        self, open_keeper: OpenKeeper, ledger: Ledger
    ) -> None:
        keeper = open_keeper({"providers": {"openai": {"cost_per_day": "5.00"}}})
        ledger.record(paid("4.999"), keeper.reserve("openai", Decimal("4.999")))

        with pytest.raises(CostLimitExceededError) as raised:
            keeper.reserve("openai", Decimal("0.02"))

        assert str(raised.value) == (
            "daily budget for openai: $4.999 spent of $5.00; this call may cost $0.02"
        )
        assert self.spent(keeper) == {("openai", "day"): Decimal("4.999")}

    def test_a_call_reaching_the_limit_exactly_is_admitted(
        self, open_keeper: OpenKeeper, ledger: Ledger
    ) -> None:
        keeper = open_keeper({"global": {"cost_per_day": "1"}})
        ledger.record(paid("0.75"), keeper.reserve("openai", Decimal("0.75")))

        assert keeper.reserve("openai", Decimal("0.25")) is not None
        with pytest.raises(CostLimitExceededError, match="daily budget for all providers"):
            keeper.reserve("openai", Decimal("0.000001"))

    def test_recording_the_call_replaces_its_hold_with_the_real_cost(
        self, open_keeper: OpenKeeper, ledger: Ledger
    ) -> None:
        keeper = open_keeper({"global": {"cost_per_day": "1"}})
        hold = keeper.reserve("openai", Decimal("0.6"))

        ledger.record(paid("0.1"), hold)

        assert self.spent(keeper) == {(None, "day"): Decimal("0.1")}
        assert keeper.reserve("openai", Decimal("0.9")) is not None

    def test_settling_without_a_ledger_row_counts_the_cost(self, open_keeper: OpenKeeper) -> None:
        keeper = open_keeper({"global": {"cost_per_day": "1"}})
        first, second = (
            keeper.reserve("openai", Decimal("0.5")),
            keeper.reserve("openai", Decimal("0.5")),
        )
        assert first is not None and second is not None

        keeper.settle(first, Decimal("0.3"))
        keeper.settle(second, None)  # price unknown: counts nothing

        assert self.spent(keeper) == {(None, "day"): Decimal("0.3")}

    def test_money_is_counted_exactly(self, open_keeper: OpenKeeper, ledger: Ledger) -> None:
        keeper = open_keeper({"global": {"cost_per_day": "1"}})
        for cost in ("0.1", "0.1", "0.1", "0.000000000001"):
            ledger.record(paid(cost), keeper.reserve("openai", Decimal(cost)))

        assert self.spent(keeper) == {(None, "day"): Decimal("0.300000000001")}

    def test_a_provider_budget_counts_that_provider_and_a_global_one_counts_all(
        self, open_keeper: OpenKeeper, ledger: Ledger
    ) -> None:
        keeper = open_keeper(
            {"global": {"cost_per_day": "1.5"}, "providers": {"openai": {"cost_per_day": "1"}}}
        )
        ledger.record(paid("0.9", "gemini"), keeper.reserve("gemini", Decimal("0.9")))

        assert keeper.reserve("openai", Decimal("0.6")) is not None
        with pytest.raises(CostLimitExceededError, match="daily budget for all providers"):
            keeper.reserve("openai", Decimal("0.1"))
        assert self.spent(keeper) == {
            (None, "day"): Decimal("1.5"),
            ("openai", "day"): Decimal("0.6"),
        }

    def test_cache_hits_take_nothing_from_a_budget(
        self, open_keeper: OpenKeeper, ledger: Ledger
    ) -> None:
        keeper = open_keeper({"global": {"cost_per_day": "1"}})
        ledger.record_hit(Reply("openai", "m", cache_hit=True, saved=Decimal(3)))
        ledger.flush()

        assert self.spent(keeper) == {(None, "day"): 0}

    def test_a_daily_budget_starts_afresh_the_next_day(
        self, open_keeper: OpenKeeper, ledger: Ledger, fake_clock: FakeClock
    ) -> None:
        keeper = open_keeper({"global": {"cost_per_day": "1", "cost_per_month": "10"}})
        fake_clock.advance(86_400 - 60)  # 23:59 on January 1st
        ledger.record(paid("1"), keeper.reserve("openai", Decimal("1")))
        with pytest.raises(CostLimitExceededError):
            keeper.reserve("openai", Decimal("0.01"))

        fake_clock.advance(120)

        assert self.spent(keeper) == {(None, "day"): 0, (None, "month"): Decimal(1)}
        assert keeper.reserve("openai", Decimal("0.01")) is not None

    def test_a_monthly_budget_starts_afresh_the_next_month(
        self, open_keeper: OpenKeeper, ledger: Ledger, fake_clock: FakeClock
    ) -> None:
        keeper = open_keeper({"global": {"cost_per_month": "10"}})
        fake_clock.advance(86_400)  # January 2nd
        ledger.record(paid("6"), keeper.reserve("openai", Decimal("6")))
        fake_clock.advance(30 * 86_400 - 60)  # 23:59 on January 31st
        ledger.record(paid("4"), keeper.reserve("openai", Decimal("4")))
        with pytest.raises(CostLimitExceededError, match=r"monthly budget .* \$10\.00 spent"):
            keeper.reserve("openai", Decimal("0.01"))

        fake_clock.advance(120)

        assert self.spent(keeper) == {(None, "month"): 0}
        assert keeper.reserve("openai", Decimal("9.99")) is not None

    def test_what_was_spent_survives_reopening(
        self, open_keeper: OpenKeeper, backend_context: BackendContext
    ) -> None:
        limits = {"providers": {"openai": {"cost_per_month": "2"}}}
        path = backend_context.project_dir / "reopened.sqlite"
        with Ledger(path, clock=backend_context.clock) as first:
            keeper = open_keeper(limits, on=first)
            self.requires(keeper, Capability.PERSISTENT)
            first.record(paid("1.5"), keeper.reserve("openai", Decimal("1")))
            keeper.close()

        with Ledger(path, clock=backend_context.clock) as second:
            again = open_keeper(limits, on=second)
            assert self.spent(again) == {("openai", "month"): Decimal("1.5")}
            with pytest.raises(CostLimitExceededError):
                again.reserve("openai", Decimal("0.6"))

    def test_threads_racing_one_budget_never_overspend_it(
        self, open_keeper: OpenKeeper, ledger: Ledger
    ) -> None:
        keeper = open_keeper({"global": {"cost_per_day": "0.4"}})
        calls = []
        lock = threading.Lock()

        def race() -> None:
            mine = 0
            for _ in range(20):
                try:
                    hold = keeper.reserve("openai", Decimal("0.01"))
                except CostLimitExceededError:
                    break
                ledger.record(paid("0.01"), hold)
                mine += 1
            with lock:
                calls.append(mine)

        threads = [threading.Thread(target=race) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert sum(calls) == 40
        assert self.spent(keeper) == {(None, "day"): Decimal("0.4")}

    @pytest.mark.slow
    def test_processes_racing_one_budget_pass_it_by_at_most_one_estimate(
        self,
        open_keeper: OpenKeeper,
        budgets_opener: Opener,
        rate_limiting: Mapping[str, Any],
        backend_context: BackendContext,
    ) -> None:
        limit, estimate = Decimal("5.00"), Decimal("0.01")
        limits = {"global": {"cost_per_day": str(limit)}}
        real = BackendContext(backend_context.project_dir, backend_context.namespace, Clock())
        path = real.project_dir / "shared.sqlite"
        with Ledger(path, clock=real.clock) as ledger:
            watcher = open_keeper(limits, on=ledger, context=real)
            self.requires(watcher, Capability.SHARED)
            spec = {
                "opener": f"{budgets_opener.__module__}:{budgets_opener.__qualname__}",
                "config": {"rate_limiting": {**rate_limiting, **limits}},
                "project_dir": str(real.project_dir),
                "namespace": real.namespace,
                "ledger": str(path),
                "estimate": str(estimate),
            }
            lines = race(_RACER, [json.dumps(spec)], PROCESSES, cwd=real.project_dir.parent)
            calls = [int(line) for line in lines]
            (level,) = watcher.levels()

        assert level.spent == estimate * sum(calls)  # every call counted once
        assert limit - estimate < level.spent <= limit + estimate
