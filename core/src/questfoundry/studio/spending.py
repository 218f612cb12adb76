"""A run's own spending cap (``questfoundry run LOOP --budget 0.50``).

It works as the configured daily budget does, for one run: before a call is sent it reserves the
call's estimated cost (its prompt's tokens, and ``max_tokens`` — or the gateway's default
estimate — of output, priced by the provider's cost model), and refuses with
:class:`~questfoundry.contracts.errors.CostLimitExceededError` when what the run has spent, plus
what calls in flight hold, plus this estimate would pass the cap. The answer replaces the hold by
its real cost. A call the cache will answer costs nothing and reserves nothing.

Every call of a run is made on one event loop and the check and the hold happen without an
``await`` between them, so calls racing at any concurrency are admitted one at a time: the run
spends at most the cap, plus what answers cost beyond their estimates. It layers over the
configured budgets (the gateway still reserves against those) and never touches the ledger. The
cap counts this attempt only: a stopped run continued later gets the cap afresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from questfoundry.contracts.errors import ConfigError, CostLimitExceededError
from questfoundry.contracts.records import Reply
from questfoundry.kit.money import usd

if TYPE_CHECKING:
    from questfoundry.gateway.plan import Plan
    from questfoundry.runtime import Runtime
    from questfoundry.studio.calls import Calls
    from questfoundry.studio.role import Role

ZERO = Decimal(0)


class RunBudget:
    """:class:`~questfoundry.studio.calls.Calls` spending at most ``limit`` dollars (see the
    module docstring); ``spent`` and ``held`` say where it stands."""

    def __init__(self, calls: Calls, runtime: Runtime, limit: Decimal) -> None:
        if limit < 0:
            raise ConfigError(f"a run's budget cannot be negative ({limit})")
        self.calls = calls
        self.runtime = runtime
        self.limit = limit
        self.spent = ZERO
        self.held = ZERO

    async def ask(
        self,
        role: Role,
        prompt: str,
        instructions: str,
        params: Mapping[str, Any],
        words: int | None,
    ) -> Reply:
        plan = self.runtime.gateway.plan(
            role.request(prompt, instructions=instructions, params=params)
        )
        hold = ZERO if await self._cached(plan) else self._reserve(plan)
        try:
            reply = await self.calls.ask(role, prompt, instructions, params, words)
        finally:
            self.held -= hold
        self.spent += reply.cost or ZERO
        return reply

    async def forget(self, reply: Reply) -> None:
        await self.calls.forget(reply)

    async def _cached(self, plan: Plan) -> bool:
        """Whether the cache holds the answer now (then the call is free)."""
        cache = self.runtime.cache
        if cache is None or not plan.read or not plan.key:
            return False
        return await asyncio.to_thread(cache.get, plan.key) is not None

    def _reserve(self, plan: Plan) -> Decimal:
        """Hold the call's estimated cost, or refuse it; no ``await`` here (see the docstring)."""
        model = self.runtime.cost_model(plan.provider)
        estimate = None if model is None else model.price(plan.model, plan.estimate)
        if estimate is None:
            raise ConfigError(
                f"--budget needs prices, but {plan.provider} model {plan.model!r} has none: set "
                "cost_per_input_token and cost_per_output_token, or install its pricing plugin",
                path=f"pricing.providers.{plan.provider}",
            )
        if self.spent + self.held + estimate > self.limit:
            raise CostLimitExceededError(
                f"this run's budget: ${self.spent + self.held:.4f} spent or held of "
                f"{usd(self.limit)}; the next call may cost {usd(estimate)}"
            )
        self.held += estimate
        return estimate
