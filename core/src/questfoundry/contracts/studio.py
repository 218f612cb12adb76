"""What the studio is made of: roles, loops of steps, and how a role is routed to a provider.

A plugin contributes roles and loops through the ``roles`` and ``loops`` hooks; a step's ``run``
is given a :class:`StepContext`, the whole of what a loop may do: ask roles, read and save the
project state, fan work out, report repairs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from questfoundry.contracts.errors import StepError
from questfoundry.contracts.records import Kind

T = TypeVar("T")
U = TypeVar("U")
#: a meaning check: the answer, repaired, and notes of what was wrong (none: it was sound)
Fix = Callable[[Any], tuple[T, list[str]]]
#: the key of the run id stamped on every document a run saves
RUN = "run"


def sound(value: T) -> tuple[T, list[str]]:
    """A ``fix`` that finds nothing wrong."""
    return value, []


@dataclass(frozen=True, slots=True)
class RoleSpec:
    """A role of the studio: its name, whether it makes text or images, and what it does.

    ``kind`` routes the role: an image role is sent to ``providers.image``; ``roles.<name>.kind``
    in config.yml overrides it.
    """

    name: str
    kind: Kind = "text"
    description: str = ""


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a loop: ``role`` does ``run`` once what it ``reads`` is ready.

    ``reads`` and ``writes`` name artifacts (``"topology"``, ``"sections"``, …). A step waits for
    the steps of its loop that write what it reads; a read no step of the loop writes comes from
    the project state an earlier loop left. ``instructions`` are added to the role's own for every
    call the step makes. ``run`` is an async function given a
    :class:`StepContext`: it asks roles through it and saves what it makes.
    """

    name: str
    role: str
    instructions: str
    run: Callable[[Any], Awaitable[None]] = field(compare=False, repr=False)
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LoopSpec:
    """A loop: a named set of roles the Showrunner runs together, and the steps they take.

    A loop without ``steps`` is named in the catalogue but cannot run yet. Every step's role must
    be one of ``roles``.
    """

    name: str
    roles: tuple[str, ...]
    description: str = ""
    steps: tuple[Step, ...] = ()

    def __post_init__(self) -> None:
        strangers = sorted({step.role for step in self.steps} - set(self.roles))
        if strangers:
            raise ValueError(f"loop {self.name!r}: steps name roles it lacks: {strangers}")


@dataclass(frozen=True, slots=True)
class RoleProvider:
    """Which provider and model a role uses, its generation parameters and its kind.

    ``kind`` None means "the role's kind from the catalogue" (the plugin manager fills it in).
    ``sources`` maps each field (``provider``, ``model``, ``kind``, each parameter) to the layer
    that set it: ``override``, ``roles.<role>``, ``providers.<kind>.<provider>``,
    ``providers.<kind>.default``, ``role catalogue`` or ``built-in default``.
    """

    role: str
    provider: str
    model: str
    params: Mapping[str, Any] = field(default_factory=dict)
    kind: Kind | None = None
    sources: Mapping[str, str] = field(default_factory=dict)


class StepContext(Protocol):
    """What a step's ``run`` is given: the whole of what a loop may do.

    Every call goes through the step's role (or another role of the loop), so the gateway's
    cache, limits, budgets and ledger apply, and is counted in the run's report. An answer is read
    in three tries at most: a reply of the wrong shape is asked again once with the error; an
    answer whose ``fix`` returns notes is asked again once naming them; what is still wrong is
    repaired and the notes go to the report. Documents saved are stamped with the run id
    (:data:`RUN`), so an interrupted run skips what it already made (:meth:`made`).
    """

    loop: str
    run_id: str
    #: how many sections the run was asked for
    sections: int

    @property
    def project_root(self) -> Path:
        """The folder holding the project's ``.questfoundry``: where a loop writes files."""

    async def get(self, key: str) -> dict[str, Any] | None:
        """The state document at ``key``, whoever made it."""

    async def made(self, key: str) -> dict[str, Any] | None:
        """The document at ``key`` if this run saved it (on resume: work not to redo)."""

    async def save(self, key: str, document: Mapping[str, Any]) -> dict[str, Any]:
        """Store ``document`` at ``key`` now, stamped with the run id; returns what was stored."""

    async def keys(self, prefix: str) -> list[str]:
        """Every state key starting with ``prefix``."""

    async def delete(self, key: str) -> None:
        """Remove the document at ``key``."""

    def repaired(self, note: str) -> None:
        """Tell the report something was repaired."""

    def output(self, name: str, path: str) -> None:
        """Tell the report where a file was written."""

    def fail(self, reason: str, role: str | None = None) -> StepError:
        """The error failing this step for ``reason`` (raise it)."""

    async def each(self, items: Sequence[T], work: Callable[[T], Awaitable[U]]) -> list[U]:
        """``work`` on every item, concurrently within the studio's fan-out; the first failure
        stops new items and is raised once the running ones finish."""

    async def text(
        self,
        prompt: str,
        *,
        role: str | None = None,
        fix: Fix[str] = sound,
        instructions: str | None = None,
    ) -> str:
        """Prose from the role (``role``: another role of the loop), its meaning checked by
        ``fix``; ``instructions`` replace the step's."""

    async def structured(
        self,
        prompt: str,
        *,
        name: str,
        schema: Mapping[str, Any],
        fix: Fix[T] = sound,
        role: str | None = None,
    ) -> T:
        """An instance of ``schema`` (structured output), its meaning checked by ``fix``."""

    async def image(self, prompt: str, *, role: str | None = None) -> bytes:
        """Image bytes from an image role."""
