"""``hook_harvest``: the lore weaver gathers the threads the prose leaves open, the showrunner
triages them.

A hook is a mystery (something happens that is not explained), a promise (something the story
says will come) or a name (a person, place or thing named and never explained). The meaning
checks: every hook names sections the book has, no hook is listed twice, and every hook gets
one verdict — keep, drop or later — with a reason. A hook found in several sections is one hook
(the sections are joined). State: ``book/hooks/<section id>`` (what each section leaves open)
and ``book/hooks`` (every hook once, triaged; ``lore_deepening`` deepens the kept ones).
"""

from __future__ import annotations

from typing import Any

from questfoundry.builtins.loops.lore import FOUND, HOOKS, flat, noted, numbers, section_refs
from questfoundry.kit import (
    SECTIONS,
    TEXT,
    LoopSpec,
    Section,
    Step,
    StepContext,
    Topology,
    each_section,
    load_topology,
    object_schema,
    slug,
)

KINDS = ("mystery", "promise", "name")
VERDICTS = ("keep", "drop", "later")
#: the most hooks one section yields, and the most hooks one triage call judges
MOST_PER_SECTION = 3
BATCH = 40
HOOK_SCHEMA = object_schema(
    title=TEXT,
    kind={"type": "string", "enum": list(KINDS)},
    detail=TEXT,
    sections={"type": "array", "items": TEXT, "maxItems": 3},
)
FOUND_SCHEMA = object_schema(
    hooks={"type": "array", "items": HOOK_SCHEMA, "maxItems": MOST_PER_SECTION}
)
VERDICT_SCHEMA = object_schema(
    hook=TEXT, verdict={"type": "string", "enum": list(VERDICTS)}, reason=TEXT
)


def triage_schema(count: int) -> dict[str, Any]:
    """A verdict per hook, in the order the hooks were listed."""
    verdicts = {"type": "array", "items": VERDICT_SCHEMA, "minItems": count, "maxItems": count}
    return object_schema(triage=verdicts)


#: the verdict and reason of a hook the showrunner left without a sound one
LATER = "later"
NO_REASON = "no reason was given: left for a later harvest"


async def collect_hooks(context: StepContext) -> None:
    async def collect(topology: Topology, section: Section, written: dict[str, Any]) -> Any:
        prompt = (
            f"List the threads section {section.number}, {section.title!r}, leaves open: "
            "mysteries (something happens that is not explained), promises (something the story "
            "says will come) and names (a person, place or thing named and never explained). "
            f"At most {MOST_PER_SECTION}, the strongest first; none when it leaves nothing open. "
            "For each give a short title, its kind, one sentence saying what is open, and the "
            f"numbers of the sections where it shows (this one, {section.number}, and any "
            f"other you know of).\n\nProse of section {section.number}:\n{written['prose']}"
        )
        found: dict[str, Any] = await context.structured(
            prompt,
            name="hooks",
            schema=FOUND_SCHEMA,
            fix=found_fix(topology, section),
            section=section.id,
        )
        return found

    await each_section(
        context, collect, writes=FOUND, reads=SECTIONS, missing="no prose yet: run story_spark"
    )


def found_fix(topology: Topology, section: Section) -> Any:
    """The meaning check of one section's hooks: titled, named once, naming real sections
    (the section they were found in always among them)."""

    def fix(answer: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        hooks: list[dict[str, Any]] = []
        untitled, twice, strangers = 0, [], []
        for raw in answer["hooks"]:
            title = flat(raw["title"])
            ident = slug(title)
            if not ident:
                untitled += 1
            elif any(hook["id"] == ident for hook in hooks):
                twice.append(title)
            else:
                ids, unknown = section_refs(topology, raw["sections"])
                strangers += unknown
                hooks.append(
                    {
                        "id": ident,
                        "title": title,
                        "kind": raw["kind"],
                        "detail": flat(raw["detail"]) or title,
                        "sections": [section.id, *(i for i in ids if i != section.id)],
                    }
                )
        notes = [f"{untitled} hooks without a title were dropped"] if untitled else []
        notes += noted("hooks listed twice were listed once", twice)
        notes += noted("hooks named sections the book does not have", strangers)
        return {"hooks": hooks}, [f"section {section.number}: {note}" for note in notes]

    return fix


async def triage_hooks(context: StepContext) -> None:
    if await context.made(HOOKS) is not None:
        return
    topology = await load_topology(context)
    hooks = await gathered(context, topology)
    batches = [hooks[start : start + BATCH] for start in range(0, len(hooks), BATCH)]

    async def judge(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        lines = "\n".join(
            f"- {h['id']} ({h['kind']}; sections {numbers(topology, h['sections'])}): "
            f"{h['title']}. {h['detail']}"
            for h in batch
        )
        prompt = (
            f"Triage these open threads of the gamebook {topology.title!r}. Keep a thread worth "
            "turning into canon now, drop a loose end the book is better without, leave for "
            "later one worth it but not yet. Give each thread, in the order listed, one "
            f"verdict naming it by its id, with a one-sentence reason.\n\n{lines}"
        )
        judged: list[dict[str, Any]] = await context.structured(
            prompt, name="triage", schema=triage_schema(len(batch)), fix=triage_fix(batch)
        )
        return judged

    triaged = [hook for batch in await context.each(batches, judge) for hook in batch]
    await context.save(HOOKS, {"hooks": triaged})


async def gathered(context: StepContext, topology: Topology) -> list[dict[str, Any]]:
    """Every section's hooks in reading order, a hook found again joined to its first finding;
    the findings of sections the book no longer has are deleted."""
    for key in await context.keys(FOUND):
        if not topology.has(key[len(FOUND) :]):
            await context.delete(key)
    hooks: dict[str, dict[str, Any]] = {}
    for section in sorted(topology.sections, key=lambda s: s.number):
        found = await context.get(FOUND + section.id)
        if found is None:
            raise context.fail(f"section {section.id!r} has no hooks collected yet")
        for hook in found["hooks"]:
            first = hooks.setdefault(hook["id"], {**hook, "sections": []})
            first["sections"] += [s for s in hook["sections"] if s not in first["sections"]]
    return list(hooks.values())


def triage_fix(batch: list[dict[str, Any]]) -> Any:
    """The meaning check of a triage: one verdict with a reason for every hook of ``batch``,
    each naming its hook (a verdict naming none is taken for the hook listed in its place). A
    hook without a sound verdict is left for later."""
    known = {hook["id"]: hook for hook in batch}

    def fix(answer: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        verdicts: dict[str, tuple[str, str]] = {}
        strangers, twice, bare = [], [], []
        for item, listed in zip(answer["triage"], batch, strict=True):
            ident = item["hook"].strip()
            ident = ident if ident in known else slug(ident)
            reason = flat(item["reason"])
            if ident not in known:
                strangers.append(item["hook"])
                ident = listed["id"]
            if ident in verdicts:
                twice.append(ident)
            elif not reason:
                bare.append(ident)
                verdicts[ident] = (LATER, NO_REASON)
            else:
                verdicts[ident] = (item["verdict"], reason)
        missing = [ident for ident in known if ident not in verdicts]
        notes = noted("the triage named hooks the list does not hold", strangers)
        notes += noted("hooks triaged twice kept their first verdict", twice)
        notes += noted("hooks triaged without a reason were left for later", bare)
        notes += noted("hooks left without a verdict were left for later", missing)
        triaged = [
            {**hook, "triage": verdict, "reason": reason}
            for hook in batch
            for verdict, reason in [verdicts.get(hook["id"], (LATER, NO_REASON))]
        ]
        return triaged, notes

    return fix


HOOK_HARVEST = LoopSpec(
    "hook_harvest",
    ("showrunner", "lore_weaver", "gatekeeper"),
    "the book's open threads (mysteries, promises, names), triaged keep / drop / later",
    (
        Step(
            "collect_hooks",
            "lore_weaver",
            "Name only threads the prose really leaves open. Answer with JSON only.",
            collect_hooks,
            reads=("topology", "sections"),
            writes=("found_hooks",),
        ),
        Step(
            "triage_hooks",
            "showrunner",
            "Judge what the book gains from each thread. Answer with JSON only.",
            triage_hooks,
            reads=("topology", "found_hooks"),
            writes=("hooks",),
        ),
    ),
)
