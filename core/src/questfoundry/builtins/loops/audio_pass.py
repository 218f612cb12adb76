"""``audio_pass``: the audio director plans each section's cues, the gatekeeper holds them to
the section, the audio producer writes how each is made; together, the book's cue sheet.

A cue is ambience, music or an effect, placed at the section's opening, throughout it, on a
moment (the words of the prose it plays on) or at its close (:class:`~questfoundry.kit.Cue`).
The meaning checks: a cue that says nothing of what is heard is dropped, one placed on words
the section's prose does not hold is asked again, then plays throughout; the gatekeeper may
send a section's plan back once with notes. The sheet — every section's cues with the
producer's notes, and the producer's notes on the whole — is saved at ``book/audio``
(:class:`~questfoundry.kit.CueSheet`): ``binding_run`` prints it in the book's notes and the
HTML shows each section's cues beside it, collapsed. No audio is made.

State: ``book/audio`` (the sheet); while it is made, ``book/audio/plans/<id>`` and
``book/audio/checked/<id>`` (each section's plan, then as the gatekeeper left it).
"""

from __future__ import annotations

from typing import Any

from questfoundry.builtins.loops.lore import flat, noted
from questfoundry.kit import (
    AUDIO,
    SECTIONS,
    TEXT,
    Cue,
    CueSheet,
    LoopSpec,
    Section,
    Step,
    StepContext,
    Topology,
    each_section,
    load_topology,
    object_schema,
)

PLANS = AUDIO + "/plans/"
CHECKED = AUDIO + "/checked/"
#: the most cues a section gets; how much of its prose a prompt quotes
MOST_CUES = 4
QUOTED = 1500
#: how many sections' cues the producer's notes on the whole are drawn from
SHOWN = 40
#: a cue's sound, moment and note, and the notes on the whole, are cut to this many characters
CHARS = 1000
CUE_SCHEMA = object_schema(
    kind={"type": "string", "enum": list(Cue.KINDS)},
    sound=TEXT,
    placement={"type": "string", "enum": list(Cue.PLACEMENTS)},
    moment=TEXT,
)
PLAN_SCHEMA = object_schema(cues={"type": "array", "items": CUE_SCHEMA, "maxItems": MOST_CUES})
REVIEW_SCHEMA = object_schema(verdict={"type": "string", "enum": ["pass", "revise"]}, notes=TEXT)
SHEET_SCHEMA = object_schema(notes=TEXT)
PLANNING = (
    "Plan the audio cues of this section: ambience (the bed under the scene), music and "
    f"effects, at most {MOST_CUES}, none when silence serves it. For each say what is heard "
    "and where it plays: at the opening, throughout, on a moment (give the exact words of the "
    "prose it plays on) or at the close (under the choices, or the ending)."
)


def production_schema(count: int) -> dict[str, Any]:
    """A production note per cue, in the cues' order."""
    notes = {"type": "array", "items": TEXT, "minItems": count, "maxItems": count}
    return object_schema(notes=notes)


def _task(section: Section, prose: str) -> str:
    return f"Section {section.number}, {section.title!r}:\n{prose[:QUOTED]}"


def _listed(cues: list[dict[str, Any]]) -> str:
    return (
        "\n".join(
            f"- {c['kind']}: {c['sound']} ({c['placement']}"
            + (f" on {c['moment']!r}" if c["moment"] else "")
            + ")"
            for c in cues
        )
        or "- none"
    )


# ---------------------------------------------------------------------------- plans


async def plan_cues(context: StepContext) -> None:
    async def plan(topology: Topology, section: Section, written: dict[str, Any]) -> Any:
        prompt = f"{PLANNING}\n\n{_task(section, written['prose'])}"
        cues = await context.structured(
            prompt,
            name="cues",
            schema=PLAN_SCHEMA,
            fix=plan_fix(written["prose"]),
            section=section.id,
        )
        return {"cues": cues}

    await each_section(context, plan, writes=PLANS, reads=SECTIONS, missing="no prose yet")


def plan_fix(prose: str) -> Any:
    """The meaning check of a plan: every cue says what is heard (else it is dropped), a cue on
    a moment quotes words the prose holds (else it plays throughout), none is given twice."""
    held = " ".join(prose.split()).casefold()

    def fix(answer: dict[str, Any]) -> tuple[list[dict[str, str]], list[str]]:
        cues: list[dict[str, str]] = []
        silent, misplaced = 0, []
        for raw in answer["cues"]:
            sound, moment = flat(raw["sound"])[:CHARS], flat(raw["moment"])[:CHARS]
            placement = raw["placement"]
            if not sound:
                silent += 1
                continue
            if placement == "moment" and (not moment or moment.casefold() not in held):
                misplaced.append(repr(moment))
                placement = "throughout"
            cue = {
                "kind": raw["kind"],
                "sound": sound,
                "placement": placement,
                "moment": moment if placement == "moment" else "",
            }
            if cue not in cues:
                cues.append(cue)
        notes = [f"{silent} cues said nothing of what is heard (dropped)"] if silent else []
        notes += noted(
            "cues were placed on words the prose does not hold (they play throughout)", misplaced
        )
        return cues, notes

    return fix


async def review_cues(context: StepContext) -> None:
    async def review(topology: Topology, section: Section, planned: dict[str, Any]) -> Any:
        cues = planned["cues"]
        if not cues:
            return {"verdict": "pass", "notes": "", "cues": cues}
        written = await context.get(SECTIONS + section.id)
        prose = str(written["prose"]) if written else ""
        prompt = (
            "Hold these audio cues to their section: does each suit what happens there, play at "
            "the right place, and leave the prose room? Answer pass, or revise with notes saying "
            f"what to change.\n\n{_task(section, prose)}\n\nCues:\n{_listed(cues)}"
        )
        verdict: dict[str, str] = await context.structured(
            prompt, name="cue_review", schema=REVIEW_SCHEMA, section=section.id
        )
        if verdict["verdict"] == "revise":
            again = (
                f"The gatekeeper sent these cues back. {PLANNING}\n\n{_task(section, prose)}\n\n"
                f"Your cues:\n{_listed(cues)}\n\nThe gatekeeper's notes:\n"
                f"{verdict['notes'].strip() or '(none)'}"
            )
            cues = await context.structured(
                again,
                name="cues",
                schema=PLAN_SCHEMA,
                fix=plan_fix(prose),
                role="audio_director",
                section=section.id,
            )
        return {**verdict, "cues": cues}

    await each_section(context, review, writes=CHECKED, reads=PLANS, missing="no cues planned yet")


# ---------------------------------------------------------------------------- production


async def produce_cues(context: StepContext) -> None:
    topology = await load_topology(context)
    sections = sorted(topology.sections, key=lambda s: s.number)
    checked = {}
    for section in sections:
        document = await context.get(CHECKED + section.id)
        if document is None:
            raise context.fail(f"section {section.id!r} has no cues checked yet")
        checked[section.id] = document["cues"]
    cued = [s for s in sections if checked[s.id]]

    async def produce(section: Section) -> list[dict[str, str]]:
        cues = checked[section.id]
        prompt = (
            "Write the production note of each of these cues of section "
            f"{section.number}, {section.title!r}, in their order: the source or instruments, "
            "the level under the voice, how it enters and leaves, whether it loops.\n\n"
            f"Cues:\n{_listed(cues)}"
        )
        notes: list[str] = await context.structured(
            prompt,
            name="production",
            schema=production_schema(len(cues)),
            fix=_notes_fix,
            section=section.id,
        )
        return [{**cue, "note": note} for cue, note in zip(cues, notes, strict=True)]

    if await context.made(AUDIO) is None:
        produced = await context.each(cued, produce)
        sheet = {
            s.id: tuple(Cue(**c) for c in cues) for s, cues in zip(cued, produced, strict=True)
        }
        overall = await _overall(context, topology, cued, checked)
        await context.save(AUDIO, CueSheet(sheet, overall).to_dict())
    for prefix in (PLANS, CHECKED):
        for key in await context.keys(prefix):
            await context.delete(key)
    count = sum(len(cues) for cues in checked.values())
    context.note(f"the cue sheet: {count} cues in {len(cued)} of {len(sections)} sections")


def _notes_fix(answer: dict[str, Any]) -> tuple[list[str], list[str]]:
    notes = [flat(note)[:CHARS] for note in answer["notes"]]
    bare = sum(not note for note in notes)
    return notes, [f"{bare} cues had no production note"] if bare else []


async def _overall(
    context: StepContext,
    topology: Topology,
    cued: list[Section],
    checked: dict[str, list[dict[str, Any]]],
) -> str:
    """The producer's notes on the whole sheet: the palette, the mix, what recurs."""
    if not cued:
        return ""
    listed = "\n".join(
        f"Section {s.number}, {s.title!r}:\n{_listed(checked[s.id])}" for s in cued[:SHOWN]
    )
    prompt = (
        f"Write the production notes of the cue sheet of the gamebook {topology.title!r} in a "
        "short paragraph: the palette of sounds, the mix, what recurs and should sound the "
        f"same each time.\n\n{listed}"
    )
    answer: dict[str, str] = await context.structured(prompt, name="cue_sheet", schema=SHEET_SCHEMA)
    return flat(answer["notes"])[:CHARS]


AUDIO_PASS = LoopSpec(
    "audio_pass",
    ("audio_director", "audio_producer", "gatekeeper"),
    "a cue sheet: ambience, music and effects placed per section, with production notes",
    (
        Step(
            "plan_cues",
            "audio_director",
            "Serve the reading: sound that supports the prose, never competes. Answer with JSON "
            "only.",
            plan_cues,
            reads=("topology", "sections"),
            writes=("cue_plans",),
        ),
        Step(
            "review_cues",
            "gatekeeper",
            "Answer with JSON only, matching the schema you are given.",
            review_cues,
            reads=("cue_plans",),
            writes=("cues",),
        ),
        Step(
            "produce_cues",
            "audio_producer",
            "Write notes a sound designer can work from. Answer with JSON only.",
            produce_cues,
            reads=("topology", "cues"),
            writes=("audio",),
        ),
    ),
)
