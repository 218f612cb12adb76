"""Binding: the book as the state holds it, made into files.

``binding_run`` and ``questfoundry book export`` read the same state documents into one
:class:`~questfoundry.book.edition.Book` (:func:`book_keys`, then :func:`book_from_state`) and write
its files the same way (:func:`write_book_files`). Keys: ``book/images/<id>`` (by ``art_touch_up``),
``book/front_matter`` (the blurb, by ``binding_run``), ``book/brief`` (the author's brief),
``book/codex/<id>`` (by ``codex_expansion``), ``book/audio`` (the cue sheet, by ``audio_pass``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from questfoundry.book.audio import CueSheet
from questfoundry.book.codex import CodexEntry
from questfoundry.book.edition import Book, Picture
from questfoundry.book.images import image_problem
from questfoundry.book.model import Topology
from questfoundry.contracts.errors import StateError
from questfoundry.kit.loops import SECTIONS

SHOTS = "book/shots/"
IMAGES = "book/images/"
FRONT_MATTER = "book/front_matter"
BRIEF = "book/brief"
EXPORT = "book/export"
#: the codex's entries, ``book/codex/<id>``
CODEX = "book/codex/"
#: the cue sheet
AUDIO = "book/audio"
#: where the book's files go, under the project's root
FOLDER = "book"


def prose_digest(prose: str) -> str:
    """A short fingerprint of a section's prose: art made for other prose is left out."""
    return hashlib.sha256(prose.encode()).hexdigest()[:16]


def book_keys(topology: Topology, codex: Iterable[str] = ()) -> list[str]:
    """Every state key :func:`book_from_state` reads for ``topology``, given the ``codex`` keys the
    state lists (under :data:`CODEX`)."""
    per_section = [prefix + s.id for s in topology.sections for prefix in (SECTIONS, IMAGES)]
    return [*per_section, FRONT_MATTER, BRIEF, AUDIO, *codex]


def book_from_state(
    topology: Topology, documents: Mapping[str, dict[str, Any] | None]
) -> tuple[Book, list[str]]:
    """The book the state ``documents`` (by key, from :func:`book_keys`) make, and notes on the
    pictures left out: made for older prose, or whose bytes are not an image (their stored media
    type is never trusted). :class:`StateError` when a section has no prose yet."""
    prose: dict[str, str] = {}
    pictures: dict[str, Picture] = {}
    stale: list[str] = []
    notes: list[str] = []
    for section in topology.sections:
        written = documents.get(SECTIONS + section.id)
        if written is None or not isinstance(written.get("prose"), str):
            raise StateError(f"section {section.id!r} has no prose yet: run story_spark again")
        prose[section.id] = written["prose"]
        image = documents.get(IMAGES + section.id)
        if image is None or "data" not in image:
            continue
        if image.get("digest") != prose_digest(written["prose"]):
            stale.append(section.id)
            continue
        data, problem = _image_bytes(image["data"])
        if problem:
            notes.append(f"left out the image of {section.id!r}: {problem}")
        else:
            pictures[section.id] = Picture(data, _text(image.get("caption")))
    if stale:
        notes.insert(
            0,
            f"left out {len(stale)} images made for older prose (run art_touch_up again): "
            + ", ".join(stale),
        )
    codex, refused = _codex(documents)
    notes += refused
    cue_sheet, refused = _cue_sheet(topology, documents.get(AUDIO))
    notes += refused
    front = documents.get(FRONT_MATTER) or {}
    brief = {k: v for k, v in (documents.get(BRIEF) or {}).items() if isinstance(v, str)}
    book = Book(
        topology,
        prose,
        pictures,
        blurb=_text(front.get("blurb")),
        brief=brief,
        lang=brief.get("language") or "en",
        codex=codex,
        cue_sheet=cue_sheet,
    )
    return book, notes


def _cue_sheet(
    topology: Topology, document: dict[str, Any] | None
) -> tuple[CueSheet | None, list[str]]:
    """The cue sheet ``document`` holds, keeping the cues of sections the book has; notes on
    what was left out."""
    if document is None:
        return None, []
    try:
        sheet = CueSheet.from_dict(document)
    except StateError as exc:
        return None, [f"left out the cue sheet: {exc}"]
    gone = sorted(set(sheet.cues) - set(topology.ids))
    if not gone:
        return sheet, []
    kept = {ident: cues for ident, cues in sheet.cues.items() if ident not in gone}
    note = f"left out the cues of sections the book no longer has (run audio_pass again): {gone}"
    return CueSheet(kept, sheet.notes), [note]


def _codex(
    documents: Mapping[str, dict[str, Any] | None],
) -> tuple[tuple[CodexEntry, ...], list[str]]:
    """The codex entries among ``documents``, and notes on those left out as malformed."""
    entries, notes = [], []
    for key, document in documents.items():
        if key.startswith(CODEX) and document is not None:
            try:
                entries.append(CodexEntry.from_dict(key[len(CODEX) :], document))
            except StateError as exc:
                notes.append(f"left out a codex entry: {exc}")
    return tuple(entries), notes


def _image_bytes(value: Any) -> tuple[bytes, str | None]:
    """An image document's bytes, and why they are refused (None when they are an image)."""
    try:
        data = base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        return b"", "its data is not base64"
    return data, image_problem(data)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def write_book_files(folder: Path, files: Mapping[str, bytes]) -> list[Path]:
    """Write ``files`` (paths relative to ``folder``) each whole or not at all; their paths."""
    written = []
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_bytes(data)
        temporary.replace(path)
        written.append(path)
    return written
