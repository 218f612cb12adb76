"""The studio's shape of a book: a numbered skeleton that meets the rules, the slots the
plotwright fills, and the repair of what it wrote toward the rules.

The studio, not the model, owns the shape, so any model — even one answering with valid
nonsense — yields a branching book. :meth:`Shape.of` lays N numbered sections out in layers:
the start, then layers of two or three sections, then the last endings. Every section of a
layer is linked from the layer before; most offer two or three choices; about one section in
:data:`SECTIONS_PER_ENDING` is an ending, spread through the book. Links only go forward, so
every path ends. The plotwright is shown these slots and fills them: each section's title,
summary and choices, a choice naming the section it leads to by number.

What it answers is kept as it is when it meets the rules of :mod:`questfoundry.book.graph`.
Otherwise :meth:`Shape.fill` first mends each section on its own (choices leading nowhere are
dropped; a dead end takes its slot's choices) and :meth:`Shape.join` then gives sections their
slots' choices back, a few at a time, until the whole meets the rules. That always ends: the
skeleton itself meets them, and each round restores at least one section. Every change is
said in a note.

A large book is drafted in :meth:`parts <Shape.parts>`: an outline of acts first, then each
part's slots in one reply that fits the plotwright's ``max_tokens``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from questfoundry.book.graph import MIN_BRANCHING, Figures, Graph, endings_wanted
from questfoundry.book.model import MAX_CHOICES, Choice, Section, Topology, slug
from questfoundry.contracts.structured import TEXT, object_schema

#: about one section in this many is an ending
SECTIONS_PER_ENDING = 8
#: how many sections the layers between the start and the last endings hold, in turn
WIDTHS = (2, 3)
#: one filled section in a reply, in tokens (a title, a sentence, two or three choices), with
#: room to spare; and a reply's frame
SECTION_TOKENS = 120
FRAME_TOKENS = 100
#: the share of ``max_tokens`` a reply is planned to take
FILL = 0.75
#: what a reply may hold when the plotwright's ``max_tokens`` is not known
DEFAULT_REPLY_TOKENS = 4096
#: the most acts a book in parts has
MAX_ACTS = 5
#: notes list at most this many examples of one kind of problem
EXAMPLES = 3

#: a filled section as the plotwright answers it, and as drafts keep it: ``title``,
#: ``summary``, ``ending``, ``choices`` (``text``, ``target`` a section number)
Draft = Mapping[str, Any]


@dataclass(frozen=True)
class Part:
    """Sections ``first`` to ``last`` (numbers), drafted in one reply, in act ``act`` (from 0)."""

    first: int
    last: int
    act: int = 0

    @property
    def count(self) -> int:
        return self.last - self.first + 1


def draft_schema(count: int, *, titled: bool) -> dict[str, Any]:
    """The JSON Schema of a reply filling ``count`` slots (with the book's title if
    ``titled``)."""
    choice = object_schema(text=TEXT, target={"type": "integer"})
    section = object_schema(
        title=TEXT,
        summary=TEXT,
        ending={"type": "boolean"},
        choices={"type": "array", "items": choice, "maxItems": MAX_CHOICES},
    )
    sections = {"type": "array", "items": section, "minItems": count, "maxItems": count}
    return (
        object_schema(title=TEXT, sections=sections) if titled else object_schema(sections=sections)
    )


def outline_schema(acts: int) -> dict[str, Any]:
    """The JSON Schema of a book's outline: its title and ``acts`` acts (title, summary)."""
    act = object_schema(title=TEXT, summary=TEXT)
    return object_schema(
        title=TEXT, acts={"type": "array", "items": act, "minItems": acts, "maxItems": acts}
    )


@dataclass(frozen=True)
class Shape:
    """The skeleton of a book: section ``n`` leads to ``links[n - 1]`` (none: an ending)."""

    links: tuple[tuple[int, ...], ...]

    @classmethod
    def of(cls, sections: int) -> Shape:
        """The skeleton of a book of ``sections`` sections (1 or more)."""
        layers, endings = _layers(sections)
        links: dict[int, list[int]] = {n: [] for n in range(1, sections + 1)}
        for index, layer in enumerate(layers[:-1]):
            after = layers[index + 2] if index + 2 < len(layers) else []
            _link([n for n in layer if n not in endings], layers[index + 1], after, links)
        return cls(tuple(tuple(links[n]) for n in range(1, sections + 1)))

    @property
    def size(self) -> int:
        return len(self.links)

    def targets(self, number: int) -> tuple[int, ...]:
        return self.links[number - 1]

    @cached_property
    def graph(self) -> Graph:
        links = dict(enumerate(self.links, 1))
        return Graph(1, links, frozenset(n for n, t in links.items() if not t))

    @cached_property
    def _before(self) -> dict[int, list[int]]:
        """Each section → the sections whose slots lead to it."""
        before: dict[int, list[int]] = {n: [] for n in range(1, self.size + 1)}
        for number, targets in enumerate(self.links, 1):
            for target in targets:
                before[target].append(number)
        return before

    # ------------------------------------------------------------------ asking

    def parts(self, reply_tokens: int | None = None) -> tuple[Part, ...]:
        """The parts the book is drafted in, each reply within ``reply_tokens`` (the
        plotwright's ``max_tokens``; None: :data:`DEFAULT_REPLY_TOKENS`). One part: one reply."""
        budget = (reply_tokens or DEFAULT_REPLY_TOKENS) * FILL - FRAME_TOKENS
        per_reply = max(1, int(budget // SECTION_TOKENS))
        count = math.ceil(self.size / per_reply)
        acts = min(MAX_ACTS, count)
        edges = [round(k * self.size / count) for k in range(count + 1)]
        return tuple(Part(edges[k] + 1, edges[k + 1], k * acts // count) for k in range(count))

    def slots(self, part: Part) -> str:
        """The slots of ``part`` as the plotwright is shown them, one line each."""
        lines = []
        for number in range(part.first, part.last + 1):
            targets = self.targets(number)
            start = " (the start)" if number == 1 else ""
            leads = "choices leading to " + ", ".join(map(str, targets)) if targets else "an ending"
            lines.append(f"{number}{start}: {leads}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ mending

    def fill(self, part: Part, reply: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """``reply`` (an instance of :func:`draft_schema`) with each section mended on its own:
        choices leading to no section, to their own or where another leads are dropped; a
        section marked as an ending with choices is not one; a dead end takes its slot's
        choices. The mended reply, and notes of what changed (none: it was sound)."""
        notes = _Notes()
        nowhere: list[str] = []
        repeated: list[str] = []
        unmarked: list[int] = []
        dead: list[int] = []
        sections = []
        for number, item in enumerate(reply["sections"], part.first):
            choices: list[dict[str, Any]] = []
            for choice in item["choices"]:
                target = int(choice["target"])
                if target == number or not 1 <= target <= self.size:
                    nowhere.append(f"{number} → {target}")
                elif any(c["target"] == target for c in choices):
                    repeated.append(f"{number} → {target}")
                else:
                    choices.append({"text": str(choice["text"]).strip(), "target": target})
            section = {
                "title": str(item["title"]).strip(),
                "summary": str(item["summary"]).strip(),
                "ending": bool(item["ending"]) and not choices,
                "choices": choices,
            }
            if choices and item["ending"]:
                unmarked.append(number)
            if not choices and not item["ending"]:
                dead.append(number)
                section = self._restored(number, section)
            sections.append(section)
        notes.add("choices leading to no section or back to their own were dropped", nowhere)
        notes.add("choices leading where another choice leads were dropped", repeated)
        notes.add("sections marked as endings but offering choices are not endings", unmarked)
        notes.add("dead ends (no choices, not an ending) took their slots' choices", dead)
        mended = {k: v for k, v in reply.items() if k != "sections"} | {"sections": sections}
        return mended, list(notes)

    def mender(self, part: Part) -> Callable[[Any], tuple[dict[str, Any], list[str]]]:
        """:meth:`fill` for ``part``, as a step's ``fix``."""
        return lambda reply: self.fill(part, reply)

    def whole(self, reply: Mapping[str, Any]) -> tuple[Topology, list[str]]:
        """A one-reply draft (:func:`draft_schema` with a title) mended and joined: a ``fix``."""
        mended, notes = self.fill(Part(1, self.size), reply)
        topology, more = self.join(str(reply["title"]), mended["sections"])
        return topology, notes + more

    def join(self, title: str, drafts: Sequence[Draft]) -> tuple[Topology, list[str]]:
        """The topology of every section's mended draft (in order), meeting the rules; and
        notes of what changed to make it meet them."""
        if len(drafts) != self.size:
            raise ValueError(f"{len(drafts)} drafts for a shape of {self.size} sections")
        work = _Work(self, [dict(d) for d in drafts])
        work.mend()
        notes = work.notes
        sections = work.sections(notes)
        title = title.strip()
        if not title:
            notes.append("the book had no title")
        return Topology(title or "Untitled", sections[0].id, tuple(sections)), list(notes)

    def _restored(self, number: int, draft: Draft) -> dict[str, Any]:
        """``draft`` with its slot's choices (texts kept where a choice led the same way)."""
        said = {c["target"]: c["text"] for c in draft["choices"]}
        targets = self.targets(number)
        choices = [{"text": said.get(t, ""), "target": t} for t in targets]
        return {**draft, "ending": not targets, "choices": choices}


class _Work:
    """A join in progress: drafts whose own links stand (``kept``) and those given their
    slots' back, round by round, until the graph meets the rules."""

    def __init__(self, shape: Shape, drafts: list[dict[str, Any]]) -> None:
        self.shape = shape
        self.drafts = drafts
        self.kept = set(range(1, shape.size + 1))
        self.notes = _Notes()

    def graph(self) -> Graph:
        links = {n: tuple(c["target"] for c in d["choices"]) for n, d in enumerate(self.drafts, 1)}
        endings = {n for n, d in enumerate(self.drafts, 1) if d["ending"] and not d["choices"]}
        return Graph(1, links, frozenset(endings))

    def restore(self, numbers: Sequence[int]) -> None:
        for number in numbers:
            self.drafts[number - 1] = self.shape._restored(number, self.drafts[number - 1])
            self.kept.discard(number)

    def mend(self) -> None:
        """Restore slots until the graph meets the rules, noting why each round did."""
        restored: dict[str, list[int]] = {}
        unreached: list[int] = []
        while True:
            figures = self.graph().figures()
            reason, chosen = self._round(figures)
            if reason is None or not chosen:
                break
            if reason == LINKED:
                unreached += [n for n in figures.unreachable if n not in unreached]
            self.restore(chosen)
            restored.setdefault(reason, []).extend(chosen)
        self.notes.add("sections no path from the start reached", unreached)
        for reason, numbers in restored.items():
            self.notes.add(reason, numbers)

    def _round(self, figures: Figures) -> tuple[str | None, list[int]]:
        """The first rule ``figures`` break and the sections to restore for it."""
        shape, kept = self.shape, self.kept
        missing = endings_wanted(shape.size) - figures.endings
        if missing > 0:
            slots = [n for n in kept if not shape.targets(n) and self.drafts[n - 1]["choices"]]
            return ENDED, sorted(slots, reverse=True)[:missing] or self._all()
        stuck = [n for n in (*figures.trapped, *figures.dead_ends) if n in kept]
        if figures.trapped or figures.dead_ends:
            return STUCK, stuck or self._all()
        if figures.unreachable:
            reached = set(range(1, shape.size + 1)) - set(figures.unreachable)
            feeders = {
                next(p for p in shape._before[n] if p in kept and p in reached)
                for n in figures.unreachable
                if any(p in kept and p in reached for p in shape._before[n])
            }
            return LINKED, sorted(feeders) or self._all()
        if not figures.branches_enough:
            return BRANCHED, self._branching(figures) or self._all()
        return None, []

    def _branching(self, figures: Figures) -> list[int]:
        """Kept sections to restore, in order, until enough of the book branches."""
        branching, choosing = figures.branching, figures.choosing
        chosen = []
        for number in sorted(self.kept):
            if branching >= choosing * MIN_BRANCHING:
                break
            now = len(self.drafts[number - 1]["choices"])
            slot = len(self.shape.targets(number))
            if (slot >= 2) > (now >= 2) or (slot == 0 and now == 1):
                chosen.append(number)
                branching += (slot >= 2) - (now >= 2)
                choosing += (slot > 0) - (now > 0)
        return chosen

    def _all(self) -> list[int]:
        """Every kept section: never needed (each rule above always finds one to restore), but
        if it were, restoring them all gives the skeleton, which meets the rules."""
        return sorted(self.kept)

    def sections(self, notes: _Notes) -> list[Section]:
        """The drafts as sections: titles and choice texts filled in, ids made from titles."""
        untitled = [n for n, d in enumerate(self.drafts, 1) if not d["title"]]
        notes.add("sections without a title were named", untitled)
        titles = [d["title"] or f"Section {n}" for n, d in enumerate(self.drafts, 1)]
        ids = _ids(titles)
        textless: list[str] = []
        sections = []
        for number, draft in enumerate(self.drafts, 1):
            choices = []
            for choice in draft["choices"]:
                text = choice["text"]
                if not text:
                    textless.append(f"{number} → {choice['target']}")
                    text = f"Go to {titles[choice['target'] - 1]}"
                choices.append(Choice(text, ids[choice["target"] - 1]))
            sections.append(
                Section(
                    ids[number - 1],
                    titles[number - 1],
                    draft["summary"],
                    tuple(choices),
                    number,
                    bool(draft["ending"]),
                )
            )
        notes.add("choices without a text were named after where they lead", textless)
        return sections


#: why :class:`_Work` gave sections their slots' choices back, as its notes say
ENDED = "too few endings, so these sections end the book as their slots do"
STUCK = "no ending could be reached from these sections, so they took their slots' choices"
LINKED = "to link those in, these sections took their slots' choices"
BRANCHED = "too few sections branched, so these took their slots' choices"


def _layers(sections: int) -> tuple[list[list[int]], set[int]]:
    """The skeleton's layers of section numbers, and which sections are endings."""
    if sections == 1:
        return [[1]], {1}
    wanted = max(endings_wanted(sections), round(sections / SECTIONS_PER_ENDING))
    last = min(wanted, 3, sections - 1)
    middle = sections - 1 - last
    widths: list[int] = []
    while sum(widths) < middle:
        widths.append(min(WIDTHS[len(widths) % len(WIDTHS)], middle - sum(widths)))
    layers, first = [], 1
    for width in (1, *widths, last):
        layers.append(list(range(first, first + width)))
        first += width
    # the other endings: the last section of layers spread through the book, never the
    # start's own layer or the one after it, never the only section of a layer
    room = [i for i in range(2, len(layers) - 1) if len(layers[i]) >= 2]
    more = min(wanted - last, len(room))
    chosen = [room[(2 * k + 1) * len(room) // (2 * more)] for k in range(more)]
    return layers, set(layers[-1]) | {layers[i][-1] for i in chosen}


def _link(here: list[int], there: list[int], after: list[int], links: dict[int, list[int]]) -> None:
    """Link the sections of a layer that are not endings (``here``) to every section of the
    next layer (``there``); then give most of those with one choice a second: another section
    of the next layer, or one of the layer after (``after``)."""
    a, b = len(here), len(there)
    for i, number in enumerate(here):
        links[number].append(there[i * b // a])
    for j, target in enumerate(there):
        source = here[j * a // b]
        if target not in links[source]:
            links[source].append(target)
    for i, number in enumerate(here):
        if len(links[number]) >= 2 or number % 4 == 0:
            continue
        if b >= 2:
            links[number].append(there[(there.index(links[number][0]) + 1) % b])
        elif after:
            links[number].append(after[i % len(after)])


def _ids(titles: Sequence[str]) -> list[str]:
    """An id per section from its title: a short slug not taken yet (``s<n>`` when the title
    gives none, or only digits, which would read as a section number)."""
    ids: list[str] = []
    taken: set[str] = set()
    for number, title in enumerate(titles, 1):
        base = slug(title)[:34].rstrip("-_")
        if not base or base.isdigit():
            base = f"s{number}"
        ident, n = base, 1
        while ident in taken:
            n += 1
            ident = f"{base}-{n}"
        taken.add(ident)
        ids.append(ident)
    return ids


class _Notes(list[str]):
    def add(self, what: str, examples: Sequence[object]) -> None:
        """A note of ``what`` with a few ``examples``, when there are any."""
        if examples:
            shown = ", ".join(str(e) for e in examples[:EXAMPLES])
            more = f" and {len(examples) - EXAMPLES} more" if len(examples) > EXAMPLES else ""
            self.append(f"{what} ({len(examples)}): {shown}{more}")
