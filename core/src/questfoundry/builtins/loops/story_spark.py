"""``story_spark``: the plotwright drafts the book's shape, the scene smith writes each section,
the gatekeeper reviews each and may send it back once.

The studio owns the shape (:class:`~questfoundry.kit.Shape`): it numbers the sections and lays
out where each one's choices lead; the plotwright fills the slots. A book too large for one reply
within the plotwright's ``max_tokens`` is drafted in parts: an outline of acts first, then each
part's sections. Whatever it answers, the book meets the rules of a branching gamebook.

State: ``book/topology``, ``book/sections/<id>``, ``book/reviews/<id>``; while a book in parts is
drafted, ``book/drafts/outline`` and ``book/drafts/part-<n>`` (so a resumed run asks only for
the parts it lacks; deleted once the topology is saved).
"""

from __future__ import annotations

from typing import Any

from questfoundry.kit import (
    RUN,
    SECTIONS,
    TEXT,
    TOPOLOGY,
    LoopOption,
    LoopSpec,
    Part,
    Section,
    Shape,
    Step,
    StepContext,
    Topology,
    draft_schema,
    each_section,
    figures,
    object_schema,
    outline_schema,
)

REVIEWS = "book/reviews/"
DRAFTS = "book/drafts/"
OUTLINE = DRAFTS + "outline"
#: prose written when the scene smith gives none even when asked again
PLACEHOLDER = "(This section has no prose yet: the scene smith returned none.)"
WRITING = "Write vivid, concise prose of the length asked for. Answer with the prose only."
#: how long a section's prose runs when the run does not say (``--words``)
WORDS = 200
#: how long an invented premise is asked to run, and the most of it kept (in characters)
PREMISE_WORDS = 50
PREMISE_CHARS = 1000
REVIEW_SCHEMA = object_schema(verdict={"type": "string", "enum": ["pass", "revise"]}, notes=TEXT)
FILLING = (
    "The studio has numbered the sections and laid out where each one's choices lead:\n\n"
    "{slots}\n\n"
    "For each of these sections, in order, give: a short title; a summary of one or two "
    "sentences saying what happens there; `ending`, true for an ending (a section without "
    "choices) and false otherwise; and its choices, each a few words the reader picks and the "
    "number of the section it leads to, as laid out. Make the choices real alternatives."
)


async def draft_topology(context: StepContext) -> None:
    made = await context.made(TOPOLOGY)
    if made is None:
        if not context.brief.premise:
            await _invent_premise(context)
        topology = await _draft(context, Shape.of(context.sections))
        await context.save(TOPOLOGY, topology.to_dict())
        await _forget_other_sections(context, topology)
    else:
        topology = Topology.from_dict(made)
    for key in await context.keys(DRAFTS):
        await context.delete(key)
    context.note("the book: " + "; ".join(figures(topology).lines()))


async def _invent_premise(context: StepContext) -> None:
    """The author gave no premise: the plotwright invents one, saved in the brief (so every
    prompt after it, and every later run, carries it) and told in the report."""
    prompt = (
        f"The author has not said what this branching gamebook of {context.sections} sections "
        f"is about. Invent its premise in two or three sentences, about {PREMISE_WORDS} words: "
        "who the reader plays, where, what they want and what stands in the way. Answer with "
        "the premise only."
    )
    premise = " ".join((await context.text(prompt, words=PREMISE_WORDS, fix=_said)).split())
    await context.amend_brief({"premise": premise[:PREMISE_CHARS]})
    context.note(
        f"the brief had no premise: the plotwright invented one, saved in the brief: {premise}"
    )


def _said(text: str) -> tuple[str, list[str]]:
    said = text.strip()
    return (
        (said, [])
        if said
        else ("A reader's adventure, told in numbered sections.", ["the premise was empty"])
    )


async def _draft(context: StepContext, shape: Shape) -> Topology:
    """The book's topology: from one reply, or from an outline and one reply per part."""
    parts = shape.parts(context.max_tokens())
    if len(parts) == 1:
        prompt = (
            f"Draft a branching gamebook of {shape.size} sections: give the book a title. "
            + FILLING.format(slots=shape.slots(parts[0]))
        )
        schema = draft_schema(shape.size, titled=True)
        topology: Topology = await context.structured(
            prompt, name="topology", schema=schema, fix=shape.whole
        )
        return topology
    outline = await _outline(context, shape, parts)

    async def draft(part: Part) -> None:
        key = f"{DRAFTS}part-{parts.index(part) + 1}"
        if await context.made(key) is None:
            mended = await context.structured(
                _part_prompt(shape, parts, part, outline),
                name="sections",
                schema=draft_schema(part.count, titled=False),
                fix=shape.mender(part),
            )
            await context.save(key, mended)

    await context.each(parts, draft)
    drafts: list[dict[str, Any]] = []
    for index in range(1, len(parts) + 1):
        document = await context.get(f"{DRAFTS}part-{index}")
        assert document is not None  # saved above
        drafts += document["sections"]
    topology, notes = shape.join(outline["title"], drafts)
    for note in notes:
        context.repaired(note)
    return topology


async def _outline(context: StepContext, shape: Shape, parts: tuple[Part, ...]) -> dict[str, Any]:
    """The book's title and its acts (title, summary), asked once per run."""
    made = await context.made(OUTLINE)
    if made is not None:
        return made
    acts = parts[-1].act + 1
    prompt = (
        f"Outline a branching gamebook of {shape.size} sections in {acts} acts: give the book a "
        "title, and each act a title and a summary of two or three sentences (what happens, "
        "what is at stake). The sections will be drafted act by act from this outline."
    )
    outline: dict[str, Any] = await context.structured(
        prompt, name="outline", schema=outline_schema(acts)
    )
    return await context.save(OUTLINE, outline)


def _part_prompt(shape: Shape, parts: tuple[Part, ...], part: Part, outline: dict[str, Any]) -> str:
    act = outline["acts"][part.act]
    acts = len(outline["acts"])
    title = act["title"].strip() or f"Act {part.act + 1}"
    return (
        f"You are drafting the branching gamebook {outline['title']!r} of {shape.size} sections "
        f"in {acts} acts, part by part.\nAct {part.act + 1} of {acts}, {title}: "
        f"{act['summary'].strip()}\n\nDraft sections {part.first} to {part.last} (part "
        f"{parts.index(part) + 1} of {len(parts)}). Choices may lead to sections of other "
        "parts. " + FILLING.format(slots=shape.slots(part))
    )


async def _forget_other_sections(context: StepContext, topology: Topology) -> None:
    """Delete sections and reviews of ids the new topology does not have."""
    for prefix in (SECTIONS, REVIEWS):
        for key in await context.keys(prefix):
            if not topology.has(key[len(prefix) :]):
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


def _asked(context: StepContext) -> str:
    """How the prose is asked for: its point of view, language and length."""
    brief, words = context.brief, context.options["words"]
    language = f", in the language {brief.language}" if brief.language != "en" else ""
    return f"in the {brief.pov} person{language}, about {words} words long"


async def write_sections(context: StepContext) -> None:
    async def write(topology: Topology, section: Section, _: dict[str, Any]) -> dict[str, Any]:
        brief = _brief(topology, section)
        prompt = f"Write the prose of this section, {_asked(context)}.\n\n{brief}"
        words = context.options["words"]
        return _section(await context.text(prompt, fix=_prose, section=section.id, words=words))

    await each_section(context, write, writes=SECTIONS, spare_authored=True)


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
            prompt, name="review", schema=REVIEW_SCHEMA, section=section.id
        )
        if verdict["verdict"] == "revise":
            await _revise(context, topology, section, written["prose"], verdict["notes"])
        return verdict

    await each_section(
        context,
        review,
        writes=REVIEWS,
        reads=SECTIONS,
        missing="no prose to review",
        spare_authored=True,
    )


async def _revise(
    context: StepContext, topology: Topology, section: Section, prose: str, notes: str
) -> None:
    """The section sent back once: the scene smith rewrites it from the gatekeeper's notes."""
    prompt = (
        f"The gatekeeper sent this section back. Rewrite its prose, {_asked(context)}, "
        f"following the notes.\n\n{_brief(topology, section)}\n\nProse:\n{prose}\n\n"
        f"Notes:\n{notes.strip() or '(none)'}"
    )
    rewritten = await context.text(
        prompt,
        role="scene_smith",
        fix=_prose,
        instructions=WRITING,
        section=section.id,
        words=context.options["words"],
    )
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
    options=(
        LoopOption(
            "words",
            "About how many words each section's prose runs to.",
            "integer",
            default=WORDS,
            minimum=20,
            maximum=2000,
        ),
    ),
)
