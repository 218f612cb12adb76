"""``binding_run``: the book binder writes the front matter and binds the book into files.

It reads what ``story_spark`` (and, when they ran, ``art_touch_up`` and ``codex_expansion``) left
in the state and writes, under the project's root (the folder holding ``.questfoundry``),
``book/book.html`` (the reader, self-contained), ``book/book.md`` with the pictures it shows in
``book/images/``, ``book/book.epub`` and ``book/book.twee``; the codex is an appendix of the first
three (the Twee source an author edits keeps to the story), and the cue sheet ``audio_pass``
made is printed in their notes (the HTML shows each section's cues beside it, collapsed). Each
language ``translation_pass`` carried the book into is an edition of its own:
``book/book.<lang>.html``, ``.md``, ``.epub`` and ``.twee``. A picture whose bytes are not a
PNG, JPEG, WebP or GIF is left out, said in the report. State: ``book/front_matter``,
``book/export`` (where the files are).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from questfoundry.kit import (
    CODEX,
    EXPORT,
    FOLDER,
    FORMATS,
    FRONT_MATTER,
    TEXT,
    TRANSLATIONS,
    Book,
    LoopSpec,
    StateError,
    Step,
    StepContext,
    book_files,
    book_from_state,
    book_keys,
    figures,
    load_topology,
    object_schema,
    translated,
    write_book_files,
)

FRONT_SCHEMA = object_schema(blurb=TEXT)


async def front_matter(context: StepContext) -> None:
    if await context.made(FRONT_MATTER) is not None:
        return
    topology = await load_topology(context)
    summaries = "\n".join(f"- {s.title}: {s.summary}" for s in topology.sections)
    prompt = (
        f"Write the back-cover blurb of the gamebook {topology.title!r} in two or three "
        f"sentences, without spoiling its endings.\n\nIts sections:\n{summaries}"
    )
    answer: dict[str, str] = await context.structured(
        prompt, name="front_matter", schema=FRONT_SCHEMA
    )
    await context.save(FRONT_MATTER, {"blurb": answer["blurb"].strip()})


async def bind(context: StepContext) -> None:
    topology = await load_topology(context)
    context.note("the book: " + "; ".join(figures(topology).lines()))
    keys = book_keys(topology, await context.keys(CODEX))
    documents = {key: await context.get(key) for key in keys}
    book, notes = book_from_state(topology, documents)
    editions = []
    for key in await context.keys(TRANSLATIONS):
        try:
            edition, more = translated(book, await context.get(key) or {})
        except StateError as exc:
            notes.append(f"left out the edition at {key}: {exc}")
            continue
        editions.append(edition)
        notes += more
    for note in notes:
        context.repaired(note)
    folder = context.project_root / FOLDER
    outputs = await asyncio.to_thread(_write, folder, book)
    for edition in editions:
        outputs |= await asyncio.to_thread(_write, folder, edition, True)
    for name, path in outputs.items():
        context.output(name, path)
    await context.save(EXPORT, outputs | {"images": len(book.pictures)})


def _write(folder: Path, book: Book, edition: bool = False) -> dict[str, str]:
    """Every format's files in ``folder``; where each main file is, by the report's name (an
    edition's names say its language: ``html (de)``)."""
    return {
        f"{form.output} ({book.lang})" if edition else form.output: str(
            write_book_files(folder, book_files(book, kind, edition=edition))[0]
        )
        for kind, form in FORMATS.items()
    }


BINDING_RUN = LoopSpec(
    "binding_run",
    ("book_binder", "gatekeeper"),
    "export a view of the book",
    (
        Step(
            "front_matter",
            "book_binder",
            "Answer with JSON only, matching the schema you are given.",
            front_matter,
            reads=("topology",),
            writes=("front_matter",),
        ),
        Step(
            "bind",
            "book_binder",
            "",
            bind,
            reads=(
                "topology",
                "sections",
                "images",
                "front_matter",
                "codex",
                "audio",
                "translation",
            ),
            writes=("book",),
        ),
    ),
)
