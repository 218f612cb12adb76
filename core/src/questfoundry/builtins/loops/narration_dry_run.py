"""``narration_dry_run``: the player narrator plays the book as a reader, the gatekeeper turns
what troubled it into revision notes, and ``--apply`` has them revised.

The readings: every simple path from the start to a section without choices when there are at
most :data:`MOST_PATHS`, else a sample that passes through every section the start reaches
(the deepest first, each by the shortest way in and on). Per reading the narrator reports
confusion, contradictions, choices that do not follow from the prose and endings that come from
nowhere, each naming its section by number. The meaning check: a finding naming a section the
book does not have, or one the reading never passed, is asked again, then dropped.

Per section with findings the gatekeeper writes a revision note or dismisses them. With
``--apply`` the sections noted are revised as ``questfoundry revise`` revises one (the scene
smith rewrites from the note, the gatekeeper reviews and may send it back once); the author's
own sections never, unless the run is told ``--force``. State: ``book/playtest`` (what was
played and found), ``book/playtest/paths/<n>`` (each reading's findings),
``book/playtest/notes/<id>`` (the revision notes).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable
from typing import Any

from questfoundry.builtins.loops.lore import flat, noted, section_refs
from questfoundry.builtins.loops.revision import REVIEWING, reviewed, rewritten, unrevised
from questfoundry.kit import (
    SECTIONS,
    TEXT,
    LoopOption,
    LoopSpec,
    Section,
    Step,
    StepContext,
    Topology,
    load_topology,
    object_schema,
    spared,
)

PLAYTEST = "book/playtest"
PLAYS = "book/playtest/paths/"
NOTES = "book/playtest/notes/"
#: a book with at most this many simple paths is played along every one of them
MOST_PATHS = 64
#: how many steps the search for every simple path may take before the book is sampled
SEARCH_STEPS = 100_000
#: how much of each section's prose a reading quotes; the most findings one reading gives
QUOTED = 1200
MOST_FINDINGS = 8
KINDS = ("confusion", "contradiction", "unmotivated_choice", "ending_from_nowhere")
FINDING_SCHEMA = object_schema(
    section=TEXT, kind={"type": "string", "enum": list(KINDS)}, note=TEXT
)
PLAY_SCHEMA = object_schema(
    findings={"type": "array", "items": FINDING_SCHEMA, "maxItems": MOST_FINDINGS}
)
REVISE, DISMISS = "revise", "dismiss"
#: what a reading's findings may get wrong
STRANGERS = "findings naming sections the book does not have"
ELSEWHERE = "findings naming sections the reading did not pass"
BARE = "findings saying nothing of what is wrong"
NOTE_SCHEMA = object_schema(verdict={"type": "string", "enum": [REVISE, DISMISS]}, notes=TEXT)


# ---------------------------------------------------------------------------- readings


def readings(topology: Topology) -> tuple[list[list[str]], bool]:
    """The paths played (each a list of section ids from the start), and whether they are a
    sample (more than :data:`MOST_PATHS` simple paths) rather than every one."""
    every = simple_paths(topology, MOST_PATHS)
    if every is not None:
        return every, False
    return covering(topology), True


def simple_paths(topology: Topology, most: int) -> list[list[str]] | None:
    """Every path from the start that visits no section twice and ends where there are no
    choices, in choice order; None when there are more than ``most`` (or too many to count
    within :data:`SEARCH_STEPS`)."""
    found: list[list[str]] = []
    steps = 0
    stack: list[tuple[str, list[str]]] = [(topology.start, [topology.start])]
    while stack:
        ident, path = stack.pop()
        steps += 1
        if steps > SEARCH_STEPS:
            return None
        choices = topology.section(ident).choices
        if not choices:
            found.append(path)
            if len(found) > most:
                return None
            continue
        for choice in reversed(choices):
            if choice.target not in path:
                stack.append((choice.target, [*path, choice.target]))
    return found


def covering(topology: Topology) -> list[list[str]]:
    """Paths through every section the start reaches: for each section no path has passed yet,
    the deepest first, the shortest way from the start to it and on to a section without
    choices (passing no section twice; it stops there when it cannot)."""
    into = _shortest(topology, topology.start)
    order = sorted(into, key=lambda i: (-len(into[i]), topology.section(i).number))
    paths: list[list[str]] = []
    passed: set[str] = set()
    for ident in order:
        if ident in passed:
            continue
        way = into[ident]
        onward = _to_an_end(topology, ident, set(way))
        path = [*way, *onward[1:]]
        passed.update(path)
        paths.append(path)
    return paths


def _shortest(topology: Topology, start: str, avoid: Iterable[str] = ()) -> dict[str, list[str]]:
    """The shortest path from ``start`` to each section it reaches without passing ``avoid``."""
    ways = {start: [start]}
    blocked = set(avoid) - {start}
    queue = deque([start])
    while queue:
        here = queue.popleft()
        for choice in topology.section(here).choices:
            if choice.target not in ways and choice.target not in blocked:
                ways[choice.target] = [*ways[here], choice.target]
                queue.append(choice.target)
    return ways


def _to_an_end(topology: Topology, start: str, avoid: set[str]) -> list[str]:
    """The shortest way from ``start`` to a section without choices, avoiding ``avoid``;
    just ``[start]`` when there is none."""
    ways = _shortest(topology, start, avoid)
    ends = [i for i in ways if not topology.section(i).choices]
    return ways[min(ends, key=lambda i: len(ways[i]))] if ends else [start]


# ---------------------------------------------------------------------------- playing


async def play_paths(context: StepContext) -> None:
    topology = await load_topology(context)
    paths, sampled = readings(topology)
    prose = {}
    for ident in {i for path in paths for i in path}:
        written = await context.get(SECTIONS + ident)
        if written is None:
            raise context.fail(f"section {ident!r} has no prose yet: run story_spark first")
        prose[ident] = str(written["prose"])
    shown = "a sample of" if sampled else "every one of the"
    context.note(f"played {shown} {len(paths)} paths from the start to an ending")
    dropped: Counter[str] = Counter()

    async def play(index: int) -> None:
        key = f"{PLAYS}{index + 1}"
        if await context.made(key) is not None:
            return
        path = paths[index]
        prompt = (
            f"Play this path through the gamebook {topology.title!r} as a reader would, "
            "section by section, and report what would trouble a reader: confusion (what "
            "happens, or who is who, is unclear), a contradiction of an earlier section, a "
            "choice that does not follow from the prose, an ending that comes from nowhere. "
            "Name each finding's section by its number and say what is wrong in a sentence; "
            f"none when the path reads well.\n\n{_reading(topology, path, prose)}"
        )
        findings = await context.structured(
            prompt,
            name="playtest",
            schema=PLAY_SCHEMA,
            fix=findings_fix(topology, path, dropped),
        )
        await context.save(key, {"path": path, "findings": findings})

    await context.each(range(len(paths)), play)
    for what, count in sorted(dropped.items()):
        context.repaired(f"{count} {what} were dropped, though the narrator was asked again")
    await context.save(PLAYTEST, {"paths": len(paths), "sampled": sampled})


def _reading(topology: Topology, path: list[str], prose: dict[str, str]) -> str:
    parts = []
    for here, following in zip(path, [*path[1:], None], strict=True):
        section = topology.section(here)
        part = f"Section {section.number}, {section.title!r}:\n{prose[here][:QUOTED]}"
        chosen = [c.text for c in section.choices if c.target == following]
        if chosen:
            part += f"\nThe reader chooses: {chosen[0]}"
        elif not section.choices:
            part += "\n(The book ends here.)"
        parts.append(part)
    return "\n\n".join(parts)


def findings_fix(topology: Topology, path: list[str], dropped: Counter[str]) -> Any:
    """The meaning check of a reading's findings: each names a section of the book that the
    reading passed and says what is wrong; a finding given twice is kept once. The others are
    asked again once, naming them; what the second answer still gets wrong is dropped and
    counted in ``dropped`` (the step reports the count once, not a line per reading)."""
    played = set(path)
    answers = 0

    def fix(answer: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        nonlocal answers
        answers += 1
        kept: list[dict[str, Any]] = []
        strangers, elsewhere, bare = [], [], []
        for raw in answer["findings"]:
            ids, unknown = section_refs(topology, [raw["section"]])
            note = flat(raw["note"])
            if unknown:
                strangers += unknown
            elif ids[0] not in played:
                elsewhere.append(str(topology.section(ids[0]).number))
            elif not note:
                bare.append(str(topology.section(ids[0]).number))
            else:
                finding = {"section": ids[0], "kind": raw["kind"], "note": note}
                if finding not in kept:
                    kept.append(finding)
        problems = {STRANGERS: strangers, ELSEWHERE: elsewhere, BARE: bare}
        if answers > 1:
            dropped.update({what: len(found) for what, found in problems.items() if found})
            return kept, []
        return kept, [line for what, found in problems.items() for line in noted(what, found)]

    return fix


# ---------------------------------------------------------------------------- notes


async def write_notes(context: StepContext) -> None:
    topology = await load_topology(context)
    played = await context.made(PLAYTEST)
    if played is None:
        raise context.fail("the book has not been played yet")
    found: dict[str, list[dict[str, Any]]] = {}
    for index in range(1, played["paths"] + 1):
        reading = await context.made(f"{PLAYS}{index}")
        if reading is None:
            raise context.fail(f"path {index} has not been played yet")
        for finding in reading["findings"]:
            listed = found.setdefault(finding["section"], [])
            if finding not in listed:
                listed.append(finding)
    flagged = [s for s in sorted(topology.sections, key=lambda s: s.number) if s.id in found]

    async def judge(section: Section) -> None:
        if await context.made(NOTES + section.id) is not None:
            return
        findings = found[section.id]
        listed = "\n".join(f"- {f['kind'].replace('_', ' ')}: {f['note']}" for f in findings)
        prompt = (
            f"Readers playing the book raised these findings about section {section.number}, "
            f"{section.title!r}. Decide: revise, with notes the scene smith can follow to "
            "rewrite it, or dismiss them when the section is sound as it stands.\n\n"
            f"Findings:\n{listed}\n\nProse:\n{await _prose(context, section)}"
        )
        verdict = await context.structured(
            prompt,
            name="revision_note",
            schema=NOTE_SCHEMA,
            fix=note_fix(findings),
            section=section.id,
        )
        await context.save(NOTES + section.id, {"findings": findings, **verdict})

    await context.each(flagged, judge)
    for key in await context.keys(NOTES):
        if key[len(NOTES) :] not in found:
            await context.delete(key)  # an earlier playtest's notes on what reads well now
    count = sum(len(f) for f in found.values())
    await context.save(PLAYTEST, {**played, "findings": count, "sections": [s.id for s in flagged]})
    context.note(f"{count} findings on {len(flagged)} sections")


async def _prose(context: StepContext, section: Section) -> str:
    written = await context.get(SECTIONS + section.id)
    return str(written["prose"])[:QUOTED] if written else ""


def note_fix(findings: list[dict[str, Any]]) -> Any:
    """The meaning check of a revision note: one asking to revise says what to change (else
    the findings are the note)."""

    def fix(answer: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
        notes = answer["notes"].strip()
        if answer["verdict"] == REVISE and not notes:
            said = " ".join(f["note"] for f in findings)
            return {"verdict": REVISE, "notes": said}, ["a revision note said nothing to change"]
        return {"verdict": answer["verdict"], "notes": notes}, []

    return fix


# ---------------------------------------------------------------------------- applying


async def apply_notes(context: StepContext) -> None:
    topology = await load_topology(context)
    noted_sections = []
    for section in sorted(topology.sections, key=lambda s: s.number):
        note = await context.made(NOTES + section.id)
        if note is not None and note["verdict"] == REVISE:
            noted_sections.append((section, note["notes"]))
    if not noted_sections:
        return
    if not context.options["apply"]:
        numbers = ", ".join(str(s.number) for s, _ in noted_sections)
        context.note(
            f"revision notes for sections {numbers} are in {NOTES}<id>: run narration_dry_run "
            "--apply to have them revised (or questfoundry revise N --notes …)"
        )
        return
    spare = await spared(context)
    todo = [(section, notes) for section, notes in noted_sections if section.id not in spare]

    async def revise(item: tuple[Section, str]) -> None:
        section, notes = item
        written = await unrevised(context, section)
        if written is None:
            return
        prose = await rewritten(context, section, written["prose"], notes)
        if not prose:
            context.repaired(f"section {section.number} is as it was: its rewrite was empty")
            return
        await reviewed(context, section, prose, notes)

    await context.each(todo, revise)
    numbers = ", ".join(str(s.number) for s, _ in todo) or "none"
    context.note(f"--apply: revised from the playtest's notes: sections {numbers}")


NARRATION_DRY_RUN = LoopSpec(
    "narration_dry_run",
    ("player_narrator", "gatekeeper", "scene_smith"),
    "a playtest: every path (or a sample covering every section) read as a reader, with "
    "revision notes",
    (
        Step(
            "play_paths",
            "player_narrator",
            "Read as a first-time reader, in order, knowing only what the path told you. "
            "Answer with JSON only.",
            play_paths,
            reads=("topology", "sections"),
            writes=("readings",),
        ),
        Step(
            "write_notes",
            "gatekeeper",
            "Judge each finding against the book, not the reader's taste. Answer with JSON only.",
            write_notes,
            reads=("topology", "readings"),
            writes=("playtest_notes",),
        ),
        Step(
            "apply_notes",
            "gatekeeper",
            REVIEWING,
            apply_notes,
            reads=("topology", "playtest_notes"),
            writes=("revised_sections",),
        ),
    ),
    options=(
        LoopOption(
            "apply",
            "Revise the sections the playtest notes (never the author's own, unless --force).",
            "flag",
            default=False,
        ),
    ),
)
