"""What loops share: the book's topology in the state, work done once per section, and the
sections the author wrote by hand.

Keys: ``book/topology`` and ``book/sections/<id>`` (made by ``story_spark``).

A section's document whose :data:`AUTHOR` is true holds prose the author wrote — through
``questfoundry book edit`` or ``book import`` (:func:`take_authorship`). No loop rewrites it and
``questfoundry revise`` refuses it unless the run is told ``--force`` (``context.force``): a
loop that writes sections' prose leaves alone the ids :func:`spared` gives it (or passes
``spare_authored=True`` to :func:`each_section`), and the report tells the author which.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from questfoundry.book.model import Section, Topology
from questfoundry.contracts.protocols import StateStore
from questfoundry.contracts.studio import RUN, StepContext

TOPOLOGY = "book/topology"
SECTIONS = "book/sections/"
#: a section document's key saying the author wrote its prose
AUTHOR = "author"
#: work on one section: (topology, section, its document under ``reads``) → what to save
Make = Callable[[Topology, Section, dict[str, Any]], Awaitable[Mapping[str, Any]]]


async def load_topology(context: StepContext) -> Topology:
    """The book's topology from state; fails the step when no story_spark made one."""
    document = await context.get(TOPOLOGY)
    if document is None:
        raise context.fail("the book has no topology yet: run story_spark first")
    return Topology.from_dict(document)


async def each_section(
    context: StepContext,
    make: Make,
    *,
    writes: str,
    reads: str | None = None,
    missing: str = "",
    spare_authored: bool = False,
) -> None:
    """``make`` for every section, concurrently, saving each answer at ``writes + id``.

    A section this run already saved (before an interruption) is skipped. With ``reads``, each
    section's document at ``reads + id`` is handed to ``make`` (without one the step fails,
    saying the section has ``missing``); otherwise ``make`` gets an empty one. With
    ``spare_authored``, the sections whose prose the author wrote are skipped too, unless the
    run was told ``--force`` (:func:`spared`).
    """
    topology = await load_topology(context)
    spare = await spared(context) if spare_authored else frozenset()

    async def one(section: Section) -> None:
        key = writes + section.id
        if section.id in spare or await context.made(key) is not None:
            return
        earlier = {} if reads is None else await context.get(reads + section.id)
        if earlier is None:
            raise context.fail(f"section {section.id!r} has {missing}")
        made = await make(topology, section, earlier)
        await context.save(key, {"id": section.id, **made})

    await context.each(topology.sections, one)


# ---------------------------------------------------------------------------- the author's own


def authored(document: Mapping[str, Any] | None) -> bool:
    """Whether ``document`` holds prose the author wrote by hand."""
    return bool(document and document.get(AUTHOR) is True)


async def spared(context: StepContext) -> frozenset[str]:
    """The ids of the sections the author wrote, which this run leaves alone: none when the run
    was told ``--force``. The report says which were kept (or, forced, rewritten)."""
    keys = await context.keys(SECTIONS)
    # asked all at once, the reads share the state queue's trips instead of one trip each
    documents = await asyncio.gather(*(context.get(key) for key in keys))
    pairs = zip(keys, documents, strict=True)
    ids = [key[len(SECTIONS) :] for key, document in pairs if authored(document)]
    if not ids:
        return frozenset()
    shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
    if context.force:
        context.note(f"--force: the sections the author wrote are rewritten too ({shown})")
        return frozenset()
    context.note(f"kept {len(ids)} sections the author wrote ({shown}); --force rewrites them")
    return frozenset(ids)


def take_authorship(state: StateStore, prose: Mapping[str, str]) -> list[str]:
    """Mark as the author's the sections of ``prose`` (id → text) whose prose differs from what
    the state holds, saving the new text; the ids of those it changed, in order.

    A section whose text is what the state already holds (spacing aside) is left as it is, not
    marked, so an export imported back unchanged takes nothing from the studio.
    """
    changed = []
    for ident, text in prose.items():
        key = SECTIONS + ident
        held = state.get(key) or {}
        if _words(held.get("prose")) == _words(text):
            continue
        kept = {k: v for k, v in held.items() if k not in ("revised", "notes", RUN)}
        written = {"id": ident, "prose": text.strip(), "placeholder": False, AUTHOR: True}
        state.set(key, {**kept, **written})
        changed.append(ident)
    return changed


def _words(text: Any) -> list[str]:
    return text.split() if isinstance(text, str) else []
