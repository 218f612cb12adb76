"""The codex as the book shows it: entries with a depth, and each term's first mention linked.

A section's depth is the fewest choices a reader makes from the start to reach it. An entry's
depth says how far a reader must be before it may be shown: a section links the first mention of
a term only when the entry's depth is no greater than its own, so no link leads a reader to what
only later sections reveal. Every file of the book links the same words (:func:`linked`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from questfoundry.book.graph import Graph
from questfoundry.book.model import Topology, valid_id
from questfoundry.contracts.errors import StateError

#: a run of a paragraph: its text, and the entry it links to (None: plain text)
Span = tuple[str, "CodexEntry | None"]


@dataclass(frozen=True)
class CodexEntry:
    """A player-safe entry: its id (a valid section-style id), the term it explains, its text,
    and the depth from which sections may link to it."""

    id: str
    term: str
    text: str
    depth: int = 0

    @property
    def anchor(self) -> str:
        return f"codex-{self.id}"

    @classmethod
    def from_dict(cls, ident: str, data: Mapping[str, Any]) -> CodexEntry:
        """The entry a state document holds; :class:`StateError` (one line) when it is not one."""
        depth = data.get("depth", 0)
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
            raise StateError(f"the codex entry {ident!r} has no valid depth")
        term, text = data.get("term"), data.get("text")
        if not isinstance(term, str) or not isinstance(text, str) or not term.strip():
            raise StateError(f"the codex entry {ident!r} needs a term and a text")
        return cls(valid_id(ident, "codex entry id"), " ".join(term.split()), text.strip(), depth)


def depths(topology: Topology) -> dict[str, int]:
    """Each section's id → its depth; sections no path from the start reaches are left out."""
    by_number = {s.number: s.id for s in topology.sections}
    return {by_number[n]: d for n, d in Graph.of(topology).distances().items()}


def linked(
    paragraphs: Sequence[str], entries: Sequence[CodexEntry], depth: int
) -> tuple[tuple[Span, ...], ...]:
    """``paragraphs`` cut into spans, the first mention of each term (any case, a whole word or
    phrase; the longest term where two overlap) linked to its entry when the entry's depth is at
    most ``depth``."""
    shown = {e.term.lower(): e for e in sorted(entries, key=lambda e: e.id) if e.depth <= depth}
    if not shown:
        return tuple(((p, None),) for p in paragraphs)
    terms = sorted(shown, key=len, reverse=True)
    pattern = re.compile(r"(?<!\w)(" + "|".join(map(re.escape, terms)) + r")(?!\w)", re.I)
    done: set[str] = set()
    result = []
    for paragraph in paragraphs:
        spans: list[Span] = []
        at = 0
        for match in pattern.finditer(paragraph):
            entry = shown.get(match.group(1).lower())
            if entry is None or entry.id in done:
                continue
            done.add(entry.id)
            if match.start() > at:
                spans.append((paragraph[at : match.start()], None))
            spans.append((match.group(1), entry))
            at = match.end()
        if at < len(paragraph) or not spans:
            spans.append((paragraph[at:], None))
        result.append(tuple(spans))
    return tuple(result)
