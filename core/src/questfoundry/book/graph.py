"""The book as a graph: its figures, and the rules every book meets.

The rules:

- every section is reachable from the start;
- at least :func:`endings_wanted` endings (2; 1 in a book of 1 or 2 sections);
- at least a third of the sections that are not endings offer two or more choices (from 3
  sections up);
- from every section a reader can still reach an ending: no dead end (a section without
  choices that is not an ending) and no region entered but never left toward an ending;
- no broken link (a choice leading to no section, or back to its own section).

The same :class:`Graph` serves a stored :class:`~questfoundry.book.model.Topology` (``book
check``, the run reports) and the studio's repair, which works on section numbers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from questfoundry.book.model import Topology

#: the smallest share of non-endings that offer two or more choices
MIN_BRANCHING = Fraction(1, 3)
#: figures list at most this many sections of one kind in their text
SHOWN = 8


def endings_wanted(sections: int) -> int:
    """The fewest endings a book of ``sections`` sections has: 2, or 1 below 3 sections."""
    return 2 if sections >= 3 else 1


@dataclass(frozen=True)
class Graph:
    """Sections by number: where each one's choices lead, which are endings, where one starts.

    ``links`` holds every section (an empty tuple: no choices); ``endings`` the sections
    without choices that are endings (the others without choices are dead ends).
    """

    start: int
    links: Mapping[int, tuple[int, ...]]
    endings: frozenset[int]

    @classmethod
    def of(cls, topology: Topology) -> Graph:
        number = {s.id: s.number for s in topology.sections}
        links = {
            s.number: tuple(number.get(c.target, 0) for c in s.choices) for s in topology.sections
        }
        endings = frozenset(s.number for s in topology.sections if s.ending and not s.choices)
        return cls(number.get(topology.start, 0), links, endings)

    def distances(self) -> dict[int, int]:
        """Each section reachable from the start → the fewest choices that lead there."""
        if self.start not in self.links:
            return {}
        seen, todo = {self.start: 0}, deque([self.start])
        while todo:
            here = todo.popleft()
            for there in self.links[here]:
                if there in self.links and there not in seen:
                    seen[there] = seen[here] + 1
                    todo.append(there)
        return seen

    def escaping(self) -> set[int]:
        """The sections from which some path leads to an ending (the endings included)."""
        before: dict[int, list[int]] = {n: [] for n in self.links}
        for here, targets in self.links.items():
            for there in targets:
                if there in before:
                    before[there].append(here)
        seen, todo = set(self.endings), list(self.endings)
        while todo:
            for earlier in before[todo.pop()]:
                if earlier not in seen:
                    seen.add(earlier)
                    todo.append(earlier)
        return seen

    def figures(self) -> Figures:
        distance = self.distances()
        escaping = self.escaping()
        dead = sorted(n for n, t in self.links.items() if not t and n not in self.endings)
        ended = [distance[n] for n in self.endings if n in distance]
        broken = sorted(
            n
            for n, targets in self.links.items()
            if any(t == n or t not in self.links for t in targets)
        )
        return Figures(
            sections=len(self.links),
            endings=len(self.endings),
            branching=sum(len(set(t)) >= 2 for t in self.links.values()),
            shortest=min(ended, default=None),
            longest=max(ended, default=None),
            unreachable=tuple(sorted(set(self.links) - set(distance))),
            dead_ends=tuple(dead),
            trapped=tuple(sorted(set(self.links) - escaping - set(dead))),
            broken=tuple(broken),
        )


@dataclass(frozen=True)
class Figures:
    """What a book's graph looks like, and which rules it breaks (:meth:`problems`).

    ``branching`` counts sections offering two or more choices; ``shortest`` and ``longest``
    are the fewest choices from the start to the nearest and to the farthest ending (the
    longest shortest path), None when no ending is reachable. ``trapped`` are sections from
    which no ending can be reached (not counting ``dead_ends``); ``broken`` sections have a
    choice leading to no section or back to themselves. Sections are named by number.
    """

    sections: int
    endings: int
    branching: int
    shortest: int | None
    longest: int | None
    unreachable: tuple[int, ...]
    dead_ends: tuple[int, ...]
    trapped: tuple[int, ...]
    broken: tuple[int, ...]

    @property
    def choosing(self) -> int:
        """Sections that are not endings."""
        return self.sections - self.endings

    @property
    def share(self) -> Fraction:
        """The share of non-endings offering two or more choices (1 when every one is an
        ending)."""
        return Fraction(self.branching, self.choosing) if self.choosing else Fraction(1)

    @property
    def branches_enough(self) -> bool:
        """Whether at least a third of the non-endings branch (always, below 3 sections)."""
        return self.sections < 3 or self.share >= MIN_BRANCHING

    def problems(self) -> list[str]:
        """The rules the graph breaks, one line each; empty when it meets them all."""
        wanted = endings_wanted(self.sections)
        problems = [
            f"{what} ({len(found)}): {_listed(found)}"
            for what, found in (
                ("sections no path from the start reaches", self.unreachable),
                ("dead ends: sections without choices that are not endings", self.dead_ends),
                ("sections from which no ending can be reached", self.trapped),
                ("sections with a choice leading nowhere or back to themselves", self.broken),
            )
            if found
        ]
        if self.sections and self.endings < wanted:
            problems.append(f"{self.endings} endings: a book of {self.sections} has {wanted}+")
        if not self.branches_enough:
            problems.append(
                f"{self.branching} of {self.choosing} sections that are not endings offer two "
                "or more choices: at least a third should"
            )
        return problems

    def as_json(self) -> dict[str, Any]:
        return {
            "sections": self.sections,
            "endings": self.endings,
            "branching": self.branching,
            "branching_share": round(float(self.share), 3),
            "shortest_path_to_an_ending": self.shortest,
            "longest_shortest_path_to_an_ending": self.longest,
            "unreachable": list(self.unreachable),
            "dead_ends": list(self.dead_ends),
            "trapped": list(self.trapped),
            "broken": list(self.broken),
            "meets_the_rules": not self.problems(),
            "problems": self.problems(),
        }

    def lines(self) -> list[str]:
        """The figures as a reader of a report wants them: a few short lines."""
        paths = (
            f"{self.shortest} to {self.longest} choices"
            if self.shortest is not None
            else "no ending is reachable"
        )
        return [
            f"{self.sections} sections, {self.endings} endings, "
            f"{self.branching} of {self.choosing} others branch ({float(self.share):.0%})",
            f"from the start to an ending: {paths} (shortest path, nearest to farthest ending)",
            f"unreachable: {_listed(self.unreachable)}; dead ends: {_listed(self.dead_ends)}; "
            f"trapped: {_listed(self.trapped)}; broken links: {_listed(self.broken)}",
        ]


def figures(topology: Topology) -> Figures:
    """The figures of ``topology``'s graph."""
    return Graph.of(topology).figures()


def _listed(numbers: Sequence[int]) -> str:
    if not numbers:
        return "none"
    shown = ", ".join(str(n) for n in numbers[:SHOWN])
    return shown + (f" and {len(numbers) - SHOWN} more" if len(numbers) > SHOWN else "")
