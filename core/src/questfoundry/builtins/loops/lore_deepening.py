"""``lore_deepening``: the lore weaver turns each kept hook into canon, the researcher checks
that it is plausible, the gatekeeper refuses what contradicts the canon or the prose.

Per kept hook (``book/hooks``): the lore weaver drafts up to four entries — facts, places,
people, events — each naming the sections it concerns; the researcher judges them and an
implausible draft is rewritten once from its notes. The gatekeeper then holds each hook's
entries against the established canon, the entries of the hooks before it and the prose: an
entry it finds contradicting is rewritten once and refused if it still does. A name the canon
already gives to something else is a contradiction the studio sees for itself; a name it
already holds for the same kind of thing is a repeat, left out. Last, the entries are
established in ``book/canon/<id>`` (the shape every prompt's background reads, so later prompts
get the canon concerning their section) and the events are put in order: ``book/timeline``.

Every run builds the loop's canon afresh from the kept hooks: the entries an earlier run of this
loop made are deleted first, so this run's prompts read the same canon as the last one's and a
repeated run is answered by the cache. Canon the loop did not make (no ``hook``) is never
touched; it is what the drafts must agree with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from questfoundry.builtins.loops.lore import (
    HOOKS,
    TIMELINE,
    WORK,
    flat,
    noted,
    numbers,
    section_refs,
)
from questfoundry.kit import (
    CANON,
    RUN,
    SECTIONS,
    TEXT,
    CanonEntry,
    LoopSpec,
    StateError,
    Step,
    StepContext,
    Topology,
    load_topology,
    object_schema,
    slug,
)

DRAFTS = WORK + "drafts/"
RESEARCH = WORK + "research/"
CHECKS = WORK + "checks/"
KINDS = ("fact", "place", "person", "event")
#: the most entries one hook yields; how much of a section's prose a prompt quotes
MOST_ENTRIES = 4
QUOTED = 1500
#: the most sections whose prose, and earlier entries, a contradiction check is shown
PROSE_SECTIONS = 3
SHOWN_ENTRIES = 24
ENTRY_SCHEMA = object_schema(
    kind={"type": "string", "enum": list(KINDS)},
    name=TEXT,
    fact=TEXT,
    when=TEXT,
    sections={"type": "array", "items": TEXT, "maxItems": 4},
    tags={"type": "array", "items": TEXT, "maxItems": 5},
)
ENTRIES_SCHEMA = object_schema(
    entries={"type": "array", "items": ENTRY_SCHEMA, "maxItems": MOST_ENTRIES}
)
RESEARCH_SCHEMA = object_schema(
    verdict={"type": "string", "enum": ["plausible", "implausible"]}, notes=TEXT
)
CONFLICT_SCHEMA = object_schema(entry=TEXT, contradicts=TEXT, why=TEXT)
CHECK_SCHEMA = object_schema(contradictions={"type": "array", "items": CONFLICT_SCHEMA})
TIMELINE_SCHEMA = object_schema(events={"type": "array", "items": TEXT})
DRAFTING = (
    "Write canon a reader could never catch out: concrete, consistent with the prose and with "
    "what is established. Answer with JSON only."
)
ASKED = (
    f"Give up to {MOST_ENTRIES} entries, each a fact, place, person or event: a short name; "
    "one to three sentences of fact; when it happened (for an event; empty otherwise); the "
    "numbers of the sections it concerns; a few tags (the names, places and things it is about)."
)


# ---------------------------------------------------------------------------- drafts


async def draft_canon(context: StepContext) -> None:
    topology = await load_topology(context)
    await _forget_earlier_canon(context)
    hooks = await kept_hooks(context, topology)
    if not hooks:
        context.note("hook_harvest kept no hook: there is nothing to deepen into canon")

    async def draft(hook: dict[str, Any]) -> None:
        if await context.made(DRAFTS + hook["id"]) is not None:
            return
        prompt = (
            f"Deepen this open thread of the gamebook {topology.title!r} into canon: the facts "
            f"behind it (who, where, what happened and when). {ASKED} Agree with the prose "
            f"and with the established canon.\n\n{_thread(topology, hook)}"
            f"{await _prose(context, topology, hook['sections'])}"
        )
        entries = await context.structured(
            prompt,
            name="canon",
            schema=ENTRIES_SCHEMA,
            fix=entries_fix(topology, hook),
            section=hook["sections"][0],
        )
        await context.save(DRAFTS + hook["id"], {"hook": hook["id"], "entries": entries})

    await context.each(hooks, draft)


async def _forget_earlier_canon(context: StepContext) -> None:
    """Delete the canon earlier runs of this loop made (entries naming their ``hook``)."""
    for key in await context.keys(CANON):
        entry = await context.get(key)
        if entry is not None and "hook" in entry and entry.get(RUN) != context.run_id:
            await context.delete(key)


async def kept_hooks(context: StepContext, topology: Topology) -> list[dict[str, Any]]:
    """The hooks ``hook_harvest`` kept, in its order, naming only sections the book still has
    (a hook left with none is passed over); fails the step when no harvest ran."""
    harvest = await context.get(HOOKS)
    if harvest is None:
        raise context.fail("the book has no triaged hooks yet: run hook_harvest first")
    kept = []
    for hook in harvest["hooks"]:
        sections = [s for s in hook["sections"] if topology.has(s)]
        if hook.get("triage") == "keep" and sections:
            kept.append({**hook, "sections": sections})
    return kept


def entries_fix(topology: Topology, hook: dict[str, Any]) -> Any:
    """The meaning check of drafted entries: each named once, with a fact that fits the canon's
    shape, concerning sections the book has (the hook's when it names none)."""

    def fix(answer: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        entries: list[dict[str, Any]] = []
        empty, twice, strangers, unfit = 0, [], [], []
        for raw in answer["entries"]:
            name, fact = flat(raw["name"]), flat(raw["fact"])
            ident = slug(name)
            if not ident or not fact:
                empty += 1
                continue
            if any(entry["id"] == ident for entry in entries):
                twice.append(name)
                continue
            ids, unknown = section_refs(topology, raw["sections"])
            strangers += unknown
            tags = [flat(tag) for tag in raw["tags"] if flat(tag)]
            try:
                canon = CanonEntry(name, fact, tuple(ids or hook["sections"]), tuple(tags))
            except StateError as exc:
                unfit.append(f"{name} ({exc})")
                continue
            when = flat(raw["when"]) if raw["kind"] == "event" else ""
            extra = {"id": ident, "kind": raw["kind"], "when": when, "hook": hook["id"]}
            entries.append(canon.to_dict() | extra)
        notes = [f"{empty} entries without a name or a fact were dropped"] if empty else []
        notes += noted("entries named twice were kept once", twice)
        notes += noted("entries named sections the book does not have", strangers)
        notes += noted("entries the canon cannot hold were dropped", unfit)
        return entries, [f"hook {hook['id']!r}: {note}" for note in notes]

    return fix


def _thread(topology: Topology, hook: dict[str, Any]) -> str:
    return (
        f"The thread: {hook['title']} ({hook['kind']}; sections "
        f"{numbers(topology, hook['sections'])}). {hook['detail']}\n"
        f"Why it was kept: {hook['reason']}\n"
    )


async def _prose(context: StepContext, topology: Topology, ids: list[str]) -> str:
    """The prose of the first sections of ``ids``, each cut to :data:`QUOTED` characters."""
    parts = []
    for ident in ids[:PROSE_SECTIONS]:
        written = await context.get(SECTIONS + ident)
        if written is not None:
            section = topology.section(ident)
            parts.append(f"\nProse of section {section.number}:\n{written['prose'][:QUOTED]}\n")
    return "".join(parts)


def shown(topology: Topology, entries: list[dict[str, Any]]) -> str:
    """Entries as a prompt lists them."""
    return "\n".join(
        f"- {e['name']} ({e['kind']}{', ' + e['when'] if e.get('when') else ''}; sections "
        f"{numbers(topology, [s for s in e['sections'] if topology.has(s)])}): {e['fact']}"
        for e in entries
    )


# ---------------------------------------------------------------------------- plausibility


async def check_plausibility(context: StepContext) -> None:
    topology = await load_topology(context)

    async def research(hook: dict[str, Any]) -> None:
        if await context.made(RESEARCH + hook["id"]) is not None:
            return
        draft = await _draft(context, hook)
        if draft.get("revised") and draft.get(RUN) == context.run_id:
            verdict = {"verdict": "implausible", "notes": draft["notes"]}  # rewritten, then cut
        else:
            verdict = await _research(context, topology, hook, draft["entries"])
        if verdict["verdict"] == "implausible" and not draft.get("revised"):
            prompt = (
                f"The researcher found this canon implausible. Rewrite it following the notes. "
                f"{ASKED}\n\n{_thread(topology, hook)}\nThe canon:\n"
                f"{shown(topology, draft['entries'])}\n\nThe researcher's notes:\n"
                f"{verdict['notes']}"
            )
            entries = await context.structured(
                prompt,
                name="canon",
                schema=ENTRIES_SCHEMA,
                fix=entries_fix(topology, hook),
                role="lore_weaver",
                section=hook["sections"][0],
            )
            revised = {**draft, "entries": entries, "revised": True, "notes": verdict["notes"]}
            await context.save(DRAFTS + hook["id"], revised)
        await context.save(RESEARCH + hook["id"], verdict)

    await context.each(await kept_hooks(context, topology), research)


async def _draft(context: StepContext, hook: dict[str, Any]) -> dict[str, Any]:
    draft = await context.get(DRAFTS + hook["id"])
    if draft is None:
        raise context.fail(f"the hook {hook['id']!r} has no canon drafted yet")
    return draft


async def _research(
    context: StepContext, topology: Topology, hook: dict[str, Any], entries: list[dict[str, Any]]
) -> dict[str, Any]:
    prompt = (
        "Check this canon for plausibility: could it be true in the book's world, does it hang "
        "together, does it explain the thread? Answer plausible, or implausible with notes "
        f"saying what to change.\n\n{_thread(topology, hook)}\nThe canon:\n"
        f"{shown(topology, entries)}"
    )

    def fix(verdict: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        if verdict["verdict"] == "implausible" and not verdict["notes"].strip():
            note = f"the researcher found the canon of {hook['id']!r} implausible without a note"
            return {"verdict": "plausible", "notes": ""}, [note]
        return verdict, []

    found: dict[str, Any] = await context.structured(
        prompt, name="research", schema=RESEARCH_SCHEMA, fix=fix, section=hook["sections"][0]
    )
    return found


# ---------------------------------------------------------------------------- contradictions


async def check_contradictions(context: StepContext) -> None:
    topology = await load_topology(context)
    hooks = await kept_hooks(context, topology)
    earlier = await established(context)
    before: dict[str, list[dict[str, Any]]] = {}
    for hook in hooks:
        before[hook["id"]] = list(earlier)
        earlier += (await _draft(context, hook))["entries"]

    async def check(hook: dict[str, Any]) -> None:
        if await context.made(CHECKS + hook["id"]) is not None:
            return
        entries = (await _draft(context, hook))["entries"]
        result = await Check(context, topology, hook, before[hook["id"]]).run(entries)
        await context.save(CHECKS + hook["id"], result)

    await context.each(hooks, check)


async def established(context: StepContext) -> list[dict[str, Any]]:
    """The canon this loop did not make, as its drafts are shaped: the id its name gives (else
    its key), a kind (``fact`` when it has none) and the sections it names."""
    found = []
    for key in await context.keys(CANON):
        document = await context.get(key)
        if document is None or "hook" in document:
            continue
        entry = CanonEntry.from_dict(document)
        ident = slug(entry.name) or slug(key[len(CANON) :])
        kind = document.get("kind") if document.get("kind") in KINDS else "fact"
        found.append(
            entry.to_dict() | {"id": ident, "name": entry.name or ident, "kind": kind, "when": ""}
        )
    return found


class Check:
    """The gatekeeper's check of one hook's entries against what came before them."""

    def __init__(
        self,
        context: StepContext,
        topology: Topology,
        hook: dict[str, Any],
        earlier: list[dict[str, Any]],
    ) -> None:
        self.context = context
        self.topology = topology
        self.hook = hook
        self.earlier = {entry["id"]: entry for entry in reversed(earlier)}  # the first wins

    async def run(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """The entries that stand; a contradicting one is rewritten once, then refused."""
        entries, repeats = self._new(entries)
        conflicts = await self._conflicts(entries)
        refused: list[dict[str, str]] = []
        if conflicts:
            wrong = [e for e in entries if e["id"] in conflicts]
            entries = [e for e in entries if e["id"] not in conflicts]
            rewritten, repeated = self._new(await self._rewrite(wrong, conflicts), entries)
            again = await self._conflicts(rewritten)
            entries += [e for e in rewritten if e["id"] not in again]
            refused = [
                {"name": e["name"], "why": again[e["id"]]} for e in rewritten if e["id"] in again
            ]
            repeats += repeated
        hook = self.hook["id"]
        notes = noted(f"canon of {hook!r} already established was left out", repeats)
        notes += noted(
            f"canon of {hook!r} refused for contradicting what is established",
            [f"{r['name']} ({r['why']})" for r in refused],
        )
        for note in notes:
            self.context.repaired(note)
        return {"hook": hook, "entries": entries, "refused": refused}

    def _new(
        self, entries: list[dict[str, Any]], standing: Sequence[dict[str, Any]] = ()
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """``entries`` without the repeats: a name ``standing`` holds, or the canon holds for
        the same kind of thing."""
        new, repeats = [], []
        taken = {entry["id"] for entry in standing}
        for entry in entries:
            before = self.earlier.get(entry["id"])
            same = before is not None and before.get("kind", entry["kind"]) == entry["kind"]
            if same or entry["id"] in taken:
                repeats.append(entry["name"])
            else:
                new.append(entry)
        return new, repeats

    async def _conflicts(self, entries: list[dict[str, Any]]) -> dict[str, str]:
        """Entry id → what it contradicts: a name the canon gives another kind of thing, and
        what the gatekeeper finds."""
        if not entries:
            return {}
        conflicts = {
            e["id"]: f"{e['name']!r} is already a {self.earlier[e['id']].get('kind', 'fact')}"
            for e in entries
            if e["id"] in self.earlier
        }
        against = self._concerning(entries)
        sections = [s for e in entries for s in e["sections"] if self.topology.has(s)]
        prompt = (
            "Check this new canon against the established canon and the prose. List every "
            "new entry that contradicts either, naming the entry, what it contradicts and why; "
            f"none when it agrees.\n\nNew canon:\n{shown(self.topology, entries)}\n\n"
            f"Established canon:\n{shown(self.topology, against) or '(none yet)'}\n"
            f"{await _prose(self.context, self.topology, list(dict.fromkeys(sections)))}"
        )
        ids = {e["id"]: e for e in entries} | {slug(e["name"]): e for e in entries}

        def fix(answer: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
            found: dict[str, str] = {}
            strangers = []
            for item in answer["contradictions"]:
                entry = ids.get(item["entry"].strip()) or ids.get(slug(item["entry"]))
                if entry is None:
                    strangers.append(item["entry"])
                else:
                    what = flat(f"{item['contradicts']}: {item['why']}").strip(": ")
                    found.setdefault(entry["id"], what or "contradicts the canon")
            hook = self.hook["id"]
            return found, noted(
                f"the check of hook {hook!r} named entries it does not have", strangers
            )

        found: dict[str, str] = await self.context.structured(
            prompt,
            name="contradictions",
            schema=CHECK_SCHEMA,
            fix=fix,
            section=self.hook["sections"][0],
        )
        return conflicts | {k: v for k, v in found.items() if k not in conflicts}

    def _concerning(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The earlier entries sharing a name, a section or a tag with ``entries``."""
        ids = {e["id"] for e in entries}
        sections = {s for e in entries for s in e["sections"]}
        tags = {slug(t) for e in entries for t in (*e.get("tags", ()), e["name"])}
        return [
            e
            for e in self.earlier.values()
            if e["id"] in ids
            or sections & set(e.get("sections", ()))
            or tags & {slug(t) for t in (*e.get("tags", ()), e.get("name", ""))}
        ][:SHOWN_ENTRIES]

    async def _rewrite(
        self, wrong: list[dict[str, Any]], conflicts: dict[str, str]
    ) -> list[dict[str, Any]]:
        why = "\n".join(f"- {e['name']}: {conflicts[e['id']]}" for e in wrong)
        prompt = (
            "The gatekeeper found these canon entries contradicting what is established. "
            "Rewrite them so that they agree (a new name where the name is taken); leave out "
            f"one that cannot agree. {ASKED}\n\n{_thread(self.topology, self.hook)}\n"
            f"The entries:\n{shown(self.topology, wrong)}\n\nWhat they contradict:\n{why}\n\n"
            f"Established canon:\n{shown(self.topology, self._concerning(wrong)) or '(none)'}"
        )
        rewritten: list[dict[str, Any]] = await self.context.structured(
            prompt,
            name="canon",
            schema=ENTRIES_SCHEMA,
            fix=entries_fix(self.topology, self.hook),
            role="lore_weaver",
            section=self.hook["sections"][0],
        )
        return rewritten


# ---------------------------------------------------------------------------- canon


async def establish_canon(context: StepContext) -> None:
    if await context.made(TIMELINE) is not None:
        return
    topology = await load_topology(context)
    entries: list[dict[str, Any]] = []
    for hook in await kept_hooks(context, topology):
        checked = await context.get(CHECKS + hook["id"])
        if checked is None:
            raise context.fail(f"the canon of hook {hook['id']!r} is not checked yet")
        entries += [e for e in checked["entries"] if all(e["id"] != x["id"] for x in entries)]
    theirs = []
    for entry in list(entries):
        held = await context.get(CANON + entry["id"])
        if held is not None and "hook" not in held:  # the author's, or another loop's
            theirs.append(entry["name"])
            entries.remove(entry)
            continue
        await context.save(CANON + entry["id"], {k: v for k, v in entry.items() if k != "id"})
    for note in noted("canon whose key holds canon this loop did not make was left out", theirs):
        context.repaired(note)
    events = [entry for entry in entries if entry["kind"] == "event"]
    ordered = await _timeline(context, topology, events) if len(events) > 1 else events
    timeline = [{"id": e["id"], "name": e["name"], "when": e["when"]} for e in ordered]
    await context.save(TIMELINE, {"events": timeline})


async def _timeline(
    context: StepContext, topology: Topology, events: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``events`` in the order they happened, as the lore weaver orders them."""
    by_id = {e["id"]: e for e in events}
    lines = "\n".join(f"- {e['id']}: {e['name']} ({e['when'] or 'when unknown'})" for e in events)
    prompt = (
        f"Put these events of the gamebook {topology.title!r} in the order they happened, "
        f"earliest first, naming each by its id, every one once.\n\n{lines}"
    )

    def fix(answer: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        order: list[str] = []
        strangers = []
        for ref in answer["events"]:
            ident = ref.strip() if ref.strip() in by_id else slug(ref)
            if ident not in by_id:
                strangers.append(ref)
            elif ident not in order:
                order.append(ident)
        missing = [ident for ident in by_id if ident not in order]
        notes = noted("the timeline named events the canon does not have", strangers)
        notes += noted("events the timeline left out were put at its end", missing)
        return [by_id[ident] for ident in order + missing], notes

    ordered: list[dict[str, Any]] = await context.structured(
        prompt, name="timeline", schema=TIMELINE_SCHEMA, fix=fix
    )
    return ordered


LORE_DEEPENING = LoopSpec(
    "lore_deepening",
    ("lore_weaver", "researcher", "gatekeeper"),
    "canon from the kept hooks (facts, places, people, a timeline), checked for contradictions",
    (
        Step(
            "draft_canon",
            "lore_weaver",
            DRAFTING,
            draft_canon,
            reads=("topology", "sections", "hooks"),
            writes=("canon_drafts",),
        ),
        Step(
            "check_plausibility",
            "researcher",
            "Judge whether the canon could be true and hangs together. Answer with JSON only.",
            check_plausibility,
            reads=("canon_drafts",),
            writes=("research",),
        ),
        Step(
            "check_contradictions",
            "gatekeeper",
            "Refuse canon that contradicts the established canon or the prose. Answer with "
            "JSON only.",
            check_contradictions,
            reads=("canon_drafts", "research"),
            writes=("canon_checks",),
        ),
        Step(
            "establish_canon",
            "lore_weaver",
            "Answer with JSON only.",
            establish_canon,
            reads=("canon_checks",),
            writes=("canon", "timeline"),
        ),
    ),
)
