"""What the studio is made of: roles, loops of steps, and how a role is routed to a provider.

A plugin contributes roles and loops through the ``roles`` and ``loops`` hooks; a step's ``run``
is given a :class:`StepContext`, the whole of what a loop may do: ask roles (each prompt carrying
the brief and the context its section needs), read and save the project state, fan work out,
report repairs. A loop declares the options it takes on ``questfoundry run`` as
:class:`LoopOption` s; a step reads their values in ``context.options``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from questfoundry.contracts.brief import Brief
from questfoundry.contracts.errors import LoopError, StepError
from questfoundry.contracts.records import Kind

T = TypeVar("T")
U = TypeVar("U")
#: a meaning check: the answer, repaired, and notes of what was wrong (none: it was sound)
Fix = Callable[[Any], tuple[T, list[str]]]
#: the key of the run id stamped on every document a run saves
RUN = "run"


def accept_as_is(value: T) -> tuple[T, list[str]]:
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


OptionKind = Literal["text", "integer", "number", "flag", "choice"]
#: the run options every loop takes besides the brief's fields: no loop's own is named so
COMMON_OPTIONS = frozenset(
    {"sections", "estimate", "budget", "force", "json", "wait", "concurrency"}
)
_OPTION_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


@dataclass(frozen=True, slots=True)
class LoopOption:
    """An option a loop takes on ``questfoundry run LOOP``, listed by ``run LOOP --help``.

    ``name`` is the key in ``context.options`` and the flag (``--<name>``, ``_`` written ``-``).
    ``kind`` says what it holds: ``text``, ``integer``, ``number``, ``flag`` (True when given) or
    ``choice`` (one of ``choices``). ``default`` is its value when not given; a ``required`` one
    must be given; a number is refused outside ``minimum`` and ``maximum``. A loop's option of the
    same name as one every loop takes (``--language``) replaces it for that loop.
    """

    name: str
    help: str
    kind: OptionKind = "text"
    default: Any = None
    choices: tuple[str, ...] = ()
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None

    def __post_init__(self) -> None:
        if not _OPTION_NAME.fullmatch(self.name):
            raise ValueError(f"option name {self.name!r} is not a lowercase identifier")
        if (self.kind == "choice") != bool(self.choices):
            raise ValueError(f"option {self.name!r}: choices go with kind 'choice', and only there")
        if self.default is not None:
            self.value(self.default)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def value(self, given: Any) -> Any:
        """``given`` (a string from the command line, or a Python value) as the option's kind;
        :class:`LoopError` in one line when it is not one."""
        read = _READERS[self.kind](given, self.choices)
        if read is None:
            wanted = f"one of {', '.join(self.choices)}" if self.choices else _WANTED[self.kind]
            raise LoopError(f"{self.flag} takes {wanted}, not {given!r}")
        low, high = self.minimum, self.maximum
        if (low is not None and read < low) or (high is not None and read > high):
            bounds = f"from {low:g}" if high is None else f"{low or 0:g} to {high:g}"
            raise LoopError(f"{self.flag} takes {bounds}, not {read!r}")
        return read


def _flag(given: Any, _: tuple[str, ...]) -> bool | None:
    if isinstance(given, bool):
        return given
    words = {"true": True, "yes": True, "on": True, "1": True}
    words |= {"false": False, "no": False, "off": False, "0": False}
    return words.get(given.strip().lower()) if isinstance(given, str) else None


def _number(kind: type[int] | type[float]) -> Callable[[Any, tuple[str, ...]], Any]:
    def read(given: Any, _: tuple[str, ...]) -> Any:
        if isinstance(given, bool) or not isinstance(given, (str, int, float)):
            return None
        if kind is int and isinstance(given, float):
            return None
        try:
            return kind(given)
        except ValueError:
            return None

    return read


_WANTED = {"flag": "yes or no", "integer": "a whole number", "number": "a number", "text": "text"}
_READERS: dict[str, Callable[[Any, tuple[str, ...]], Any]] = {
    "flag": _flag,
    "integer": _number(int),
    "number": _number(float),
    "text": lambda given, _: given if isinstance(given, str) else None,
    "choice": lambda given, choices: given if given in choices else None,
}


@dataclass(frozen=True, slots=True)
class LoopSpec:
    """A loop: a named set of roles the Showrunner runs together, and the steps they take.

    A loop without ``steps`` is named in the catalogue but cannot run yet. Every step's role must
    be one of ``roles``. ``options`` are the run options it takes beyond those every loop takes.
    """

    name: str
    roles: tuple[str, ...]
    description: str = ""
    steps: tuple[Step, ...] = ()
    options: tuple[LoopOption, ...] = ()

    def __post_init__(self) -> None:
        strangers = sorted({step.role for step in self.steps} - set(self.roles))
        if strangers:
            raise ValueError(f"loop {self.name!r}: steps name roles it lacks: {strangers}")
        names = [option.name for option in self.options]
        if len(set(names)) != len(names):
            raise ValueError(f"loop {self.name!r}: two options share a name")
        taken = sorted(COMMON_OPTIONS.intersection(names))
        if taken:
            raise ValueError(f"loop {self.name!r}: every loop takes --{taken[0]} already")

    def options_of(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Every option's value: ``given`` ones read as their kind, the others their default.

        :class:`LoopError` (one line) for an option the loop does not take or a required one
        missing.
        """
        declared = {option.name: option for option in self.options}
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise LoopError(f"loop {self.name!r} takes no option {unknown[0]!r}")
        values = {}
        for name, option in declared.items():
            if given.get(name) is not None:
                values[name] = option.value(given[name])
            elif option.required:
                raise LoopError(f"loop {self.name!r} needs {option.flag}")
            else:
                values[name] = option.default
        return values


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
    cache, limits, budgets and ledger apply, and is counted in the run's report. Every text and
    structured prompt starts with its background (:meth:`background`): the brief, the style
    guide and canon, and with ``section`` that section's place and neighbours, within the
    ``studio.context_tokens`` budget. An answer is read in three tries at most: a reply of the
    wrong shape is asked again once with the error; an answer whose ``fix`` returns notes is
    asked again once naming them; what is still wrong is repaired and the notes go to the report.
    Documents saved are stamped with the run id (:data:`RUN`), so an interrupted run skips what it
    already made (:meth:`made`).
    """

    loop: str
    run_id: str
    #: how many sections the run was asked for
    sections: int
    #: the values of the options the loop declares (:attr:`LoopSpec.options`), defaults filled in
    options: Mapping[str, Any]
    #: the run was told (``--force``) it may rewrite what the author wrote by hand
    force: bool

    @property
    def brief(self) -> Brief:
        """The author's brief as the run found it (its flags applied)."""

    async def amend_brief(self, changes: Mapping[str, Any]) -> Brief:
        """Save the brief with ``changes`` (``{"premise": …}``): the run's later prompts carry
        it, and so do later runs'. Returns the brief as it now is."""

    @property
    def project_root(self) -> Path:
        """The folder holding the project's ``.questfoundry``: where a loop writes files."""

    def max_tokens(self, role: str | None = None) -> int | None:
        """The most tokens one reply of the role (``role``, else the step's) may hold: what a
        step sizes a long answer by. None when nothing bounds it."""

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

    def note(self, line: str) -> None:
        """Tell the author something in the report (``the plotwright invented a premise``)."""

    def fail(self, reason: str, role: str | None = None) -> StepError:
        """The error failing this step for ``reason`` (raise it)."""

    async def each(self, items: Sequence[T], work: Callable[[T], Awaitable[U]]) -> list[U]:
        """``work`` on every item, concurrently within the studio's fan-out; the first failure
        stops new items and is raised once the running ones finish."""

    async def background(self, section: str | None = None) -> str:
        """What a role is told before its task: the brief, style guide and canon, and for the
        section of id ``section`` its place in the book and the sections leading in and out;
        within ``studio.context_tokens``. Every text and structured prompt starts with it."""

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
        """Prose from the role (``role``: another role of the loop), its meaning checked by
        ``fix``; ``instructions`` replace the step's. ``section`` (an id) adds that section's
        context to the prompt's background; ``words``, about how long the answer runs, is what
        a forecast (``run --estimate``) counts on."""

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
        """An instance of ``schema`` (structured output), its meaning checked by ``fix``;
        ``section`` as for :meth:`text`."""

    async def image(self, prompt: str, *, role: str | None = None) -> bytes:
        """Image bytes from an image role; the prompt ends with the brief's look (genre, tone,
        audience)."""
