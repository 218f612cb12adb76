"""``story_spark``: the plotwright drafts a topology, the scene smith writes each section, the
gatekeeper reviews each and may send it back once.

State: ``book/topology``, ``book/sections/<id>``, ``book/reviews/<id>``.
"""

from __future__ import annotations

from typing import Any

from questfoundry.kit import (
    RUN,
    SECTIONS,
    TEXT,
    TOPOLOGY,
    LoopSpec,
    Section,
    Step,
    StepContext,
    Topology,
    each_section,
    obj,
    repair,
    topology_schema,
)

REVIEWS = "book/reviews/"
#: prose written when the scene smith gives none even when asked again
PLACEHOLDER = "(This section has no prose yet: the scene smith returned none.)"
WRITING = "Write vivid, concise prose of 120 to 250 words. Answer with the prose only."
REVIEW_SCHEMA = obj(verdict={"type": "string", "enum": ["pass", "revise"]}, notes=TEXT)


async def draft_topology(context: StepContext) -> None:
    if await context.made(TOPOLOGY) is not None:
        return
    count = context.sections
    prompt = (
        f"Draft the topology of a branching gamebook of exactly {count} sections. Give the book "
        "a title; give each section a short unique id (lowercase letters, digits, - or _), a "
        "title, a one-paragraph summary and up to 3 choices, each naming the id of the section "
        "it leads to. Name the id of the section the reader starts in. Every section must be "
        "reachable from the start; sections without choices are endings."
    )
    topology: Topology = await context.structured(
        prompt, name="topology", schema=topology_schema(count), fix=repair
    )
    await context.save(TOPOLOGY, topology.to_dict())
    await _forget_other_sections(context, topology)


async def _forget_other_sections(context: StepContext, topology: Topology) -> None:
    """Delete sections and reviews of ids the new topology does not have."""
    for prefix in (SECTIONS, REVIEWS):
        for key in await context.keys(prefix):
            if key[len(prefix) :] not in topology.ids:
                await context.delete(key)


def _brief(topology: Topology, section: Section) -> str:
    choices = "\n".join(
        f"- {c.text} (leads to: {topology.section(c.target).title})" for c in section.choices
    )
    ending = choices or "- none: this section is an ending"
    return (
        f"Book: {topology.title}\nSection: {section.title}\nSummary: {section.summary}\n"
        f"The reader's choices at its end:\n{ending}"
    )


def _prose(text: str) -> tuple[str, list[str]]:
    prose = text.strip()
    return (prose, []) if prose else (PLACEHOLDER, ["the prose was empty (placeholder written)"])


async def write_sections(context: StepContext) -> None:
    async def write(topology: Topology, section: Section, _: dict[str, Any]) -> dict[str, Any]:
        brief = _brief(topology, section)
        prompt = f"Write the prose of this section, in the second person.\n\n{brief}"
        return _section(await context.text(prompt, fix=_prose))

    await each_section(context, write, writes=SECTIONS)


async def review_sections(context: StepContext) -> None:
    async def review(
        topology: Topology, section: Section, written: dict[str, Any]
    ) -> dict[str, Any]:
        if written.get("revised") and written.get(RUN) == context.run_id:
            return {"verdict": "revise", "notes": written["notes"]}  # rewritten, then stopped
        prompt = (
            "Review this section against its brief. Answer pass, or revise with notes saying "
            f"what to change.\n\n{_brief(topology, section)}\n\nProse:\n{written['prose']}"
        )
        verdict: dict[str, Any] = await context.structured(
            prompt, name="review", schema=REVIEW_SCHEMA
        )
        if verdict["verdict"] == "revise":
            await _revise(context, topology, section, written["prose"], verdict["notes"])
        return verdict

    await each_section(
        context, review, writes=REVIEWS, reads=SECTIONS, missing="no prose to review"
    )


async def _revise(
    context: StepContext, topology: Topology, section: Section, prose: str, notes: str
) -> None:
    """The section sent back once: the scene smith rewrites it from the gatekeeper's notes."""
    prompt = (
        "The gatekeeper sent this section back. Rewrite its prose following the notes.\n\n"
        f"{_brief(topology, section)}\n\nProse:\n{prose}\n\nNotes:\n{notes.strip() or '(none)'}"
    )
    rewritten = await context.text(prompt, role="scene_smith", fix=_prose, instructions=WRITING)
    rewrite = {"id": section.id, **_section(rewritten, revised=True, notes=notes)}
    await context.save(SECTIONS + section.id, rewrite)


def _section(prose: str, **more: Any) -> dict[str, Any]:
    return {"prose": prose, "placeholder": prose == PLACEHOLDER, **more}


STORY_SPARK = LoopSpec(
    "story_spark",
    ("plotwright", "scene_smith", "gatekeeper"),
    "seed new topology",
    (
        Step(
            "draft_topology",
            "plotwright",
            "Answer with JSON only, matching the schema you are given.",
            draft_topology,
            writes=("topology",),
        ),
        Step(
            "write_sections",
            "scene_smith",
            WRITING,
            write_sections,
            reads=("topology",),
            writes=("sections",),
        ),
        Step(
            "review_sections",
            "gatekeeper",
            "Hold each section to its brief: coherent, consistent, leading to its choices.",
            review_sections,
            reads=("topology", "sections"),
            writes=("reviews",),
        ),
    ),
)
