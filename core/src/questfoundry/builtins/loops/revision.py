"""``revision``: one section rewritten from the author's notes (``questfoundry revise 12 --notes``).

The scene smith rewrites the section's prose following the notes; the gatekeeper reviews the
result and may send it back once, as in ``story_spark``. Only that section's prose and review
change. A section the author wrote by hand is refused unless the run is told ``--force``.

Options: ``--section`` (its number or id) and ``--notes`` (what to change), both required.
"""

from __future__ import annotations

from typing import Any

from questfoundry.builtins.loops.story_spark import REVIEW_SCHEMA, REVIEWS, WRITING
from questfoundry.kit import (
    SECTIONS,
    LoopOption,
    LoopSpec,
    Section,
    Step,
    StepContext,
    authored,
    load_topology,
)

#: what the step saves while the run lasts: the rewrite awaiting review
PENDING = "book/revisions/"
REVIEWING = "Hold the rewritten section to its brief and to the author's notes."


async def _section(context: StepContext) -> tuple[Section, dict[str, Any]]:
    """The section the run revises and its document; the step fails in one line otherwise."""
    topology = await load_topology(context)
    try:
        section = topology.section(context.options["section"])
    except KeyError as exc:
        raise context.fail(str(exc.args[0])) from None
    document = await context.get(SECTIONS + section.id)
    if document is None:
        raise context.fail(f"section {section.number} has no prose yet: run story_spark first")
    return section, document


def _task(section: Section, prose: str) -> str:
    choices = "\n".join(f"- {c.text}" for c in section.choices) or "- none: it is an ending"
    return (
        f"Section {section.number}, {section.title!r}: {section.summary}\n"
        f"The reader's choices at its end:\n{choices}\n\nIts prose now:\n{prose}"
    )


def _prose(text: str) -> tuple[str, list[str]]:
    prose = text.strip()
    return prose, [] if prose else ["the rewrite was empty"]


async def rewrite(context: StepContext) -> None:
    section, document = await _section(context)
    if await context.made(PENDING + section.id) is not None:
        return
    if authored(document) and not context.force:
        raise context.fail(
            f"section {section.number} is the author's own (edited by hand): "
            "revise it with --force to have the scene smith rewrite it"
        )
    notes = context.options["notes"]
    prose = await rewritten(context, section, document["prose"], notes)
    if not prose:
        raise context.fail(
            f"the scene smith returned no prose; section {section.number} is as it was"
        )
    await context.save(PENDING + section.id, {"prose": prose, "notes": notes})


async def review(context: StepContext) -> None:
    section, _ = await _section(context)
    pending = await context.get(PENDING + section.id)
    if pending is None:
        raise context.fail(f"section {section.number} has no rewrite to review")
    await reviewed(context, section, pending["prose"], pending["notes"])
    await context.delete(PENDING + section.id)


async def unrevised(context: StepContext, section: Section) -> dict[str, Any] | None:
    """``section``'s document for a loop to rewrite, None when this run already saved it (before
    an interruption); the step fails when the section has no prose yet."""
    key = SECTIONS + section.id
    if await context.made(key) is not None:
        return None
    written = await context.get(key)
    if written is None:
        raise context.fail(f"section {section.number} has no prose yet")
    return written


async def rewritten(context: StepContext, section: Section, prose: str, notes: str) -> str:
    """The scene smith's rewrite of ``section`` (its prose now ``prose``) following the
    author's ``notes``; empty when it gave none. Any loop revising a section from notes asks
    this way (``narration_dry_run --apply`` does)."""
    prompt = (
        "The author asks for this section to be revised. Rewrite its prose following the "
        "author's notes, keeping what the notes do not ask to change.\n\n"
        f"{_task(section, prose)}\n\nThe author's notes:\n{notes}"
    )
    words = len(prose.split()) or None
    return await context.text(
        prompt,
        role="scene_smith",
        instructions=WRITING,
        section=section.id,
        words=words,
        fix=_prose,
    )


async def reviewed(context: StepContext, section: Section, prose: str, notes: str) -> None:
    """The gatekeeper reviews a rewrite against its brief and ``notes`` and may send it back
    to the scene smith once; the section's prose and review are saved. Asked by a step of the
    gatekeeper's, whose instructions are :data:`REVIEWING`."""
    prompt = (
        "Review this rewritten section against its brief and the author's notes. Answer pass, "
        f"or revise with notes saying what to change.\n\n{_task(section, prose)}\n\n"
        f"The author's notes:\n{notes}"
    )
    verdict: dict[str, Any] = await context.structured(
        prompt, name="review", schema=REVIEW_SCHEMA, section=section.id, role="gatekeeper"
    )
    if verdict["verdict"] == "revise":
        again = (
            "The gatekeeper sent this rewrite back. Rewrite its prose following its notes and "
            f"the author's.\n\n{_task(section, prose)}\n\nThe author's notes:\n"
            f"{notes}\n\nThe gatekeeper's notes:\n{verdict['notes'].strip() or '(none)'}"
        )
        prose = (
            await context.text(
                again,
                role="scene_smith",
                instructions=WRITING,
                section=section.id,
                words=len(prose.split()),
                fix=_prose,
            )
            or prose
        )  # an empty second rewrite keeps the first
    written = {"id": section.id, "prose": prose, "placeholder": False}
    await context.save(SECTIONS + section.id, {**written, "notes": notes})
    await context.save(REVIEWS + section.id, {"id": section.id, **verdict})


REVISION = LoopSpec(
    "revision",
    ("scene_smith", "gatekeeper"),
    "rewrite one section from the author's notes",
    (
        Step(
            "rewrite",
            "scene_smith",
            WRITING,
            rewrite,
            reads=("topology", "sections"),
            writes=("revision",),
        ),
        Step("review", "gatekeeper", REVIEWING, review, reads=("revision",), writes=("reviews",)),
    ),
    options=(
        LoopOption("section", "The section to revise: its number or id.", required=True),
        LoopOption("notes", "What to change, in the author's words.", required=True),
    ),
)
