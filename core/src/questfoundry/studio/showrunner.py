"""The Showrunner: wakes roles, runs loops, and closes everything once.

Roles are built lazily from the runtime's catalogue and resolution. Roles whose resolved provider
settings are equal share one provider instance, because they share the runtime's provider pool.
The Showrunner takes its runtime over: closing it (or leaving its ``with`` block) closes the
runtime, once.

A step's fan-out keeps at most ``concurrency`` calls in flight: the constructor's, else
``studio.concurrency`` in config.yml, else :data:`DEFAULT_CONCURRENCY`. It only stops a run from
flooding the event loop and the provider's connections; what reaches the provider is bounded by
the configured rate limits (``rate_limiting``), which the gateway holds every call to.

A run is told what to do beyond its loop's name: ``sections`` (else the brief's planned length,
else :data:`DEFAULT_SECTIONS`), the loop's declared ``options``, ``brief`` changes (saved as the
project's brief before it starts), ``force`` (rewrite what the author wrote by hand) and
``budget`` (a cap on what this run may spend, :mod:`.spending`). :meth:`estimate` forecasts the
same run without calling any provider (:mod:`.forecast`). A run holds the project's lease while
it lasts (:mod:`.lease`): another run of the project is refused, or with ``wait`` waits for it.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from questfoundry.book.model import DEFAULT_SECTIONS, MAX_SECTIONS
from questfoundry.contracts.brief import BRIEF, Brief
from questfoundry.contracts.errors import LoopError
from questfoundry.contracts.protocols import StateStore
from questfoundry.contracts.studio import LoopSpec
from questfoundry.studio.calls import Calls, Direct
from questfoundry.studio.engine import LoopRun, Progress
from questfoundry.studio.forecast import Forecast, Overlay
from questfoundry.studio.lease import ProjectLease
from questfoundry.studio.report import RunReport
from questfoundry.studio.role import Role
from questfoundry.studio.spending import RunBudget

if TYPE_CHECKING:
    from questfoundry.config import Config
    from questfoundry.registry import PluginManager
    from questfoundry.runtime import Runtime

#: how many calls one step's fan-out keeps in flight when neither the caller nor config.yml
#: says (the gateway's rate limits apply on top)
DEFAULT_CONCURRENCY = 16


class Showrunner:
    """Runs the studio's loops over one runtime; see the module docstring."""

    def __init__(self, runtime: Runtime, *, concurrency: int | None = None) -> None:
        if concurrency is None:
            configured = runtime.config.get("studio.concurrency")
            concurrency = DEFAULT_CONCURRENCY if configured is None else int(configured)
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.runtime = runtime
        self.concurrency = concurrency
        self._roles: dict[str, Role] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: Config, manager: PluginManager, **options: Any) -> Showrunner:
        """A Showrunner over a runtime of its own; ``options`` go to the runtime."""
        from questfoundry.runtime import Runtime

        return cls(Runtime(config, manager, **options))

    # ------------------------------------------------------------------ roles and loops

    def role(self, name: str) -> Role:
        """The role ``name`` from the catalogue, resolved on first use."""
        found = self._roles.get(name)
        if found is None:
            catalogue = self.runtime.manager.roles()
            if name not in catalogue:
                known = ", ".join(sorted(catalogue))
                raise LoopError(f"unknown role {name!r} (known roles: {known})")
            with self._lock:
                found = self._roles.setdefault(name, Role.of(self.runtime, catalogue[name]))
        return found

    def loop(self, name: str) -> LoopSpec:
        """The runnable loop ``name``; :class:`LoopError` naming the choices otherwise."""
        loops = self.runtime.manager.loops()
        runnable = sorted(n for n, spec in loops.items() if spec.steps)
        spec = loops.get(name)
        if spec is None:
            raise LoopError(f"unknown loop {name!r} (runnable loops: {', '.join(runnable)})")
        if not spec.steps:
            raise LoopError(
                f"loop {name!r} has no steps yet: it is named in the catalogue but cannot run "
                f"(runnable loops: {', '.join(runnable)})"
            )
        return spec

    # ------------------------------------------------------------------ running

    def run(
        self,
        loop: str,
        *,
        sections: int | None = None,
        progress: Progress | None = None,
        options: Mapping[str, Any] | None = None,
        brief: Mapping[str, Any] | None = None,
        force: bool = False,
        budget: Decimal | None = None,
        wait: bool = False,
    ) -> RunReport:
        """Run ``loop`` to its end (or continue its unfinished run) and report what it cost; see
        the module docstring for the rest."""
        return asyncio.run(
            self.arun(
                loop,
                sections=sections,
                progress=progress,
                options=options,
                brief=brief,
                force=force,
                budget=budget,
                wait=wait,
            )
        )

    async def arun(
        self,
        loop: str,
        *,
        sections: int | None = None,
        progress: Progress | None = None,
        options: Mapping[str, Any] | None = None,
        brief: Mapping[str, Any] | None = None,
        force: bool = False,
        budget: Decimal | None = None,
        wait: bool = False,
    ) -> RunReport:
        """:meth:`run` for asyncio."""
        calls: Calls = Direct(self.runtime)
        if budget is not None:
            calls = RunBudget(calls, self.runtime, budget)
        state = self.runtime.state
        async with ProjectLease(state, loop, wait=wait, clock=self.runtime.clock) as lease:
            return await self._run(
                loop, sections, progress, options, brief, force, calls, state, lease=lease
            )

    def estimate(
        self,
        loop: str,
        *,
        sections: int | None = None,
        options: Mapping[str, Any] | None = None,
        brief: Mapping[str, Any] | None = None,
        force: bool = False,
    ) -> RunReport:
        """What :meth:`run` would do and cost, per role, without calling any provider and
        without changing anything (:mod:`.forecast`); the report's status is ``estimate``, and it
        has no notes (they would be about stand-in answers)."""
        return asyncio.run(
            self.aestimate(loop, sections=sections, options=options, brief=brief, force=force)
        )

    async def aestimate(
        self,
        loop: str,
        *,
        sections: int | None = None,
        options: Mapping[str, Any] | None = None,
        brief: Mapping[str, Any] | None = None,
        force: bool = False,
    ) -> RunReport:
        """:meth:`estimate` for asyncio."""
        overlay = Overlay(self.runtime.state)
        forecast = Forecast(self.runtime)
        with tempfile.TemporaryDirectory(prefix="questfoundry-estimate-") as root:
            report = await self._run(
                loop, sections, None, options, brief, force, forecast, overlay, Path(root)
            )
        return replace(report, run_id="", status="estimate", outputs={}, notes=())

    async def _run(
        self,
        loop: str,
        sections: int | None,
        progress: Progress | None,
        options: Mapping[str, Any] | None,
        changes: Mapping[str, Any] | None,
        force: bool,
        calls: Calls,
        state: StateStore,
        root: Path | None = None,
        lease: ProjectLease | None = None,
    ) -> RunReport:
        spec = self.loop(loop)
        values = spec.options_of(options or {})
        brief = Brief.from_dict(await asyncio.to_thread(state.get, BRIEF))
        if changes:
            brief = brief.updated(changes)
            await asyncio.to_thread(state.set, BRIEF, brief.to_dict())
        if sections is None:
            sections = brief.sections or DEFAULT_SECTIONS
        if not 1 <= sections <= MAX_SECTIONS:
            raise LoopError(f"sections must be between 1 and {MAX_SECTIONS}, not {sections}")
        for step in spec.steps:
            self.role(step.role)
        run = LoopRun(
            self,
            spec,
            sections,
            progress,
            options=values,
            force=force,
            brief=brief,
            calls=calls,
            state=state,
            root=root,
            lease=lease,
        )
        return await run.execute()

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the runtime (its providers and backends), once."""
        self.runtime.close()

    async def aclose(self) -> None:
        await self.runtime.aclose()

    def __enter__(self) -> Showrunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Showrunner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
