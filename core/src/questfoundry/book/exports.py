"""The formats a book is written in, and the files each one makes.

:func:`book_files` is pure: it returns each file's path (relative to the folder the book goes in)
and bytes, the main file first, so the binder and ``questfoundry book export`` write the same
files the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from questfoundry.book.edition import Book, file_name
from questfoundry.book.epub import to_epub
from questfoundry.book.html import to_html
from questfoundry.book.markdown import to_markdown
from questfoundry.book.twee import to_twee


@dataclass(frozen=True)
class Format:
    """A format: the report's name for its file, its extension, how a book becomes its bytes,
    and whether its pictures are files beside it (Markdown) rather than inside it."""

    output: str
    extension: str
    make: Callable[[Book], bytes]
    pictures_beside: bool = False


def _text(make: Callable[[Book], str]) -> Callable[[Book], bytes]:
    return lambda book: make(book).encode("utf-8")


#: every format by the name ``--format`` takes, in the order the binder writes them
FORMATS = {
    "html": Format("html", "html", _text(to_html)),
    "md": Format("markdown", "md", _text(to_markdown), pictures_beside=True),
    "epub": Format("epub", "epub", to_epub),
    "twee": Format("twee", "twee", _text(to_twee)),
}


def book_files(
    book: Book, kind: str, name: str | None = None, *, edition: bool = False
) -> dict[str, bytes]:
    """The files of ``book`` as ``kind`` (a key of :data:`FORMATS`): the main one, named
    ``name`` (default ``book.<extension>``; an ``edition`` in another language,
    ``book.<lang>.<extension>``), then the pictures it shows from beside it."""
    chosen = FORMATS[kind]
    made = {name or file_name(chosen.extension, book.lang if edition else None): chosen.make(book)}
    if chosen.pictures_beside:
        made |= {p.image_path: p.picture.data for p in book.pages if p.picture is not None}
    return made
