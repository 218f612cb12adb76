"""Running one loop: steps in dependency order, concurrently when ready, resumable.

A step waits for the steps of its loop that write what it reads; every step whose reads are
ready runs at once, on one event loop (the gateway keeps calls within the configured limits).

The run record ``runs/<run_id>`` is saved when the run starts, after every step and when it ends;
the pointer ``runs/latest/<loop>`` names the loop's latest run. The run's state operations go
through one :class:`~.state_queue.StateQueue`, in batches. When a step ends, a store that syncs
(``Capability.SYNC``) forces what the step saved to the disk, and only then is the record saying
the step is done saved, while the next steps already run; the run's end syncs once more.

A run that did not finish (a failure, a crash, an interrupt) is continued by the next run of the
same loop with the same number of sections and the same options: its finished steps are skipped,
and within a step the artifacts it already saved (stamped with the run id) are not made again. A
run that finished is not continued: the next one does everything again, which the response cache
answers without calling a provider.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from questfoundry.contracts.brief import Brief
from questfoundry.contracts.errors import LoopError, QuestFoundryError, StepError
from questfoundry.contracts.protocols import Capability, StateStore, Syncing
from questfoundry.contracts.studio import LoopSpec, Step
from questfoundry.studio.briefing import DEFAULT_CONTEXT_TOKENS
from questfoundry.studio.calls import Calls, Direct
from questfoundry.studio.context import StepContext
from questfoundry.studio.report import RunReport, Tally
from questfoundry.studio.state_queue import StateQueue

if TYPE_CHECKING:
    from questfoundry.studio.lease import ProjectLease
    from questfoundry.studio.role import Cast

RUNNING, DONE, FAILED, SKIPPED = "running", "done", "failed", "skipped"
#: state keys: ``runs/<run_id>`` is a run's record, ``runs/latest/<loop>`` its loop's latest run
RUNS = "runs/"
LATEST = "runs/latest/"


@dataclass(frozen=True)
class StepProgress:
    """How far one step is: ``done`` of ``total`` items; ``status`` running, done, skipped or
    failed."""

    loop: str
    step: str
    role: str
    done: int
    total: int
    status: str


Progress = Callable[[StepProgress], None]


def dependencies(loop: LoopSpec) -> dict[str, set[str]]:
    """Each step's name → the names of the steps of ``loop`` it waits for.

    Raises :class:`LoopError` when two steps write one artifact or the steps wait in a circle.
    """
    writers: dict[str, str] = {}
    for step in loop.steps:
        for artifact in step.writes:
            if artifact in writers:
                raise LoopError(
                    f"loop {loop.name!r}: steps {writers[artifact]} and {step.name} "
                    f"both write {artifact!r}"
                )
            writers[artifact] = step.name
    waits = {
        step.name: {writers[a] for a in step.reads if a in writers} - {step.name}
        for step in loop.steps
    }
    ordered: set[str] = set()
    while len(ordered) < len(waits):
        ready = {name for name, before in waits.items() if before <= ordered} - ordered
        if not ready:
            circle = ", ".join(sorted(set(waits) - ordered))
            raise LoopError(f"loop {loop.name!r}: steps wait for each other in a circle: {circle}")
        ordered |= ready
    return waits


class LoopRun:
    """One run of ``loop``: made by :meth:`Showrunner.arun`, which awaits :meth:`execute`."""

    def __init__(
        self,
        showrunner: Cast,
        loop: LoopSpec,
        sections: int,
        progress: Progress | None,
        *,
        options: Mapping[str, Any] | None = None,
        force: bool = False,
        brief: Brief | None = None,
        calls: Calls | None = None,
        state: StateStore | None = None,
        root: Path | None = None,
        lease: ProjectLease | None = None,
    ) -> None:
        runtime = showrunner.runtime
        self.lease = lease
        self.showrunner = showrunner
        self.loop = loop
        self.sections = sections
        #: the loop's declared options, read (``LoopSpec.options_of``); resuming needs the same
        self.options: Mapping[str, Any] = dict(options or {})
        self.force = force
        self.brief = brief or Brief()
        self.calls: Calls = calls or Direct(runtime)
        self.state: StateStore = state or runtime.state
        self.io = StateQueue(self.state)
        self.root = root or runtime.config.project_dir.parent
        tokens = runtime.config.get("studio.context_tokens")
        self.context_tokens = DEFAULT_CONTEXT_TOKENS if tokens is None else int(tokens)
        self.tally = Tally()
        self.repairs: list[str] = []
        self.notes: list[str] = []
        self.outputs: dict[str, str] = {}
        self._progress = progress
        self.run_id = ""
        self.record: dict[str, Any] = {}
        self._saved: asyncio.Future[None] | None = None  # the latest step's checkpoint

    def progress(self, step: Step, done: int, total: int, status: str) -> None:
        if self._progress is not None:
            self._progress(StepProgress(self.loop.name, step.name, step.role, done, total, status))

    async def execute(self) -> RunReport:
        started = time.perf_counter()
        waits = dependencies(self.loop)
        resumed = await self.io.call(self._open)
        if self.lease is not None:
            await self.lease.name(self.run_id)
        finished = {name for name, status in self.record["steps"].items() if status == DONE}
        skipped = [step.name for step in self.loop.steps if step.name in finished]
        for step in self.loop.steps:
            if step.name in finished:
                self.progress(step, 1, 1, SKIPPED)
        failure = await self._steps(waits, finished)
        self.record["repairs"] = self.repairs
        self.record["notes"] = self.notes
        self.record["outputs"] = self.outputs
        if failure is not None:
            self.record.update(status=FAILED, error=str(failure))
            await self._end()
            raise failure
        report = RunReport(
            self.run_id,
            self.loop.name,
            self.sections,
            DONE,
            resumed,
            list(self.tally.roles.values()),
            list(self.repairs),
            skipped,
            dict(self.outputs),
            time.perf_counter() - started,
            list(self.notes),
        )
        self.record.update(status=DONE, error=None, report=report.as_json())
        await self._end()
        return report

    async def _steps(self, waits: dict[str, set[str]], finished: set[str]) -> BaseException | None:
        """Run every unfinished step once its waits are over; the first failure, or None."""
        pending = [step for step in self.loop.steps if step.name not in finished]
        running: dict[asyncio.Task[None], Step] = {}
        failure: BaseException | None = None
        while pending or running:
            if failure is None:
                for step in [s for s in pending if waits[s.name] <= finished]:
                    pending.remove(step)
                    running[asyncio.ensure_future(self._step(step))] = step
            if not running:
                break
            ended, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in ended:
                step = running.pop(task)
                error = task.exception()
                if error is None:
                    finished.add(step.name)
                    self.record["steps"][step.name] = DONE
                    self._checkpoint()
                elif failure is None:
                    failure = error
        return failure

    async def _step(self, step: Step) -> None:
        context = StepContext(self, step)
        self.progress(step, 0, 1, RUNNING)
        try:
            await step.run(context)
        except StepError:
            self.progress(step, 0, 1, FAILED)
            raise
        except QuestFoundryError as exc:
            self.progress(step, 0, 1, FAILED)
            raise context.fail(str(exc)) from None
        except Exception:
            self.progress(step, 0, 1, FAILED)
            raise
        self.progress(step, 1, 1, DONE)

    # ------------------------------------------------------------------ the run record

    def _open(self) -> bool:
        """Continue the loop's unfinished run, or start a new one; True when continuing."""
        pointer = self.state.get(LATEST + self.loop.name) or {}
        record = self.state.get(RUNS + pointer["run_id"]) if "run_id" in pointer else None
        if (
            record
            and record.get("status") != DONE
            and record.get("sections") == self.sections
            and record.get("options", {}) == self.options
        ):
            self.run_id, self.record = record["run_id"], record
            self.record.update(status=RUNNING, attempts=record.get("attempts", 1) + 1)
            self.repairs[:] = record.get("repairs", [])
            self.notes[:] = record.get("notes", [])
            self.outputs.update(record.get("outputs", {}))
            self._save()
            return True
        self.run_id = uuid.uuid4().hex[:12]
        self.record = {
            "run_id": self.run_id,
            "loop": self.loop.name,
            "sections": self.sections,
            "options": self.options,
            "status": RUNNING,
            "attempts": 1,
            "steps": {},
            "started_at": self.showrunner.runtime.clock.time(),
        }
        self._save()
        self.state.set(LATEST + self.loop.name, {"run_id": self.run_id})
        return False

    def _checkpoint(self) -> None:
        """Save the record as it is now, once what the finished steps saved is synced (after
        the checkpoint before, so records are saved in order); the run goes on meanwhile."""
        record = {**self.record, "steps": dict(self.record["steps"])}
        before = self._saved

        async def save() -> None:
            if before is not None:
                await before
            await self._sync()
            await self.io.call(self._save, record)

        self._saved = asyncio.ensure_future(save())

    async def _end(self) -> None:
        """The final record saved and synced, after every checkpoint."""
        if self._saved is not None:
            await self._saved
        await self.io.call(self._save)
        await self._sync()

    async def _sync(self) -> None:
        """Force what the run saved to the disk, when the store syncs (``Capability.SYNC``)."""
        if Capability.SYNC in self.state.capabilities:
            store: Syncing = self.state  # type: ignore[assignment]
            await asyncio.to_thread(store.sync)

    def _save(self, record: dict[str, Any] | None = None) -> None:
        record = self.record if record is None else record
        record["updated_at"] = self.showrunner.runtime.clock.time()
        self.state.set(RUNS + self.run_id, record)
