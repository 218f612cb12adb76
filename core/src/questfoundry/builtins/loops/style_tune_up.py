"""``style_tune_up``: the style lead writes the book's style guide, the gatekeeper holds every
section to it, the scene smith rewrites those out of voice.

The guide — a voice, a register, motifs, words to avoid and a few rules — is drawn from the
brief and a sample of sections and saved at ``book/style`` in the shape every prompt's
background reads (:class:`~questfoundry.kit.StyleGuide`: its paragraph and rules, plus the
parts it was made of), so every later prose prompt carries it. The meaning checks: an empty
guide is asked again, then made from the brief; a section the gatekeeper passes that uses a
word the guide avoids is out of voice all the same. The author's own sections are left alone.

A section this loop rewrote keeps the prose it was rewritten from (``styled``), and the next
run starts from that prose: running the loop again asks what the last run asked, and the cache
answers it. The guide is made afresh each run (an earlier run's is deleted first, so the
guide's own prompt never carries the guide). State: ``book/style``, ``book/voice/<id>`` (each
section's verdict), the rewritten ``book/sections/<id>``.
"""

from __future__ import annotations

import re
from typing import Any

from questfoundry.builtins.loops.lore import flat, noted
from questfoundry.builtins.loops.revision import unrevised
from questfoundry.builtins.loops.story_spark import WRITING
from questfoundry.kit import (
    SECTIONS,
    STYLE,
    TEXT,
    Brief,
    LoopSpec,
    Section,
    Step,
    StepContext,
    StyleGuide,
    Topology,
    each_section,
    load_topology,
    object_schema,
    prose_digest,
    spared,
)

VOICE = "book/voice/"
#: how many sections the style lead reads, and how much of each
SAMPLES = 4
QUOTED = 1500
#: the most motifs, words to avoid and rules a guide holds
MOST_MOTIFS = 6
MOST_AVOIDED = 12
MOST_RULES = 8
#: a guide's part, and a word to avoid, are cut to these many characters (so the whole stays
#: within a StyleGuide's bound)
PART_CHARS = 600
WORD_CHARS = 60
GUIDE_SCHEMA = object_schema(
    voice=TEXT,
    register=TEXT,
    motifs={"type": "array", "items": TEXT, "maxItems": MOST_MOTIFS},
    avoid={"type": "array", "items": TEXT, "maxItems": MOST_AVOIDED},
    rules={"type": "array", "items": TEXT, "maxItems": MOST_RULES},
)
IN_VOICE, OUT_OF_VOICE = "in_voice", "out_of_voice"
VERDICT_SCHEMA = object_schema(
    verdict={"type": "string", "enum": [IN_VOICE, OUT_OF_VOICE]}, notes=TEXT
)
#: the notes of a section judged out of voice without any
NO_NOTES = "Bring it into the voice and register the style guide describes."


# ---------------------------------------------------------------------------- the guide


async def draft_guide(context: StepContext) -> None:
    if await context.made(STYLE) is not None:
        return
    await context.delete(STYLE)  # the guide's own prompt never carries an earlier guide
    topology = await load_topology(context)
    samples = []
    for section in sampled(topology):
        written = await context.get(SECTIONS + section.id)
        if written is not None:
            prose = origin(written)[:QUOTED]
            samples.append(f"Section {section.number}, {section.title!r}:\n{prose}")
    prompt = (
        f"Write the style guide of the gamebook {topology.title!r}, drawn from its brief and "
        "from these sample sections: its voice (who tells it and how), its register (how "
        "formal, how plain), up to 6 motifs it returns to, up to 12 words or phrases it never "
        "uses, and up to 8 short rules of its own. The scene smith will write and rewrite "
        "every section by it.\n\n" + ("\n\n".join(samples) or "(no section has prose yet)")
    )
    guide = await context.structured(
        prompt, name="style_guide", schema=GUIDE_SCHEMA, fix=guide_fix(context.brief)
    )
    await context.save(STYLE, guide)


def sampled(topology: Topology) -> list[Section]:
    """The start and sections spread evenly over the rest, by number: at most
    :data:`SAMPLES`."""
    ordered = sorted(topology.sections, key=lambda s: s.number)
    start = topology.section(topology.start)
    rest = [s for s in ordered if s.id != start.id]
    wanted = min(SAMPLES - 1, len(rest))
    picked = [rest[(i * len(rest)) // wanted] for i in range(wanted)] if wanted else []
    return [start, *picked]


def guide_fix(brief: Brief) -> Any:
    """The meaning check of a style guide: it says something. An empty one (no voice, no
    register, no motif, word to avoid or rule) is made from the brief; blank items go."""

    def fix(answer: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        voice, register = flat(answer["voice"])[:PART_CHARS], flat(answer["register"])[:PART_CHARS]
        lists = {
            name: list(dict.fromkeys(t for t in (flat(x)[:chars] for x in answer[name]) if t))
            for name, chars in (
                ("motifs", PART_CHARS),
                ("avoid", WORD_CHARS),
                ("rules", PART_CHARS),
            )
        }
        if voice or register or any(lists.values()):
            return style_document(voice, register, **lists), []
        notes = ["the style guide was empty: give the voice, register, motifs and words to avoid"]
        return style_document(*from_brief(brief), motifs=[], avoid=[], rules=[]), notes

    return fix


def from_brief(brief: Brief) -> tuple[str, str]:
    """A voice and register from what the brief says, for a guide the style lead left empty."""
    voice = f"Told in the {brief.pov} person" + (f", {brief.tone}" if brief.tone else "") + "."
    audience = f"for {brief.audience}" if brief.audience else ""
    kinds = " ".join(part for part in (brief.genre, audience) if part)
    return voice, (f"As a {kinds} asks: plain and concrete." if kinds else "Plain and concrete.")


def style_document(
    voice: str, register: str, *, motifs: list[str], avoid: list[str], rules: list[str]
) -> dict[str, Any]:
    """The guide as ``book/style`` holds it: the :class:`StyleGuide` every background reads
    (the voice and register as its paragraph; motifs, words to avoid and rules as its rules)
    and the parts it was made of."""
    paragraph = " ".join(
        part for part in (voice and f"Voice: {voice}", register and f"Register: {register}") if part
    )
    told = [f"Return to the motif: {m}" for m in motifs]
    told += [f"Never use: {', '.join(avoid)}"] if avoid else []
    guide = StyleGuide(paragraph, (*told, *rules))
    parts = {"voice": voice, "register": register, "motifs": motifs, "avoid": avoid}
    return {**guide.to_dict(), **parts, "own_rules": rules}


# ---------------------------------------------------------------------------- the sections


def origin(document: dict[str, Any]) -> str:
    """The prose a section had before this loop rewrote it (its prose, when the loop did not,
    or when it was written again since)."""
    styled = document.get("styled")
    prose: str = document["prose"]
    if isinstance(styled, dict) and styled.get("to") == prose_digest(prose):
        return str(styled.get("from", prose))
    return prose


def avoided_in(prose: str, avoid: list[str]) -> list[str]:
    """The words and phrases of ``avoid`` that ``prose`` uses (whole words, any case)."""
    return [word for word in avoid if re.search(rf"(?<!\w){re.escape(word)}(?!\w)", prose, re.I)]


async def check_voice(context: StepContext) -> None:
    style = await context.get(STYLE)
    if style is None:
        raise context.fail("the book has no style guide yet")
    avoid = list(style.get("avoid", ()))

    async def check(topology: Topology, section: Section, written: dict[str, Any]) -> Any:
        prose = origin(written)
        prompt = (
            f"Hold section {section.number}, {section.title!r}, to the book's style guide (in "
            "the context above). Answer in_voice when it keeps the guide's voice and register, "
            "or out_of_voice with notes saying what to change.\n\nProse:\n" + prose
        )
        return await context.structured(
            prompt,
            name="voice",
            schema=VERDICT_SCHEMA,
            fix=verdict_fix(avoided_in(prose, avoid)),
            section=section.id,
        )

    await each_section(
        context, check, writes=VOICE, reads=SECTIONS, missing="no prose yet", spare_authored=True
    )


def verdict_fix(avoided: list[str]) -> Any:
    """The meaning check of a verdict: out of voice says what to change, and a section using a
    word the guide avoids is out of voice, whatever the gatekeeper said."""

    def fix(answer: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        verdict, notes = answer["verdict"], answer["notes"].strip()
        if avoided and verdict == IN_VOICE:
            said = ", ".join(avoided)
            return (
                {
                    "verdict": OUT_OF_VOICE,
                    "notes": f"Do without the words the guide avoids: {said}.",
                },
                noted("a section passed in voice uses words the style guide avoids", avoided),
            )
        if verdict == OUT_OF_VOICE and not notes:
            return {"verdict": verdict, "notes": NO_NOTES}, [
                "a section judged out of voice had no notes saying what to change"
            ]
        return {"verdict": verdict, "notes": notes}, []

    return fix


async def revise_voice(context: StepContext) -> None:
    topology = await load_topology(context)
    spare = await spared(context)
    flagged = []
    for section in topology.sections:
        verdict = await context.made(VOICE + section.id)
        if section.id not in spare and verdict and verdict["verdict"] == OUT_OF_VOICE:
            flagged.append((section, verdict["notes"]))
    context.note(
        f"{len(flagged)} of {len(topology.sections)} sections were out of voice and rewritten"
    )

    async def rewrite(item: tuple[Section, str]) -> None:
        section, notes = item
        written = await unrevised(context, section)
        if written is None:
            return
        prose = origin(written)
        prompt = (
            f"Rewrite the prose of section {section.number}, {section.title!r}, in the voice "
            "and register of the book's style guide (in the context above), following the "
            "notes. Keep what happens and where its choices lead.\n\n"
            f"Prose:\n{prose}\n\nNotes:\n{notes}"
        )
        rewritten = await context.text(
            prompt, section=section.id, words=len(prose.split()) or None, fix=_said
        )
        if rewritten:
            styled = {"from": prose, "to": prose_digest(rewritten)}
            revised = {"prose": rewritten, "placeholder": False, "revised": True, "notes": notes}
            await context.save(
                SECTIONS + section.id, {"id": section.id, **revised, "styled": styled}
            )

    await context.each(flagged, rewrite)


def _said(text: str) -> tuple[str, list[str]]:
    said = text.strip()
    return said, [] if said else ["a rewrite was empty (its section keeps its prose)"]


STYLE_TUNE_UP = LoopSpec(
    "style_tune_up",
    ("style_lead", "scene_smith", "gatekeeper"),
    "a style guide (voice, register, motifs, words to avoid), the sections out of voice rewritten",
    (
        Step(
            "draft_guide",
            "style_lead",
            "Describe the voice the book already has at its best. Answer with JSON only.",
            draft_guide,
            reads=("topology", "sections"),
            writes=("style",),
        ),
        Step(
            "check_voice",
            "gatekeeper",
            "Hold each section to the style guide. Answer with JSON only.",
            check_voice,
            reads=("topology", "sections", "style"),
            writes=("voice",),
        ),
        Step(
            "revise_voice",
            "scene_smith",
            WRITING,
            revise_voice,
            reads=("topology", "voice"),
            writes=("styled_sections",),
        ),
    ),
)
