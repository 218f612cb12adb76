"""A translated edition: the book in another language, from what ``translation_pass`` made.

``book/translations/<lang>`` (:data:`TRANSLATIONS`) holds one language's words::

    {"lang": "de", "title": …, "blurb": …, "brief": {"premise": …, …},
     "labels": {…},                      # the words around the story, shaped as Labels.to_dict()
     "sections": {<id>: {"title": …, "prose": …, "choices": [… one per choice, in order],
                         "caption": …, "from": <digest of the prose it was made from>}},
     "codex": {<id>: {"term": …, "text": …}}}

:func:`translated` makes the book's edition in that language: the same sections, ids, numbers,
links, pictures, codex depths and cue sheet, with the translated words. What the translation
lacks or holds in a shape it cannot use stays in the book's own language, and the notes say so,
as they do for sections translated from prose that has changed since.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from questfoundry.book.codex import CodexEntry
from questfoundry.book.edition import BRIEF_FIELDS, Book, Labels, Picture
from questfoundry.book.model import Choice, Section
from questfoundry.contracts.errors import StateError
from questfoundry.kit.bindery import prose_digest

TRANSLATIONS = "book/translations/"
#: a note names at most this many sections
SHOWN = 8


def translated(book: Book, document: Mapping[str, Any]) -> tuple[Book, list[str]]:
    """``book`` in the language of the translation ``document``, and notes on what stayed in
    the book's own language; :class:`StateError` (one line) when ``document`` names no
    language tag."""
    lang = document.get("lang") if isinstance(document, Mapping) else None
    if not isinstance(lang, str):
        raise StateError("a translation must name its language")
    given = _mapping(document.get("sections"))
    sections, prose, pictures = [], dict(book.prose), dict(book.pictures)
    missing, stale, unmatched = [], [], []
    for section in book.topology.sections:
        words = _mapping(given.get(section.id))
        if not words:
            missing.append(section.number)
            sections.append(section)
            continue
        if words.get("from") != prose_digest(book.prose.get(section.id, "")):
            stale.append(section.number)
        prose[section.id] = _text(words.get("prose"), prose.get(section.id, ""))
        choices = words.get("choices")
        if not isinstance(choices, list) or len(choices) != len(section.choices):
            unmatched.append(section.number)
            choices = [c.text for c in section.choices]
        sections.append(_section(section, words, choices))
        picture = pictures.get(section.id)
        if picture is not None:
            pictures[section.id] = Picture(
                picture.data, _text(words.get("caption"), picture.caption)
            )
    topology = replace(
        book.topology,
        title=_text(document.get("title"), book.topology.title),
        sections=tuple(sections),
    )
    labels, refused = Labels.read(_mapping(document.get("labels")))
    brief = _mapping(document.get("brief"))
    ours = {"title": book.topology.title, "blurb": book.blurb, **book.brief}
    theirs = {"title": document.get("title"), "blurb": document.get("blurb"), **brief}
    kept = [
        name
        for name in ("title", "blurb", *BRIEF_FIELDS)
        if str(ours.get(name, "")).strip() and not _text(theirs.get(name), "")
    ]
    edition = replace(
        book,
        topology=topology,
        prose=prose,
        pictures=pictures,
        blurb=_text(document.get("blurb"), book.blurb),
        brief={f: _text(brief.get(f), str(book.brief.get(f, ""))) for f in BRIEF_FIELDS},
        lang=lang,
        labels=labels,
        codex=_codex(book.codex, _mapping(document.get("codex"))),
    )
    notes = [
        f"the {lang} edition {what}: {_numbers(found)}"
        for what, found in (
            ("keeps untranslated the sections it lacks", missing),
            ("has sections translated from older prose (run translation_pass again)", stale),
            ("keeps the choices untranslated where their number changed", unmatched),
        )
        if found
    ]
    if kept:
        notes.append(f"the {lang} edition keeps untranslated its {', '.join(kept)}")
    if refused:
        notes.append(f"the {lang} edition keeps {len(refused)} of its labels untranslated")
    return edition, notes


def _section(section: Section, words: Mapping[str, Any], choices: list[Any]) -> Section:
    return replace(
        section,
        title=_text(words.get("title"), section.title),
        choices=tuple(
            Choice(_text(text, choice.text), choice.target)
            for text, choice in zip(choices, section.choices, strict=True)
        ),
    )


def _codex(entries: tuple[CodexEntry, ...], given: Mapping[str, Any]) -> tuple[CodexEntry, ...]:
    """The codex entries with their translated term and text (their depth as it was)."""
    made = []
    for entry in entries:
        words = _mapping(given.get(entry.id))
        term = " ".join(_text(words.get("term"), entry.term).split())
        made.append(replace(entry, term=term, text=_text(words.get("text"), entry.text)))
    return tuple(made)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any, otherwise: str) -> str:
    """``value`` when it is text with something in it, else ``otherwise``."""
    return value.strip() if isinstance(value, str) and value.strip() else otherwise


def _numbers(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:SHOWN])
    return shown + (f" and {len(numbers) - SHOWN} more" if len(numbers) > SHOWN else "")
