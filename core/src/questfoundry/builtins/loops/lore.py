"""What the three lore loops share: their state keys and how a model's answer names sections.

``hook_harvest`` fills :data:`HOOKS`, ``lore_deepening`` turns its kept hooks into canon
(``book/canon/<id>``, the shape every prompt's background reads) and a :data:`TIMELINE`, and
``codex_expansion`` writes player-safe entries from the canon (``book/codex/<id>``, the kit's
``CODEX``, which the binder prints). Their working documents (drafts and verdicts a resumed run
need not ask for again) live under :data:`WORK`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from questfoundry.kit import Topology

#: the threads each section leaves open (``book/hooks/<section id>``) and all of them triaged
FOUND = "book/hooks/"
HOOKS = "book/hooks"
#: the canon's events in the order they happened
TIMELINE = "book/timeline"
#: drafts and verdicts of the lore loops, kept so an interrupted run does not ask again
WORK = "book/lore/"
#: a note names at most this many examples of one problem
EXAMPLES = 3


def section_refs(topology: Topology, refs: Iterable[Any]) -> tuple[list[str], list[str]]:
    """The ids of the sections ``refs`` name (an id, or a number as text), in order and once
    each, and the refs that name none."""
    found: list[str] = []
    unknown: list[str] = []
    for ref in refs:
        text = str(ref).strip().lstrip("#§").strip()
        try:
            ident = topology.section(text).id
        except KeyError:
            unknown.append(str(ref))
            continue
        if ident not in found:
            found.append(ident)
    return found, unknown


def numbers(topology: Topology, ids: Iterable[str]) -> str:
    """The sections of ``ids`` as a reader knows them: ``3, 5``."""
    return ", ".join(str(topology.section(ident).number) for ident in ids) or "none"


def flat(text: Any) -> str:
    """``text`` on one line, trimmed."""
    return " ".join(str(text).split())


def noted(what: str, examples: Sequence[str]) -> list[str]:
    """A note of ``what`` with a few ``examples``; none when there are none."""
    if not examples:
        return []
    shown = ", ".join(examples[:EXAMPLES])
    more = f" and {len(examples) - EXAMPLES} more" if len(examples) > EXAMPLES else ""
    return [f"{what} ({len(examples)}): {shown}{more}"]
