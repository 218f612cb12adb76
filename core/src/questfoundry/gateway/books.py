"""The pipeline's bookkeeping steps: limits, budgets, the ledger's journal and rows, prices,
observers, warnings. Each runs on the caller's thread or task (see
:mod:`~questfoundry.gateway.pipeline` for the order of a call).

A cache or ledger that fails never fails a call: it is bypassed with one warning per kind of
failure. The ledger's steps (:meth:`Books.intend`, :meth:`Books.record`) are appends to its
journal and memory, never a wait on a lock or a disk flush, so both faces run them in place.
"""

from __future__ import annotations

import logging
import math
import random
import threading
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from questfoundry.contracts.errors import ConfigError, RateLimitError
from questfoundry.contracts.protocols import Capability, Hold
from questfoundry.contracts.records import CallEvent, Outcome, Reply, Usage
from questfoundry.gateway.admission import admission
from questfoundry.gateway.effects import Blocking, Sleep, Steps, blocking
from questfoundry.gateway.plan import Plan, Planner

if TYPE_CHECKING:
    from questfoundry.gateway.backends import Backends

log = logging.getLogger("questfoundry.gateway")

ZERO = Decimal(0)
#: at most this much (and 20 % of the wait) is added at random to a wait on a limit, so callers
#: refused together do not all wake at one instant: the next free slot goes to a random one of
#: them, not always to the process the scheduler wakes first. ``max_wait_seconds`` counts the
#: waits the limiter asked for, never the jitter
LIMIT_JITTER_SECONDS = 0.02
#: the most seconds a limiter that blocks waits to be given back what estimates took beyond
#: the real usage (limits err on the safe side meanwhile)
RECONCILE_SECONDS = 0.05


class Books:
    """Limits, budgets, ledger, prices and observers for one runtime's pipeline."""

    def __init__(self, runtime: Backends, planner: Planner) -> None:
        self.runtime = runtime
        self.planner = planner
        limits = runtime.config.section("rate_limiting")
        self.on_limit = limits.get("on_limit", "wait")
        self.max_wait = float(limits.get("max_wait_seconds", 60))
        self._observed = bool(runtime.manager.hook.call_completed.get_hookimpls())
        self._warned: set[str] = set()
        self._owed: dict[str, float] = {}  #: limiter adjustments not made yet
        self._owing = threading.Lock()

    # ------------------------------------------------------------------ limits and budgets

    def reserve(self, plan: Plan, estimate: Decimal | None) -> Steps[Hold | None]:
        """Hold the call's ``estimate`` against every budget that applies; None if none."""
        if self.planner.output_cap(plan.provider) is None:  # no budget applies
            return None
        keeper = yield from self.backend("budgets")
        if keeper is None:
            return None
        if estimate is None:
            raise ConfigError(
                f"a cost budget applies to {plan.provider} but model {plan.model!r} has no known "
                f"price: set cost_per_input_token and cost_per_output_token there, or install "
                f"the provider's pricing plugin",
                path=f"rate_limiting.providers.{plan.provider}",
            )
        hold: Hold | None = yield blocking(keeper, keeper.reserve, plan.provider, estimate)
        return hold

    def release(self, hold: Hold | None, intent: int | None) -> Steps[None]:
        """A call that failed before any answer: its hold goes, its intent is void."""
        self._void(intent)
        if hold is None:
            return
        keeper = self.runtime.budgets
        assert keeper is not None
        try:
            yield blocking(keeper, keeper.release, hold)
        except Exception as exc:
            self.warn_once("budget-release", f"budget reservation not released: {exc}")

    def abandon(self, hold: Hold | None, intent: int | None) -> None:
        """:meth:`release` for steps closed unread, which may yield nothing more."""
        self._void(intent)
        keeper = self.runtime.budgets if hold is not None else None
        if keeper is not None:
            try:
                keeper.release(hold)
            except Exception as exc:
                self.warn_once("budget-release", f"budget reservation not released: {exc}")

    def admit(self, plan: Plan, deadline: float, waits: list[tuple[float, float]]) -> Steps[None]:
        """Wait until the limiter admits one attempt; each wait's ``(start, seconds)`` is added to
        ``waits``."""
        limiter = yield from self.backend("limiter")
        if limiter is None:
            return
        clock = self.runtime.clock
        amounts = admission(plan.provider, plan.estimate.total_tokens)
        needed = 0.0  # seconds the limiter asked to wait (the sleeps add jitter)
        while wait := (yield blocking(limiter, limiter.acquire, amounts)):
            if (
                self.on_limit == "raise"
                or math.isinf(wait)
                or needed + wait > self.max_wait
                or clock.monotonic() + wait > deadline
            ):
                raise RateLimitError(f"rate limit reached for {plan.provider}", retry_after=wait)
            needed += wait
            room = deadline - clock.monotonic() - wait  # jitter never breaks the deadline
            slept = wait + random.uniform(0, max(0.0, min(wait * 0.2, LIMIT_JITTER_SECONDS, room)))
            start = clock.monotonic()
            yield Sleep(slept, clock)
            waits.append((start, slept))

    def reconcile(self, plan: Plan, reply: Reply) -> None:
        """Give the limiter back what the estimate took beyond the real usage (or take more).

        A limiter that blocks is reconciled afterwards, the calls of :data:`RECONCILE_SECONDS`
        summed into one adjustment: a write each, made while callers acquire, would make them
        wait for it.
        """
        limiter = self.runtime.limiter if self.runtime.ready("limiter") else None
        if limiter is None:
            return
        extra = float(reply.usage.total_tokens - plan.estimate.total_tokens)
        amounts = {"global/tokens": extra, f"provider:{plan.provider}/tokens": extra}
        if Capability.NON_BLOCKING in limiter.capabilities:
            self._adjust(limiter, amounts)
            return
        with self._owing:
            first = not self._owed
            for key, amount in amounts.items():
                self._owed[key] = self._owed.get(key, 0.0) + amount
        if first:
            self.runtime.deferred.later(RECONCILE_SECONDS, self._settle_owed, limiter)

    def _settle_owed(self, limiter: Any) -> None:
        with self._owing:
            owed, self._owed = self._owed, {}
        self._adjust(limiter, owed)

    def _adjust(self, limiter: Any, amounts: dict[str, float]) -> None:
        try:
            limiter.adjust(amounts)
        except Exception as exc:
            self.warn_once("limiter-adjust", f"rate limiter not reconciled: {exc}")

    # ------------------------------------------------------------------ the ledger

    def intend(self, plan: Plan, estimate: Decimal | None, hold: Hold | None) -> Steps[int | None]:
        """Write the call's intent to the ledger's journal (None when it cannot be written)."""
        ledger = yield from self.backend("ledger")
        try:
            number: int = ledger.intend(
                plan.provider,
                plan.model,
                plan.estimate,
                estimate,
                role=plan.role,
                run_id=self.runtime.run_id,
                hold=hold,
            )
        except Exception as exc:
            self.warn_once("ledger", f"call not recorded in the cost ledger: {exc}")
            return None
        return number

    def record(
        self, plan: Plan, reply: Reply, hold: Hold | None, intent: int | None
    ) -> Steps[None]:
        """Record a paid call, settling its intent and its hold."""
        ledger = yield from self.backend("ledger")
        try:
            ledger.record(reply, hold, intent)
        except Exception as exc:
            self.warn_once("ledger", f"call not recorded in the cost ledger: {exc}")

    def recorded_hit(self, reply: Reply) -> None:
        """Queue a hit in the ledger (no I/O here; a background writer flushes it)."""
        try:
            self.runtime.ledger.record_hit(reply)
        except Exception as exc:
            self.warn_once("ledger-hit", f"cache hit not recorded in the ledger: {exc}")

    def _void(self, intent: int | None) -> None:
        if intent is not None:
            try:
                self.runtime.ledger.void(intent)
            except Exception as exc:
                self.warn_once("ledger", f"call not recorded in the cost ledger: {exc}")

    # ------------------------------------------------------------------ helpers

    def backend(self, name: str) -> Steps[Any]:
        """The runtime's backend ``name``, built off the event loop the first time."""
        if self.runtime.ready(name):
            return getattr(self.runtime, name)
        return (yield Blocking(getattr, (self.runtime, name)))

    def price(self, provider: str, model: str, usage: Usage) -> Decimal | None:
        cost_model = self.runtime.cost_model(provider)
        cost = None if cost_model is None else cost_model.price(model, usage)
        if cost is None:
            self.warn_once(
                f"price:{provider}:{model}",
                f"no price known for {provider} model {model!r}; its cost is recorded as unknown",
            )
        return cost

    def notify(
        self, plan: Plan, reply: Reply | None, error: BaseException | None, outcome: Outcome
    ) -> None:
        if not self._observed:
            return
        model = reply.model if reply else plan.model
        event = CallEvent(plan.provider, model, plan.role, reply, error, outcome)
        try:
            self.runtime.manager.hook.call_completed(event=event)
        except Exception:
            log.exception("a call_completed observer failed")

    def warn_once(self, topic: str, message: str) -> None:
        if topic not in self._warned:
            self._warned.add(topic)
            log.warning(message)
