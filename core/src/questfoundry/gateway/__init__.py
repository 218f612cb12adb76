"""The gateway: caching, limits, budgets, retries and the ledger around every provider call.

Build it over a :class:`~questfoundry.runtime.Runtime` (``runtime.gateway``) or, standing alone,
with :func:`questfoundry.runtime.open_gateway`. :meth:`~Gateway.generate` and
:meth:`~Gateway.agenerate` (and :meth:`~Gateway.stream` / :meth:`~Gateway.astream`) are two thin
faces over one
:class:`~questfoundry.gateway.pipeline.Pipeline`; see that module for the steps of a call.

Modules: :mod:`.plan` (requests into plans and keys), :mod:`.flights` (single flight),
:mod:`.pipeline` (the steps), :mod:`.books` (limits, budgets, ledger, observers),
:mod:`.caching` (reads and stores), :mod:`.deferred` (work after the reply), :mod:`.effects`
(what the steps ask for, and the drivers), :mod:`.streams` (the stream drivers).
"""

from __future__ import annotations

from time import perf_counter
from typing import TYPE_CHECKING, Any

from questfoundry.contracts.records import Reply, Request
from questfoundry.gateway.effects import Steps, adrive, drive
from questfoundry.gateway.pipeline import Pipeline
from questfoundry.gateway.plan import Plan, Planner
from questfoundry.gateway.streams import AsyncStream, Stream

if TYPE_CHECKING:
    from questfoundry.gateway.backends import Backends

__all__ = ["AsyncStream", "Gateway", "Plan", "Stream"]


class Gateway:
    """Every provider call of a project, through one runtime's backends."""

    def __init__(self, runtime: Backends, *, owns_runtime: bool = False) -> None:
        self.runtime = runtime
        self._owns_runtime = owns_runtime
        self._planner = Planner(runtime)
        self._pipeline = Pipeline(runtime, self._planner)

    # the runtime's backends, for callers and tests that look inside
    @property
    def cache(self) -> Any:
        return self.runtime.cache

    @property
    def limiter(self) -> Any:
        return self.runtime.limiter

    @property
    def ledger(self) -> Any:
        return self.runtime.ledger

    def plan(self, request: Request) -> Plan:
        """What ``request`` resolves to: provider, model, parameters and cache key."""
        return self._planner.plan(request)

    def generate(self, request: Request) -> Reply:
        """Answer ``request`` from the cache, or from its provider through limits and retries."""
        answer = self._start(request, asynchronous=False)
        return answer if isinstance(answer, Reply) else drive(answer)

    async def agenerate(self, request: Request) -> Reply:
        """:meth:`generate` for asyncio: waits with ``asyncio.sleep``, blocking I/O on threads."""
        answer = self._start(request, asynchronous=True)
        return answer if isinstance(answer, Reply) else await adrive(answer)

    def _start(self, request: Request, *, asynchronous: bool) -> Reply | Steps[Reply]:
        """A hit read in place when this face may read the cache itself (a built cache that
        never blocks, or any built cache for the sync face); else the call's steps to drive."""
        started = perf_counter()
        plan = self._planner.plan(request)
        pipeline = self._pipeline
        if plan.read and pipeline.cache.can_look_now(asynchronous):
            landings = pipeline.flights.landings
            hit = pipeline.cache.lookup_now(plan, started)
            return hit if hit is not None else pipeline.call(plan, started, landings)
        return pipeline.call(plan, started)

    def stream(self, request: Request) -> Stream:
        """Text chunks as they arrive (replayed on a hit); ``.reply`` once the stream is done."""
        started = perf_counter()
        return Stream(self._pipeline.stream(self._planner.plan(request), started))

    def astream(self, request: Request) -> AsyncStream:
        """:meth:`stream` for asyncio."""
        started = perf_counter()
        return AsyncStream(self._pipeline.stream(self._planner.plan(request), started))

    def close(self) -> None:
        """Close the runtime, when this gateway made it."""
        if self._owns_runtime:
            self.runtime.close()

    async def aclose(self) -> None:
        if self._owns_runtime:
            await self.runtime.aclose()

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Gateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
