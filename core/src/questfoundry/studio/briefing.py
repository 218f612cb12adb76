"""The background of every prompt: what a role needs to know, chosen from the state, in a budget.

A model asked for one section at a time writes one story only if each request says what the book
is and where the section stands in it. :func:`background` builds that text from what the state
already holds — no model is asked to summarise — and keeps it within ``studio.context_tokens``
(estimated as the gateway does, four characters a token). What goes in, most needed first:

1. the brief (a long field is cut to fit, never dropped);
2. for a section: its place in the structure (number, start or ending, how far from the start,
   how many sections lead in and out);
3. the summaries of the sections leading into it, then of those it leads to;
4. the style guide: its paragraph, then its rules;
5. canon entries, most relevant first: those naming the section, then its neighbours, then those
   sharing the most words with it (for the book as a whole: with the premise).

Whatever does not fit whole is left out (a summary or an entry is never cut in half), so the
same state always gives the same text and a repeated run is answered by the cache.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

from questfoundry.book.model import Choice, Section, Topology
from questfoundry.contracts.brief import Brief, CanonEntry, StyleGuide
from questfoundry.gateway.admission import CHARS_PER_TOKEN

#: the background is wrapped in these, so a model (and a test) sees where it ends
OPEN, CLOSE = "<context>", "</context>"
#: ``studio.context_tokens`` when config.yml does not say
DEFAULT_CONTEXT_TOKENS = 2000
#: no one line of the brief or the style guide takes more than this share of the budget
LINE_SHARE = 4
_WORD = re.compile(r"[^\W\d_]{4,}")


@dataclass(frozen=True)
class Knowledge:
    """What the state holds that prompts draw on: the brief, the style guide, canon entries (by
    id, in id order) and the topology (None before one is drafted)."""

    brief: Brief
    style: StyleGuide | None = None
    canon: tuple[tuple[str, CanonEntry], ...] = ()
    topology: Topology | None = None

    @cached_property
    def links(self) -> Links | None:
        """The topology's links, worked out once for every prompt of the step."""
        return None if self.topology is None else Links.of(self.topology)


@dataclass(frozen=True)
class Links:
    """A topology read both ways: the sections leading into each, and each one's distance from
    the start. Worked out once per topology, so a book of a thousand sections costs each prompt
    a lookup rather than a walk through the whole book."""

    topology: Topology
    into: Mapping[str, tuple[Section, ...]]
    steps: Mapping[str, int]

    @classmethod
    def of(cls, topology: Topology) -> Links:
        into: dict[str, list[Section]] = {}
        for section in topology.sections:
            for target in dict.fromkeys(c.target for c in section.choices):
                into.setdefault(target, []).append(section)
        steps, frontier = {topology.start: 0}, [topology.start]
        while frontier:  # breadth first: the first time a section is reached is the shortest
            following = []
            for ident in frontier:
                for choice in _choices_of(topology, ident):
                    if choice.target not in steps:
                        steps[choice.target] = steps[ident] + 1
                        following.append(choice.target)
            frontier = following
        return cls(topology, {k: tuple(v) for k, v in into.items()}, steps)

    def leading_in(self, section: Section) -> tuple[Section, ...]:
        """The sections with a choice leading to ``section``, in reading order."""
        return self.into.get(section.id, ())

    def leading_out(self, section: Section) -> list[Section]:
        """The sections ``section``'s choices lead to, in the choices' order."""
        return [self.topology.section(c.target) for c in section.choices]


def background(knowledge: Knowledge, tokens: int, section: str | None = None) -> str:
    """The context block for a prompt about the book, or about the section of id ``section``;
    empty when ``tokens`` leaves no room. Never longer than ``tokens`` (estimated).

    The book's block draws on nothing a run makes of the book itself (only the brief, the style
    guide and canon), so drafting the book again asks what the first draft asked, and the cache
    answers it.
    """
    block = _Block(tokens * CHARS_PER_TOKEN)
    links = knowledge.links
    found = _section(knowledge.topology, section)
    title = links.topology.title if found is not None and links is not None else None
    block.group("The book's brief, from its author:", _brief(knowledge.brief, title), cut=True)
    if found is not None and links is not None:
        block.group("Where this section stands:", [_place(links, found)], cut=True)
        block.group(
            "Sections leading into it (one was just read):", _summaries(links.leading_in(found))
        )
        block.group("Sections it leads to:", _summaries(links.leading_out(found)))
    if knowledge.style is not None:
        block.group(
            "Style guide:", [knowledge.style.guide] if knowledge.style.guide else [], cut=True
        )
        block.group(
            "Style rules:" if not knowledge.style.guide else "",
            [f"- {r}" for r in knowledge.style.rules],
        )
    entries = ranked(knowledge.canon, links, found, knowledge.brief)
    block.group(
        "Established facts (canon):",
        [f"- {e.name}: {e.fact}" if e.name else f"- {e.fact}" for e in entries],
    )
    return block.text()


def look(brief: Brief) -> str:
    """One line of the brief for an image prompt: genre, tone and audience."""
    parts = [part for part in (brief.genre, brief.tone) if part]
    if brief.audience:
        parts.append(f"for {brief.audience}")
    return ("Style: " + "; ".join(parts) + ".") if parts else ""


def ranked(
    canon: Sequence[tuple[str, CanonEntry]],
    links: Links | None,
    section: Section | None,
    brief: Brief,
) -> list[CanonEntry]:
    """Canon entries, most relevant first (see the module docstring); ties keep id order."""
    if section is None or links is None:
        near: set[str] = set()
        words = _words(brief.premise, brief.genre)
    else:
        neighbours = [*links.leading_in(section), *links.leading_out(section)]
        near = {s.id for s in neighbours}
        words = _words(section.title, section.summary, *(s.title for s in neighbours))

    def score(item: tuple[int, tuple[str, CanonEntry]]) -> tuple[int, int, int, int]:
        index, (_, entry) = item
        here = section is not None and section.id in entry.sections
        close = len(near & set(entry.sections))
        shared = len(words & _words(entry.name, *entry.tags, entry.fact))
        return (-int(here), -close, -shared, index)

    return [entry for _, (_, entry) in sorted(enumerate(canon), key=score)]


# ---------------------------------------------------------------------------- pieces


def _section(topology: Topology | None, ident: str | None) -> Section | None:
    if topology is None or ident is None:
        return None
    try:
        return topology.section(ident)
    except KeyError:
        return None


def _brief(brief: Brief, title: str | None) -> list[str]:
    lines = [f"- {label}: {value}" for label, value in brief.shown().items()]
    return [f"- Title: {title}", *lines] if title else lines


def _choices_of(topology: Topology, ident: str) -> tuple[Choice, ...]:
    """The choices of the section of id ``ident``; none when the book has no such section."""
    try:
        return topology.section(ident).choices
    except KeyError:
        return ()


def _place(links: Links, section: Section) -> str:
    total = len(links.topology.sections)
    where = f"Section {section.number} of {total}, {section.title!r}"
    if section.id == links.topology.start:
        where += ", where the reader starts"
    else:
        steps = links.steps.get(section.id)
        if steps is not None:
            where += f", {steps} choice{'s' if steps != 1 else ''} from the start"
    ins, outs = len(links.leading_in(section)), len(section.choices)
    where += f"; {ins} section{'s' if ins != 1 else ''} lead{'' if ins != 1 else 's'} into it"
    where += (
        "; it is an ending."
        if not outs
        else f"; it offers {outs} choice{'s' if outs != 1 else ''}."
    )
    return where


def _summaries(sections: Iterable[Section]) -> list[str]:
    return [f"- {s.number} {s.title!r}: {s.summary}" for s in sections]


def _words(*texts: str) -> set[str]:
    return {word.lower() for text in texts for word in _WORD.findall(text)}


class _Block:
    """Lines added while they fit in ``chars``, wrapped in :data:`OPEN` and :data:`CLOSE`."""

    def __init__(self, chars: int) -> None:
        self.chars = chars
        self.lines: list[str] = []
        self.used = len(OPEN) + len(CLOSE) + 1  # the two tags and the newline after OPEN

    def group(self, heading: str, lines: Sequence[str], *, cut: bool = False) -> None:
        """``heading`` then as many of ``lines`` as fit whole (with ``cut``, the last that does
        not fit is cut short instead); nothing when not even the heading and one line fit."""
        shown = [heading] if heading else []
        for given in lines:
            line = _shortened(given, self.chars // LINE_SHARE) if cut else given
            room = self.chars - self.used - sum(len(x) + 1 for x in shown) - 1
            if len(line) > room:
                if not cut or room < 20:
                    break
                line = _shortened(line, room)
            shown.append(line)
        if len(shown) > (1 if heading else 0):
            self.lines += shown
            self.used += sum(len(x) + 1 for x in shown)

    def text(self) -> str:
        if not self.lines:
            return ""
        return "\n".join((OPEN, *self.lines, CLOSE))


def _shortened(line: str, chars: int) -> str:
    return line if len(line) <= chars else line[: max(chars - 1, 0)].rstrip() + "…"
