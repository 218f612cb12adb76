"""What a step's ``run`` is given: its roles, the project state, fan-out, and asking for answers.

Every call goes through a :class:`~questfoundry.studio.role.Role` and its run's
:class:`~questfoundry.studio.calls.Calls` (the gateway, so its cache, limits and ledger apply;
or a forecast) and is added to the run's tally. Every text and structured prompt starts with its
background (:mod:`.briefing`): the brief, style guide and canon, and a section's neighbourhood
when the step names the section; a step reads the state for it once, the first time it asks.
An answer is read in three tries at most:

1. the reply must have the right shape (JSON valid against the schema, for structured output);
   one that does not is asked again once with the error, then the step fails. A reply of the
   wrong shape is dropped from the response cache, so running the step again asks afresh;
2. ``fix`` checks its meaning and returns it repaired with notes of what was wrong; answers with
   notes are asked again once, naming the problems;
3. what is still wrong after that is repaired, and the notes go to the report's repairs.

A retry's prompt holds the previous answer and the problem and nothing else new, so a run is
as deterministic as its replies and a second run is answered from the cache.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from questfoundry.book.model import Topology
from questfoundry.contracts.brief import BRIEF, CANON, STYLE, Brief, CanonEntry, StyleGuide
from questfoundry.contracts.errors import StateError, StepError
from questfoundry.contracts.records import Reply
from questfoundry.contracts.structured import ShapeError, parse_reply, schema_params
from questfoundry.contracts.studio import RUN, Fix, LoopSpec, Step, accept_as_is
from questfoundry.kit.loops import TOPOLOGY
from questfoundry.studio.briefing import Knowledge, background, look
from questfoundry.studio.role import Role

if TYPE_CHECKING:
    from questfoundry.contracts.protocols import StateStore
    from questfoundry.studio.calls import Calls
    from questfoundry.studio.report import Tally
    from questfoundry.studio.role import Cast
    from questfoundry.studio.state_queue import StateQueue


class Run(Protocol):
    """What a step's context needs of the run it belongs to (the engine's ``LoopRun``)."""

    showrunner: Cast
    state: StateStore
    tally: Tally
    repairs: list[str]
    outputs: dict[str, str]
    loop: LoopSpec
    run_id: str
    sections: int
    options: Mapping[str, Any]
    force: bool
    brief: Brief
    notes: list[str]
    calls: Calls
    root: Path
    context_tokens: int
    io: StateQueue

    def progress(self, step: Step, done: int, total: int, status: str) -> None: ...


T = TypeVar("T")
U = TypeVar("U")
#: how much of a rejected answer a retry prompt quotes
QUOTED = 4000


class StepContext:
    """One step of one run, the engine's :class:`~questfoundry.contracts.studio.StepContext`: see
    the module docstring. Made by the engine, one per step."""

    def __init__(self, run: Run, step: Step) -> None:
        self._run = run
        self.step = step
        self.loop = run.loop.name
        self.run_id = run.run_id
        #: how many sections the run was asked for
        self.sections = run.sections
        #: the values of the loop's declared options
        self.options = run.options
        #: the run may rewrite what the author wrote by hand
        self.force = run.force
        self._total = 1
        self._done = 0
        self._knowledge: asyncio.Future[Knowledge] | None = None

    # ------------------------------------------------------------------ roles and state

    @property
    def project_root(self) -> Path:
        """The folder holding the project's ``.questfoundry``: where a loop writes files (a
        temporary folder for a forecast)."""
        return self._run.root

    @property
    def brief(self) -> Brief:
        """The author's brief as the run found it (its flags applied), with what its steps
        amended since."""
        return self._run.brief

    async def amend_brief(self, changes: Mapping[str, Any]) -> Brief:
        """Save the brief with ``changes``; this run's later prompts carry it (this step's read
        of the state for prompts starts again), and so do later runs'."""
        brief = self._run.brief.updated(changes)
        await self._io(self._run.state.set, BRIEF, brief.to_dict())
        self._run.brief = brief
        self._knowledge = None
        return brief

    def role(self, name: str | None = None) -> Role:
        """The step's role, or another role of the loop by ``name``."""
        return self._run.showrunner.role(name or self.step.role)

    def max_tokens(self, role: str | None = None) -> int | None:
        """The most tokens one reply of the role may hold: its ``max_tokens``, or the cap the
        gateway sends (:meth:`Gateway.plan <questfoundry.gateway.Gateway.plan>` says which)."""
        request = self.role(role).request("")
        limit = self._run.showrunner.runtime.gateway.plan(request).params.get("max_tokens")
        return int(limit) if limit else None

    async def get(self, key: str) -> dict[str, Any] | None:
        """The state document at ``key``, whoever made it."""
        return await self._io(self._run.state.get, key)

    async def made(self, key: str) -> dict[str, Any] | None:
        """The document at ``key`` if this run saved it (on resume: work not to redo)."""
        document = await self.get(key)
        return document if document is not None and document.get(RUN) == self.run_id else None

    async def save(self, key: str, document: Mapping[str, Any]) -> dict[str, Any]:
        """Store ``document`` at ``key`` now, stamped with the run id; returns what was stored."""
        stamped = {**document, RUN: self.run_id}
        await self._io(self._run.state.set, key, stamped)
        return stamped

    async def keys(self, prefix: str) -> list[str]:
        return await self._io(self._run.state.list_keys, prefix)

    async def delete(self, key: str) -> None:
        await self._io(self._run.state.delete, key)

    async def _io(self, function: Callable[..., U], *args: Any) -> U:
        """Call the state store through the run's queue (:mod:`.state_queue`)."""
        return await self._run.io.call(function, *args)

    # ------------------------------------------------------------------ report

    def repaired(self, note: str) -> None:
        """Tell the report something was repaired (once, however often a resumed run says so)."""
        line = f"{self.step.name}: {note}"
        if line not in self._run.repairs:
            self._run.repairs.append(line)

    def output(self, name: str, path: str) -> None:
        """Tell the report where a file was written."""
        self._run.outputs[name] = path

    def note(self, line: str) -> None:
        """Tell the author something in the report (once, however often a resumed run says so)."""
        if line not in self._run.notes:
            self._run.notes.append(line)

    def fail(self, reason: str, role: str | None = None) -> StepError:
        """The error failing this step for ``reason`` (raise it)."""
        return StepError(self.loop, self.step.name, role or self.step.role, reason)

    # ------------------------------------------------------------------ fan-out

    async def each(self, items: Sequence[T], work: Callable[[T], Awaitable[U]]) -> list[U]:
        """``work`` on every item, concurrently but at most ``concurrency`` at a time.

        After the first failure no new item starts; the ones running finish (saving what they
        made) and the first failure is raised.
        """
        self._total, self._done = max(len(items), 1), 0
        self._report("running")
        limit = asyncio.Semaphore(self._run.showrunner.concurrency)
        failed = asyncio.Event()

        async def one(item: T) -> U | None:
            async with limit:
                if failed.is_set():
                    return None
                try:
                    result = await work(item)
                except BaseException:
                    failed.set()
                    raise
            self._done += 1
            self._report("running")
            return result

        results = await asyncio.gather(*(one(item) for item in items), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return results  # type: ignore[return-value]

    def _report(self, status: str) -> None:
        self._run.progress(self.step, self._done, self._total, status)

    # ------------------------------------------------------------------ background

    async def background(self, section: str | None = None) -> str:
        """The context block a prompt starts with (:func:`~.briefing.background`): the book's,
        or the section of id ``section``'s, within ``studio.context_tokens``."""
        return background(await self.knowledge(), self._run.context_tokens, section)

    async def knowledge(self) -> Knowledge:
        """What the state holds that prompts draw on, read once per step (the concurrent asks of
        a step's fan-out share one read)."""
        if self._knowledge is None:
            self._knowledge = asyncio.ensure_future(self._read_knowledge())
        return await asyncio.shield(self._knowledge)

    async def _read_knowledge(self) -> Knowledge:
        """The style guide, canon and topology in the state. A malformed style guide or canon
        entry fails the step in one line naming its key; a malformed topology gives no section
        its context (a step reading the topology itself says what is wrong with it, and one
        drafting a new one needs nothing of the old)."""
        topology = await self.get(TOPOLOGY)
        style = await self.get(STYLE)
        canon = []
        for key in await self.keys(CANON):
            document = await self.get(key)
            if document is not None:
                canon.append((key[len(CANON) :], _read(key, CanonEntry.from_dict, document)))
        return Knowledge(
            self._run.brief,
            None if style is None else _read(STYLE, StyleGuide.from_dict, style),
            tuple(canon),
            _topology(topology),
        )

    async def _told(self, prompt: str, section: str | None) -> str:
        """``prompt`` after its background."""
        told = await self.background(section)
        return f"{told}\n\n{prompt}" if told else prompt

    # ------------------------------------------------------------------ asking

    async def text(
        self,
        prompt: str,
        *,
        role: str | None = None,
        fix: Fix[str] = accept_as_is,
        instructions: str | None = None,
        section: str | None = None,
        words: int | None = None,
    ) -> str:
        """Prose from the role: plain text, its meaning checked by ``fix``.

        ``instructions`` replace the step's, for a role other than the step's own. ``section``
        (an id) adds its context to the background; ``words`` is the length expected, for
        forecasts.
        """
        asked = self.role(role)
        prompt = await self._told(prompt, section)
        return await self._ask(asked, prompt, {}, lambda text: text or "", fix, instructions, words)

    async def structured(
        self,
        prompt: str,
        *,
        name: str,
        schema: Mapping[str, Any],
        fix: Fix[T] = accept_as_is,
        role: str | None = None,
        section: str | None = None,
    ) -> T:
        """An instance of ``schema`` from the role (structured output), checked by ``fix``;
        ``section`` as for :meth:`text`."""
        params = schema_params(name, schema)
        asked = self.role(role)
        prompt = await self._told(prompt, section)
        return await self._ask(
            asked, prompt, params, lambda t: parse_reply(t, schema), fix, None, None
        )

    async def image(self, prompt: str, *, role: str | None = None) -> bytes:
        """Image bytes from an image role; the prompt ends with the brief's look."""
        asked = self.role(role)
        style = look(self._run.brief)
        reply = await self._call(asked, f"{prompt} {style}" if style else prompt, {})
        if not reply.image:
            raise self.fail("the image provider returned no image", asked.name)
        return reply.image

    async def _call(
        self,
        role: Role,
        prompt: str,
        params: Mapping[str, Any],
        instructions: str | None = None,
        words: int | None = None,
    ) -> Reply:
        if instructions is None:
            instructions = self.step.instructions
        reply = await self._run.calls.ask(role, prompt, instructions, params, words)
        self._run.tally.add(role, reply)
        return reply

    async def _forget(self, reply: Reply) -> None:
        """Drop an unusable reply from the cache, so running the step again asks afresh."""
        await self._run.calls.forget(reply)

    async def _ask(
        self,
        role: Role,
        prompt: str,
        params: Mapping[str, Any],
        read: Callable[[str | None], Any],
        fix: Fix[T],
        instructions: str | None,
        words: int | None,
    ) -> T:
        asked, shape_retried, candidate = prompt, False, None
        for _ in range(3):
            reply = await self._call(role, asked, params, instructions, words)
            try:
                value = read(reply.text)
            except ShapeError as exc:
                await self._forget(reply)
                if candidate is not None:
                    break
                if shape_retried:
                    cut = reply.finish_reason == "length"
                    hint = f" (cut off at max_tokens: raise roles.{role.name}.max_tokens)"
                    reason = f"{exc}, again after one retry{hint if cut else ''}"
                    raise self.fail(reason, role.name) from None
                shape_retried = True
                asked = _retry(prompt, reply.text, str(exc))
                continue
            except Exception:
                await self._forget(reply)  # whatever failed, never keep the reply that did it
                raise
            fixed, notes = fix(value)
            if not notes:
                return fixed
            if candidate is not None:
                candidate = (fixed, notes)
                break
            candidate = (fixed, notes)
            asked = _retry(prompt, reply.text, "; ".join(notes))
        assert candidate is not None
        fixed, notes = candidate
        for note in notes:
            self.repaired(note)
        return fixed


def _topology(document: dict[str, Any] | None) -> Topology | None:
    try:
        return None if document is None else Topology.from_dict(document)
    except StateError:
        return None


def _read(key: str, read: Callable[[dict[str, Any]], U], document: dict[str, Any]) -> U:
    """``read(document)``; a :class:`StateError` saying which key holds what it refused."""
    try:
        return read(document)
    except (StateError, AttributeError, TypeError) as exc:
        raise StateError(f"{key}: {exc}") from None


def _retry(prompt: str, answer: str | None, problem: str) -> str:
    """The prompt asked again: the first prompt, the rejected answer, what was wrong with it."""
    quoted = (answer or "")[:QUOTED]
    return (
        f"{prompt}\n\nYour previous answer was:\n{quoted}\n\n"
        f"It cannot be used: {problem}. Answer again, fixing that."
    )
