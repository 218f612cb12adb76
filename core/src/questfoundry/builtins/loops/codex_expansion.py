"""``codex_expansion``: the codex curator writes a player-safe codex entry for each canon entry,
the gatekeeper checks that none gives away what the reader has not reached.

An entry is drawn from the sections its canon concerns; its depth is the nearest of them (the
fewest choices from the start). The book links a term's first mention in a section to its entry
only from sections at that depth or deeper, so the entry must hold nothing only later sections
reveal: the curator is told what those are; the studio itself refuses an entry naming canon a
reader meets only later, and the gatekeeper judges the text against the later sections'
summaries. An entry that still gives something away after one rewrite is not dropped: its depth
becomes that of the latest section it gives away, so no reader meets it before reading that.
State: ``book/lore/codex/<id>`` (drafts) and ``book/codex/<id>`` (term, text, depth, the canon
entry it is drawn from).
"""

from __future__ import annotations

import re
from typing import Any

from questfoundry.builtins.loops.lore import TIMELINE, WORK, flat, noted, section_refs
from questfoundry.kit import (
    CANON,
    CODEX,
    TEXT,
    CanonEntry,
    LoopSpec,
    Section,
    Step,
    StepContext,
    Topology,
    depths,
    load_topology,
    object_schema,
    slug,
)

DRAFTS = WORK + "codex/"
ENTRY_SCHEMA = object_schema(term=TEXT, text=TEXT)
SPOILER_SCHEMA = object_schema(spoils={"type": "array", "items": TEXT}, why=TEXT)
#: the most later sections, and canon names met later, a prompt lists (the nearest first)
SHOWN_LATER = 30
WRITING = (
    "Write for a reader who has read only this far: what the reader may know, in two to four "
    "sentences, never what a later section reveals. Answer with JSON only."
)


class Lore:
    """The canon and the book's depths, as the codex steps read them."""

    def __init__(self, topology: Topology, canon: dict[str, dict[str, Any]]) -> None:
        self.topology = topology
        self.canon = canon
        self.depths = depths(topology)
        self.deepest = max(self.depths.values(), default=0)

    def depth(self, ident: str) -> int:
        """The depth of the canon entry ``ident``: that of the nearest section it concerns (0
        when it names none)."""
        known = [self.depths[s] for s in self.canon[ident].get("sections", ()) if s in self.depths]
        return min(known, default=0)

    def nearest(self, ident: str) -> str | None:
        """The id of the section nearest the start that the canon entry ``ident`` concerns."""
        known = [s for s in self.canon[ident].get("sections", ()) if s in self.depths]
        return min(known, key=self.depths.__getitem__, default=None)

    def later(self, depth: int) -> list[Section]:
        """The sections deeper than ``depth``, the nearest first."""
        deeper = [s for s in self.topology.sections if self.depths.get(s.id, 0) > depth]
        return sorted(deeper, key=lambda s: (self.depths[s.id], s.number))

    def names_later(self, text: str, depth: int, ident: str) -> dict[str, int]:
        """The names of canon deeper than ``depth`` that ``text`` holds → their depths."""
        return {
            entry["name"]: self.depth(other)
            for other, entry in self.canon.items()
            if other != ident and self.depth(other) > depth and mentions(text, entry["name"])
        }


def mentions(text: str, name: str) -> bool:
    """Whether ``text`` holds ``name`` as a phrase of its own (any case)."""
    name = flat(name)
    return bool(name) and re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text, re.I) is not None


async def load_lore(context: StepContext) -> Lore:
    topology = await load_topology(context)
    canon: dict[str, dict[str, Any]] = {}
    for key in await context.keys(CANON):
        document = await context.get(key)
        ident = slug(key[len(CANON) :])
        if document is None or not ident:
            continue
        entry = CanonEntry.from_dict(document)  # one line, failing the step, if it is not one
        if entry.fact:
            kind = document.get("kind", "fact")
            canon.setdefault(ident, entry.to_dict() | {"name": entry.name or ident, "kind": kind})
    if not canon and await context.get(TIMELINE) is None:
        raise context.fail("the book has no canon yet: run lore_deepening first")
    return Lore(topology, canon)


# ---------------------------------------------------------------------------- entries


async def write_entries(context: StepContext) -> None:
    lore = await load_lore(context)

    async def write(ident: str) -> None:
        if await context.made(DRAFTS + ident) is not None:
            return
        entry, depth = lore.canon[ident], lore.depth(ident)
        met = sorted((lore.depth(o), e["name"]) for o, e in lore.canon.items())
        secrets = [name for deeper, name in met if deeper > depth][:SHOWN_LATER]
        later = _listed(lore.later(depth)) or "(none)"
        prompt = (
            f"Write the codex entry of the gamebook {lore.topology.title!r} about "
            f"{entry['name']!r}: the term a reader looks up (as the prose names it) and two to "
            f"four sentences a reader may know {_where(depth)}.\n\nThe canon: "
            f"{entry['name']} ({entry['kind']}): {entry['fact']}\n\n"
            f"Do not name: {', '.join(secrets) or '(nothing)'}.\n"
            f"Do not reveal what these later sections hold:\n{later}"
        )
        draft = await context.structured(
            prompt,
            name="codex",
            schema=ENTRY_SCHEMA,
            fix=entry_fix(lore, ident),
            section=lore.nearest(ident),
        )
        await context.save(DRAFTS + ident, draft)

    await context.each(sorted(lore.canon), write)


def entry_fix(lore: Lore, ident: str) -> Any:
    """The meaning check of a codex entry: a term and a text naming no canon a reader at its
    depth has not met (else its depth becomes that canon's)."""
    entry = lore.canon[ident]

    def fix(answer: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        term, text, depth = flat(answer["term"]), flat(answer["text"]), lore.depth(ident)
        notes = [] if term else [f"the codex entry about {entry['name']!r} had no term"]
        notes += [] if text else [f"the codex entry about {entry['name']!r} had no text"]
        later = lore.names_later(text, depth, ident)
        notes += noted(f"the codex entry about {entry['name']!r} named canon met later", [*later])
        draft = {
            "term": term or flat(entry["name"]),
            "text": text,
            "depth": max([depth, *later.values()]),
            "canon": ident,
            "sections": list(entry.get("sections", ())),
        }
        return draft, notes

    return fix


def _where(depth: int) -> str:
    if depth == 0:
        return "from the start"
    return f"after {depth} choice{'s' if depth != 1 else ''} from the start"


def _listed(sections: list[Section]) -> str:
    return "\n".join(f"- {s.number} {s.title}: {s.summary}" for s in sections[:SHOWN_LATER])


# ---------------------------------------------------------------------------- spoilers


async def check_spoilers(context: StepContext) -> None:
    lore = await load_lore(context)
    for key in await context.keys(CODEX):
        if key[len(CODEX) :] not in lore.canon:
            await context.delete(key)

    async def check(ident: str) -> None:
        if await context.made(CODEX + ident) is not None:
            return
        draft = await context.get(DRAFTS + ident)
        if draft is None:
            raise context.fail(f"the canon entry {ident!r} has no codex entry written yet")
        if not draft["text"]:
            await context.delete(CODEX + ident)
            return
        spoiled = await _spoiled(context, lore, draft)
        if spoiled:
            rewritten = await _rewrite(context, lore, draft, spoiled)
            draft = rewritten if rewritten["text"] else draft
            spoiled = await _spoiled(context, lore, draft)
        if spoiled:
            depth = max(lore.depths[s] for s in spoiled)
            where = ", ".join(str(lore.topology.section(s).number) for s in spoiled)
            context.repaired(
                f"the codex entry {draft['term']!r} gives away section {where}: it is linked "
                f"from depth {depth} on, not {draft['depth']}"
            )
            draft = {**draft, "depth": depth}
        await context.save(CODEX + ident, draft)

    await context.each(sorted(lore.canon), check)


async def _spoiled(context: StepContext, lore: Lore, draft: dict[str, Any]) -> list[str]:
    """The ids of the later sections whose secrets ``draft`` gives away, as the gatekeeper
    judges (no call when no section is later)."""
    later = lore.later(draft["depth"])
    if not later or not draft["text"]:
        return []
    prompt = (
        f"A reader meets this codex entry {_where(draft['depth'])}. List the numbers of the "
        "later sections whose secrets it gives away (what happens there, who someone turns out "
        "to be, how things end) and say why; none when it gives nothing away.\n\n"
        f"The entry: {draft['term']}: {draft['text']}\n\nLater sections:\n{_listed(later)}"
    )
    deeper = {s.id for s in later}

    def fix(answer: dict[str, Any]) -> tuple[list[str], list[str]]:
        ids, unknown = section_refs(lore.topology, answer["spoils"])
        notes = noted(
            f"the spoiler check of {draft['term']!r} named sections the book does not have", unknown
        )
        return [ident for ident in ids if ident in deeper], notes

    found: list[str] = await context.structured(
        prompt, name="spoilers", schema=SPOILER_SCHEMA, fix=fix
    )
    return found


async def _rewrite(
    context: StepContext, lore: Lore, draft: dict[str, Any], spoiled: list[str]
) -> dict[str, Any]:
    given = _listed([lore.topology.section(s) for s in spoiled])
    prompt = (
        "The gatekeeper found that this codex entry gives away later sections. Rewrite it so "
        f"that it holds only what a reader knows {_where(draft['depth'])}.\n\n"
        f"The entry: {draft['term']}: {draft['text']}\n\nWhat it gives away:\n{given}"
    )
    rewritten: dict[str, Any] = await context.structured(
        prompt,
        name="codex",
        schema=ENTRY_SCHEMA,
        fix=entry_fix(lore, draft["canon"]),
        role="codex_curator",
    )
    return rewritten


CODEX_EXPANSION = LoopSpec(
    "codex_expansion",
    ("codex_curator", "gatekeeper"),
    "a player-safe codex from the canon, linked where the book first names each term",
    (
        Step(
            "write_entries",
            "codex_curator",
            WRITING,
            write_entries,
            reads=("topology", "canon"),
            writes=("codex_drafts",),
        ),
        Step(
            "check_spoilers",
            "gatekeeper",
            "Refuse any codex entry that gives away what a later section reveals. Answer with "
            "JSON only.",
            check_spoilers,
            reads=("codex_drafts",),
            writes=("codex",),
        ),
    ),
)
