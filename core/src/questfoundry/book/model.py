"""The book's model: a topology of numbered sections linked by choices, read from state safely.

A section has an id (stable: in links, anchors and state keys) and a number (what a reader
turns to, 1..N in reading order). :meth:`Topology.from_dict` refuses, with one line, a state
document whose ids are not valid ids or whose links lead nowhere, so nothing downstream ever
writes an unchecked id into a page. The rules a book's graph meets live in
:mod:`questfoundry.book.graph`; the studio's shape and its repair in
:mod:`questfoundry.book.shape`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Any

from questfoundry.contracts.errors import StateError

#: the most sections a loop run may ask for
MAX_SECTIONS = 1000
#: how many sections a run asks for when it is not told
DEFAULT_SECTIONS = 6
MAX_CHOICES = 3
_UNSAFE = re.compile(r"[^a-z0-9_-]+")
#: what a section id is: safe as an HTML anchor, a file name, a Twee passage name and a state key
_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


@dataclass(frozen=True)
class Choice:
    text: str
    target: str


@dataclass(frozen=True)
class Section:
    """A section: its id (stable, in links and state keys) and its ``number`` (what a reader
    turns to; 0 until its topology numbers it).

    A section without choices is an ending unless ``ending`` is False: then it is a dead end,
    where a reader is stuck (the repair never leaves one). A section with choices is never an
    ending (``ending`` is set False).
    """

    id: str
    title: str
    summary: str
    choices: tuple[Choice, ...] = ()
    number: int = 0
    ending: bool = True

    def __post_init__(self) -> None:
        if self.choices and self.ending:
            object.__setattr__(self, "ending", False)


@dataclass(frozen=True)
class Topology:
    """Sections in reading order, numbered from 1; ``start`` is where a reader begins.

    Sections without a number get the next ones after the highest given, in order, so a
    section added to a book never takes the number another already has.
    """

    title: str
    start: str
    sections: tuple[Section, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if any(s.number <= 0 for s in self.sections):
            following = max((s.number for s in self.sections), default=0)
            numbered = []
            for s in self.sections:
                if s.number <= 0:
                    following += 1
                numbered.append(s if s.number > 0 else replace(s, number=following))
            object.__setattr__(self, "sections", tuple(numbered))

    @cached_property
    def _index(self) -> dict[str | int, Section]:
        return {s.id: s for s in self.sections} | {s.number: s for s in self.sections}

    def section(self, ref: str | int) -> Section:
        """The section of id ``ref``, else of number ``ref`` ("12" or 12); KeyError if none."""
        found = self._index.get(ref)
        if found is None and isinstance(ref, str) and ref.strip().isdigit():
            found = self._index.get(int(ref))
        if found is None:
            raise KeyError(f"the book has no section {_shown(ref)}")
        return found

    def by_number(self, number: int) -> Section:
        """The section a reader turns to as ``number``; KeyError if none."""
        found = self._index.get(int(number))
        if found is None:
            raise KeyError(f"the book has no section number {number}")
        return found

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.sections]

    def has(self, ident: str) -> bool:
        """Whether a section has the id ``ident`` (without building :attr:`ids`)."""
        return isinstance(ident, str) and ident in self._index

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Topology:
        """The topology a state document holds; :class:`StateError` (one line) when it is not
        one: ids, start or targets that are not valid ids, numbers that repeat.

        A document from before sections had numbers gets them from its order.
        """
        try:
            sections = tuple(
                Section(
                    valid_id(s["id"], "section id"),
                    str(s["title"]),
                    str(s.get("summary", "")),
                    tuple(
                        Choice(str(c["text"]), valid_id(c["target"], "choice target"))
                        for c in s.get("choices", ())
                    ),
                    _number(s.get("number", 0)),
                    _flag(s.get("ending", True)),
                )
                for s in data["sections"]
            )
            topology = cls(str(data["title"]), valid_id(data["start"], "start"), sections)
        except (KeyError, TypeError, AttributeError) as exc:
            problem = f"{type(exc).__name__}: {_shown(exc.args[0] if exc.args else '')}"
            raise StateError(f"the book's topology is malformed ({problem})") from None
        problems = _unsound(topology)
        if problems:
            raise StateError(f"the book's topology is broken: {'; '.join(problems)}")
        return topology


def valid_id(value: Any, what: str = "section id") -> str:
    """``value`` if it is a valid section id, else :class:`StateError` naming it (cut short)."""
    if isinstance(value, str) and _ID.fullmatch(value):
        return value
    raise StateError(
        f"the book's {what} {_shown(value)} is not a valid id "
        "(a lowercase letter or digit, then up to 39 of those, '-' or '_')"
    )


def _shown(value: Any, width: int = 40) -> str:
    """``value`` quoted on one line, cut to ``width`` characters."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _number(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise StateError(f"the book's section number {_shown(value)} is not a whole number")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise StateError(f"the book's ending flag {_shown(value)} is not true or false")
    return value


def _unsound(topology: Topology) -> list[str]:
    """What makes ``topology`` unreadable: repeated ids or numbers, links to no section."""
    ids = set(topology.ids)
    problems = []
    if len(ids) != len(topology.sections):
        problems.append("two sections share an id")
    if len({s.number for s in topology.sections}) != len(topology.sections):
        problems.append("two sections share a number")
    if topology.sections and topology.start not in ids:
        problems.append(f"the start {_shown(topology.start)} names no section")
    missing = sorted({c.target for s in topology.sections for c in s.choices} - ids)
    if missing:
        problems.append(f"choices lead to no section: {_shown(missing[0])}")
    return problems


def slug(text: str) -> str:
    """A short id safe in an HTML anchor: lowercase letters, digits, ``-`` and ``_``."""
    return _UNSAFE.sub("-", text.strip().lower()).strip("-_")[:40].rstrip("-_")
