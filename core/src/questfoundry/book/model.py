"""The book's model: a topology of sections linked by choices, its checks and its repairs.

A model may answer with shape-valid nonsense: ids that repeat or are empty, choices naming
sections that do not exist, a start that is nowhere, sections no path reaches. :func:`repair`
turns any instance of :func:`topology_schema` into a topology whose every link works, and says
what it had to change; an empty list of notes means the answer was sound. The loops use those
notes twice: first to ask the model again, naming the problems, then as the report's repairs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Any

from questfoundry.contracts.errors import StateError
from questfoundry.contracts.structured import TEXT, obj

#: the most sections a loop run may ask for
MAX_SECTIONS = 1000
#: how many sections a run asks for when it is not told
DEFAULT_SECTIONS = 6
MAX_CHOICES = 3
_UNSAFE = re.compile(r"[^a-z0-9_-]+")
#: what a section id is: safe as an HTML anchor, a file name, a Twee passage name and a state key
_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
#: notes list at most this many examples of one kind of problem
EXAMPLES = 3


@dataclass(frozen=True)
class Choice:
    text: str
    target: str


@dataclass(frozen=True)
class Section:
    """A section: its id (stable, in links and state keys) and its ``number`` (what a reader
    turns to; 0 until its topology numbers it)."""

    id: str
    title: str
    summary: str
    choices: tuple[Choice, ...] = ()
    number: int = 0


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


def topology_schema(sections: int) -> dict[str, Any]:
    """The JSON Schema the plotwright answers: ``sections`` sections with up to 3 choices each."""
    choice = obj(text=TEXT, target=TEXT)
    section = obj(
        id=TEXT,
        title=TEXT,
        summary=TEXT,
        choices={"type": "array", "items": choice, "maxItems": MAX_CHOICES},
    )
    return obj(
        title=TEXT,
        start=TEXT,
        sections={"type": "array", "items": section, "minItems": sections, "maxItems": sections},
    )


def slug(text: str) -> str:
    """A short id safe in an HTML anchor: lowercase letters, digits, ``-`` and ``_``."""
    return _UNSAFE.sub("-", text.strip().lower()).strip("-_")[:40].rstrip("-_")


def repair(data: Mapping[str, Any]) -> tuple[Topology, list[str]]:
    """A sound topology from an instance of :func:`topology_schema`, and what had to change."""
    notes = _Notes()
    raw = list(data["sections"])
    originals = [str(s["id"]) for s in raw]
    ids, renamed = _ids(originals)
    notes.add("section ids empty, repeated or not short slugs were renumbered", renamed)
    lookup: dict[str, str] = {}
    for original, new in zip(originals, ids, strict=True):
        lookup.setdefault(original, new)  # a name as written wins over one as a slug
    for original, new in zip(originals, ids, strict=True):
        lookup.setdefault(slug(original), new)
    untitled = [ident for s, ident in zip(raw, ids, strict=True) if not str(s["title"]).strip()]
    notes.add("sections without a title were named", untitled)
    dangling: list[str] = []
    repeated: list[str] = []
    sections = [
        Section(
            ident,
            str(item["title"]).strip() or f"Section {index + 1}",
            str(item["summary"]).strip(),
            _choices(ident, item["choices"], lookup, dangling, repeated),
        )
        for index, (item, ident) in enumerate(zip(raw, ids, strict=True))
    ]
    notes.add("choices naming sections that do not exist were dropped", dangling)
    notes.add("choices leading where another choice leads were dropped", repeated)
    titles = {s.id: s.title for s in sections}
    sections = [_texts_filled(s, titles) for s in sections]
    start = _find(lookup, data["start"])
    if start is None:
        notes.append(f"the start {data['start']!r} named no section (the first one starts)")
        start = ids[0]
    sections, linked = _reach_all(sections, start)
    notes.add("sections no path from the start reached were linked in", linked)
    title = str(data["title"]).strip()
    if not title:
        notes.append("the book had no title")
    return Topology(title or "Untitled", start, tuple(sections)), list(notes)


class _Notes(list[str]):
    def add(self, what: str, examples: Sequence[str]) -> None:
        """A note of ``what`` with a few ``examples``, when there are any."""
        if examples:
            shown = ", ".join(examples[:EXAMPLES])
            more = f" and {len(examples) - EXAMPLES} more" if len(examples) > EXAMPLES else ""
            self.append(f"{what} ({len(examples)}): {shown}{more}")


def _find(lookup: Mapping[str, str], name: Any) -> str | None:
    """The section id a model's ``name`` for it stands for, if any."""
    return lookup.get(str(name)) or lookup.get(slug(str(name)))


def _choices(
    ident: str,
    raw: Sequence[Mapping[str, Any]],
    lookup: Mapping[str, str],
    dangling: list[str],
    repeated: list[str],
) -> tuple[Choice, ...]:
    """A section's choices that lead somewhere, one per target; the others noted."""
    choices: list[Choice] = []
    for choice in raw:
        target = _find(lookup, choice["target"])
        if target is None:
            dangling.append(f"{ident} → {choice['target']!r}")
        elif any(c.target == target for c in choices):
            repeated.append(f"{ident} → {target}")
        else:
            choices.append(Choice(str(choice["text"]).strip(), target))
    return tuple(choices)


def _ids(raw: Sequence[str]) -> tuple[list[str], list[str]]:
    """Each section's id: its own when it is a short slug not taken yet, else ``s<n>``."""
    ids: list[str] = []
    renamed: list[str] = []
    for index, original in enumerate(raw):
        ident = original
        if not _ID.fullmatch(original) or original in ids:
            ident = _fresh(f"s{index + 1}", [*ids, *raw[index + 1 :]])
            renamed.append(f"{original!r} → {ident}")
        ids.append(ident)
    return ids, renamed


def _fresh(ident: str, taken: Sequence[str]) -> str:
    candidate, n = ident, 1
    while candidate in taken:
        n += 1
        candidate = f"{ident}-{n}"
    return candidate


def _texts_filled(section: Section, titles: Mapping[str, str]) -> Section:
    """Choices without text read "Go to <title>"."""
    if all(c.text for c in section.choices):
        return section
    choices = tuple(
        c if c.text else Choice(f"Go to {titles[c.target]}", c.target) for c in section.choices
    )
    return Section(section.id, section.title, section.summary, choices)


def reachable(sections: Sequence[Section], start: str) -> set[str]:
    """Ids of the sections a reader can reach from ``start`` by following choices."""
    by_id = {s.id: s for s in sections}
    seen, todo = {start}, [start]
    while todo:
        for choice in by_id[todo.pop()].choices:
            if choice.target not in seen and choice.target in by_id:
                seen.add(choice.target)
                todo.append(choice.target)
    return seen


def _reach_all(sections: list[Section], start: str) -> tuple[list[Section], list[str]]:
    """Link each unreachable section from the nearest reachable one before it (else the start)."""
    linked: list[str] = []
    while True:
        seen = reachable(sections, start)
        lost = next((i for i, s in enumerate(sections) if s.id not in seen), None)
        if lost is None:
            return sections, linked
        target = sections[lost]
        before = [i for i in range(lost) if sections[i].id in seen]
        source = before[-1] if before else next(i for i, s in enumerate(sections) if s.id == start)
        origin = sections[source]
        choice = Choice(f"Continue to {target.title}", target.id)
        sections[source] = Section(
            origin.id, origin.title, origin.summary, (*origin.choices, choice)
        )
        linked.append(target.id)
