"""``binding_run``: the book binder writes the front matter and binds the book into files.

It reads what ``story_spark`` (and, when it ran, ``art_touch_up``) left in the state and writes
``book/book.html`` (self-contained), ``book/book.md`` and the images the Markdown shows, under the
project's root (the folder holding ``.questfoundry``). State: ``book/front_matter``,
``book/export`` (where the files are).
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

from questfoundry.builtins.loops.art_touch_up import IMAGES, digest
from questfoundry.kit import (
    SECTIONS,
    TEXT,
    Book,
    LoopSpec,
    Picture,
    Step,
    StepContext,
    load_topology,
    obj,
    to_html,
    to_markdown,
)

FRONT_MATTER = "book/front_matter"
EXPORT = "book/export"
FOLDER = "book"
FRONT_SCHEMA = obj(blurb=TEXT)
EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp"}


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
    prose: dict[str, str] = {}
    pictures: dict[str, Picture] = {}
    stale = []
    for section in topology.sections:
        written = await context.get(SECTIONS + section.id)
        if written is None:
            raise context.fail(f"section {section.id!r} has no prose yet: run story_spark again")
        prose[section.id] = written["prose"]
        image = await context.get(IMAGES + section.id)
        if image is not None and image.get("digest") == digest(written["prose"]):
            pictures[section.id] = Picture(image["mime"], image["data"], image["caption"])
        elif image is not None:
            stale.append(section.id)
    if stale:
        context.repaired(
            f"left out {len(stale)} images made for older prose (run art_touch_up again): "
            + ", ".join(stale)
        )
    front = await context.get(FRONT_MATTER) or {}
    book = Book(topology, front.get("blurb", ""), prose, pictures)
    folder = context.project_root / FOLDER
    paths = await asyncio.to_thread(_write, folder, book)
    for name, path in paths.items():
        context.output(name, str(path))
    await context.save(EXPORT, {k: str(v) for k, v in paths.items()} | {"images": len(pictures)})


def _write(folder: Path, book: Book) -> dict[str, Path]:
    """Write the HTML, the Markdown and its image files; the paths of the two books."""
    images = folder / "images"
    relative: dict[str, str] = {}
    for ident, picture in book.pictures.items():
        images.mkdir(parents=True, exist_ok=True)
        name = ident + EXTENSIONS.get(picture.mime, ".png")
        (images / name).write_bytes(base64.b64decode(picture.data))
        relative[ident] = f"images/{name}"
    folder.mkdir(parents=True, exist_ok=True)
    html, markdown = folder / "book.html", folder / "book.md"
    _replace(html, to_html(book))
    _replace(markdown, to_markdown(book, relative))
    return {"html": html, "markdown": markdown}


def _replace(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all (a temporary file renamed over it)."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


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
            reads=("topology", "sections", "images", "front_matter"),
            writes=("book",),
        ),
    ),
)
