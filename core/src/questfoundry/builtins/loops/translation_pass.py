"""``translation_pass``: the translator carries the book into another language (``--language
de``), the gatekeeper checks every part of it.

The parts: the front (the title, the brief's premise, genre, audience and tone, and the blurb
once ``binding_run`` wrote one), the words the book's files print around the story
(:class:`~questfoundry.kit.Labels`), each section (title, prose, choices, the picture's caption)
and each codex entry. Each is asked as JSON of its source's shape, so nothing can be left out of
the answer. The meaning check: a text left empty, one returned unchanged (four words or more, or
the whole part) and a label that lost its placeholder (``{number}``) are asked again, then the
source's words stay and are marked untranslated. The gatekeeper then reads each part beside its
source, told what the studio found: a part it sends back, or one still marked, is translated
once more from its notes.

Last, the parts are joined into ``book/translations/<lang>`` (the shape the binder reads,
:mod:`questfoundry.kit` ``TRANSLATIONS``): ``binding_run`` writes ``book.<lang>.html``, ``.md``,
``.epub`` and ``.twee`` beside the book, every link intact and ``lang`` set. While a run works,
its parts live under ``book/translating/<lang>/``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from questfoundry.builtins.loops.lore import flat, noted
from questfoundry.kit import (
    CODEX,
    FRONT_MATTER,
    IMAGES,
    SECTIONS,
    TEXT,
    TRANSLATIONS,
    Brief,
    Labels,
    LoopOption,
    LoopSpec,
    StateError,
    Step,
    StepContext,
    Topology,
    load_topology,
    object_schema,
    prose_digest,
)

WORK = "book/translating/"
#: a text of this many words or more returned as it was is not a translation (a name may be)
UNCHANGED_WORDS = 4
REVIEW_SCHEMA = object_schema(verdict={"type": "string", "enum": ["pass", "revise"]}, notes=TEXT)
#: the brief's fields a translated title page shows
FRONT_FIELDS = ("premise", "genre", "audience", "tone")
LABELS = "labels"


@dataclass(frozen=True)
class Part:
    """A part of the book to translate: its name (``front``, ``labels``, ``sections/<id>``,
    ``codex/<id>``), its source words, what it is, and its section (for a prompt's context)."""

    name: str
    source: dict[str, Any]
    what: str
    section: str | None = None


# ---------------------------------------------------------------------------- the parts


async def parts(context: StepContext, topology: Topology) -> list[Part]:
    """Every part of the book there is to translate, in reading order."""
    brief = context.brief
    front = {"title": topology.title}
    front |= {f: getattr(brief, f) for f in FRONT_FIELDS if getattr(brief, f)}
    blurb = (await context.get(FRONT_MATTER) or {}).get("blurb")
    if isinstance(blurb, str) and blurb.strip():
        front["blurb"] = blurb
    else:
        context.note("the book has no blurb yet: run this loop again after binding_run writes one")
    found = [
        Part("front", front, "the book's title page: its title, the author's brief and blurb"),
        Part(LABELS, Labels().to_dict(), "the words the book prints around the story (buttons, "
             "headings, the cue sheet's words); keep every {placeholder} as it is"),
    ]  # fmt: skip
    for section in sorted(topology.sections, key=lambda s: s.number):
        written = await context.get(SECTIONS + section.id)
        if written is None:
            raise context.fail(f"section {section.id!r} has no prose yet: run story_spark first")
        source = {
            "title": section.title,
            "prose": written["prose"],
            "choices": [choice.text for choice in section.choices],
        }
        caption = (await context.get(IMAGES + section.id) or {}).get("caption")
        if isinstance(caption, str) and caption.strip():
            source["caption"] = caption
        what = f"section {section.number}: its title, prose, the reader's choices"
        found.append(Part(f"sections/{section.id}", source, what, section.id))
    for key in await context.keys(CODEX):
        entry = await context.get(key)
        if entry is not None and isinstance(entry.get("term"), str):
            source = {"term": entry["term"], "text": str(entry.get("text", ""))}
            found.append(Part(f"codex/{key[len(CODEX) :]}", source, "an entry of the codex"))
    return found


def shape(source: Any) -> dict[str, Any]:
    """The JSON Schema of an answer of ``source``'s shape: the same keys, the same number of
    items, text for every text."""
    if isinstance(source, dict):
        return object_schema(**{key: shape(value) for key, value in source.items()})
    if isinstance(source, list):
        count = len(source)
        return {"type": "array", "items": TEXT, "minItems": count, "maxItems": count}
    return TEXT


def texts(source: Any, answer: Any, path: str = "") -> Iterator[tuple[str, str, str]]:
    """Every text of ``source`` with its place (``prose``, ``choices[1]``, ``brief.tone``) and
    the text of ``answer`` in that place."""
    if isinstance(source, dict):
        for key, value in source.items():
            yield from texts(value, answer[key], f"{path}.{key}" if path else key)
    elif isinstance(source, list):
        for index, (value, given) in enumerate(zip(source, answer, strict=True)):
            yield from texts(value, given, f"{path}[{index}]")
    else:
        yield path, str(source), answer if isinstance(answer, str) else ""


def put(answer: Any, path: list[str | int], text: str) -> Any:
    """``answer`` with ``text`` at ``path`` (keys and indexes)."""
    if not path:
        return text
    head, *rest = path
    if isinstance(answer, list) and isinstance(head, int):
        return [put(v, rest, text) if i == head else v for i, v in enumerate(answer)]
    return {k: put(v, rest, text) if k == head else v for k, v in answer.items()}


def _steps(path: str) -> list[str | int]:
    """``choices[1]`` → ``["choices", 1]``; ``brief.tone`` → ``["brief", "tone"]``."""
    steps: list[str | int] = []
    for part in path.split("."):
        name, _, index = part.partition("[")
        steps.append(name)
        if index:
            steps.append(int(index.rstrip("]")))
    return steps


def translation_fix(part: Part) -> Any:
    """The meaning check of a part's translation: no text left empty, none of four words or
    more (nor the whole part) returned unchanged, no label without its placeholders. Whatever
    still is, after the translator was asked again, keeps its source words and is marked."""

    def fix(answer: Any) -> tuple[dict[str, Any], list[str]]:
        pairs = list(texts(part.source, answer))
        dropped = [p for p, source, given in pairs if source.strip() and not given.strip()]
        same = [p for p, s, g in pairs if s.strip() and flat(s).casefold() == flat(g).casefold()]
        whole = bool(same) and len(same) == sum(1 for _, source, _ in pairs if source.strip())
        unchanged = same if whole else [p for p in same if _words(pairs, p) >= UNCHANGED_WORDS]
        broken: list[str] = []
        if part.name == LABELS:
            _, refused = Labels.read(answer)
            broken = [name for name in refused if name not in dropped + unchanged]
        marked = dropped + unchanged + broken
        repaired = answer
        for path in marked:
            repaired = put(repaired, _steps(path), _source_at(pairs, path))
        notes = noted(f"{part.name}: texts left empty", dropped)
        notes += noted(f"{part.name}: texts returned unchanged", unchanged)
        notes += noted(f"{part.name}: labels that lost their {{placeholders}}", broken)
        return {"translation": repaired, "untranslated": marked}, notes

    return fix


def _words(pairs: list[tuple[str, str, str]], path: str) -> int:
    return next(len(source.split()) for p, source, _ in pairs if p == path)


def _source_at(pairs: list[tuple[str, str, str]], path: str) -> str:
    return next(source for p, source, _ in pairs if p == path)


# ---------------------------------------------------------------------------- the steps


def language(context: StepContext) -> str:
    """The language the run translates into; the step fails in one line when it is not a
    language code, or is the book's own."""
    wanted = str(context.options["language"]).strip()
    try:
        Brief(language=wanted)
    except StateError as exc:
        raise context.fail(str(exc).replace("the brief's language", "--language")) from None
    if wanted.casefold() == context.brief.language.casefold():
        raise context.fail(f"the book is written in {wanted} already: name another language")
    return wanted


def _prompt(topology: Topology, part: Part, lang: str, source_lang: str) -> str:
    return (
        f"Translate {part.what} of the gamebook {topology.title!r} from {source_lang} into "
        f"{lang}. Translate every text, keeping its meaning, tone and point of view; a name "
        "may stay as it is. Answer with the same keys and as many items, each text "
        f"translated.\n\n{json.dumps(part.source, ensure_ascii=False, indent=1)}"
    )


async def translate(context: StepContext) -> None:
    lang = language(context)
    topology = await load_topology(context)
    work = f"{WORK}{lang}/"

    async def one(part: Part) -> None:
        if await context.made(work + part.name) is not None:
            return
        made = await context.structured(
            _prompt(topology, part, lang, context.brief.language),
            name="translation",
            schema=shape(part.source),
            fix=translation_fix(part),
            section=part.section,
        )
        await context.save(work + part.name, {"source": part.source, **made})

    await context.each(await parts(context, topology), one)


async def check_translation(context: StepContext) -> None:
    lang = language(context)
    topology = await load_topology(context)
    work, checked = f"{WORK}{lang}/", f"{WORK}{lang}/checked/"
    book = await parts(context, topology)
    if await context.made(TRANSLATIONS + lang) is None:
        await _check(context, topology, lang, book)
        await context.save(TRANSLATIONS + lang, await _edition(context, lang, book, checked))
    for key in await context.keys(work):
        await context.delete(key)
    codex = sum(part.name.startswith("codex/") for part in book)
    context.note(
        f"the {lang} translation: {len(topology.sections)} sections, {codex} codex entries; "
        f"binding_run writes book.{lang}.html, .md, .epub and .twee"
    )


async def _check(context: StepContext, topology: Topology, lang: str, book: list[Part]) -> None:
    """The gatekeeper's check of every part, each sent back once when it finds fault or the
    studio marked texts untranslated."""
    work, checked = f"{WORK}{lang}/", f"{WORK}{lang}/checked/"

    async def check(part: Part) -> None:
        if await context.made(checked + part.name) is not None:
            return
        first = await context.made(work + part.name)
        if first is None:
            raise context.fail(f"{part.name} has not been translated yet")
        made: dict[str, Any] = first
        found = made["untranslated"]
        said = f"\n\nThe studio found untranslated: {', '.join(found)}." if found else ""
        source = json.dumps(part.source, ensure_ascii=False, indent=1)
        translation = json.dumps(made["translation"], ensure_ascii=False, indent=1)
        prompt = (
            f"Check this translation of {part.what} into {lang} against its source: is any "
            f"text left untranslated, dropped, or returned unchanged; does it read as {lang}, "
            "with the source's meaning? Answer pass, or revise with notes saying what to "
            f"fix.\n\nSource:\n{source}\n\nTranslation:\n{translation}{said}"
        )
        verdict: dict[str, str] = await context.structured(
            prompt, name="translation_check", schema=REVIEW_SCHEMA, section=part.section
        )
        if verdict["verdict"] == "revise" or found:
            again = (
                f"{_prompt(topology, part, lang, context.brief.language)}\n\nYour translation "
                f"was:\n{translation}\n\nThe gatekeeper's notes:\n"
                f"{verdict['notes'].strip() or '(none)'}{said}"
            )
            made = await context.structured(
                again,
                name="translation",
                schema=shape(part.source),
                fix=translation_fix(part),
                role="translator",
                section=part.section,
            )
        if made["untranslated"]:
            left = ", ".join(made["untranslated"])
            context.repaired(f"{part.name} keeps its source words in: {left}")
        await context.save(checked + part.name, {"source": part.source, **made})

    await context.each(book, check)


async def _edition(
    context: StepContext, lang: str, book: list[Part], checked: str
) -> dict[str, Any]:
    """The translation document the binder reads (:mod:`questfoundry.kit` ``translated``)."""
    words: dict[str, Mapping[str, Any]] = {}
    for part in book:
        document = await context.get(checked + part.name)
        if document is None:
            raise context.fail(f"{part.name} has not been checked yet")
        words[part.name] = document["translation"]
    front = words["front"]
    sections, codex = {}, {}
    for part in book:
        folder, _, ident = part.name.partition("/")
        if folder == "sections":
            sections[ident] = {**words[part.name], "from": prose_digest(part.source["prose"])}
        elif folder == "codex":
            codex[ident] = dict(words[part.name])
    return {
        "lang": lang,
        "title": front["title"],
        "blurb": front.get("blurb", ""),
        "brief": {f: front[f] for f in FRONT_FIELDS if f in front},
        "labels": words[LABELS],
        "sections": sections,
        "codex": codex,
    }


CHECKING = "Answer with JSON only, matching the schema you are given."

TRANSLATION_PASS = LoopSpec(
    "translation_pass",
    ("translator", "gatekeeper"),
    "the book in another language (--language de): titles, prose, choices, codex, captions",
    (
        Step(
            "translate",
            "translator",
            "Translate faithfully and idiomatically. Answer with JSON only.",
            translate,
            reads=("topology", "sections", "codex", "front_matter"),
            writes=("translated_parts",),
        ),
        Step(
            "check_translation",
            "gatekeeper",
            CHECKING,
            check_translation,
            reads=("translated_parts",),
            writes=("translation",),
        ),
    ),
    options=(
        LoopOption(
            "language",
            "The language to translate the book into: a code such as de, fr or pt-BR.",
            required=True,
        ),
    ),
)
