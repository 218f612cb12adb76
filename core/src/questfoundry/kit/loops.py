"""What loops share: the book's topology in the state, and work done once per section.

Keys: ``book/topology`` and ``book/sections/<id>`` (made by ``story_spark``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from questfoundry.book.model import Section, Topology
from questfoundry.contracts.studio import StepContext

TOPOLOGY = "book/topology"
SECTIONS = "book/sections/"
#: work on one section: (topology, section, its document under ``reads``) → what to save
Make = Callable[[Topology, Section, dict[str, Any]], Awaitable[Mapping[str, Any]]]


async def load_topology(context: StepContext) -> Topology:
    """The book's topology from state; fails the step when no story_spark made one."""
    document = await context.get(TOPOLOGY)
    if document is None:
        raise context.fail("the book has no topology yet: run story_spark first")
    return Topology.from_dict(document)


async def each_section(
    context: StepContext, make: Make, *, writes: str, reads: str | None = None, missing: str = ""
) -> None:
    """``make`` for every section, concurrently, saving each answer at ``writes + id``.

    A section this run already saved (before an interruption) is skipped. With ``reads``, each
    section's document at ``reads + id`` is handed to ``make`` (without one the step fails,
    saying the section has ``missing``); otherwise ``make`` gets an empty one.
    """
    topology = await load_topology(context)

    async def one(section: Section) -> None:
        key = writes + section.id
        if await context.made(key) is not None:
            return
        earlier = {} if reads is None else await context.get(reads + section.id)
        if earlier is None:
            raise context.fail(f"section {section.id!r} has {missing}")
        made = await make(topology, section, earlier)
        await context.save(key, {"id": section.id, **made})

    await context.each(topology.sections, one)
