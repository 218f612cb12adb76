"""The book as an EPUB 3 file for e-readers, packaged by ebooklib.

A title page, then one XHTML document per section in number order (a printed gamebook's order),
each choice a link to its section's document with "turn to N" beside it, the pictures inside,
and the codex when the book has one (its terms linked from the prose as the reader's are).
The navigation lists the title page and every section by number only, so it spoils nothing.
Each document's body comes from an autoescaping template; ebooklib parses it and writes the
XHTML, the package document, the navigation document and the NCX.
"""

from __future__ import annotations

import io
from datetime import datetime, timezone

from ebooklib import epub

from questfoundry.book.edition import Book
from questfoundry.book.markup import asset, environment

TITLE_PAGE = "title.xhtml"
#: the codex appendix, after the last section (only when the book has a codex)
CODEX = "codex.xhtml"
#: the notes (the cue sheet), last (only when some section has audio cues)
NOTES = "notes.xhtml"
STYLE = "style/book.css"


def to_epub(book: Book, *, modified: datetime | None = None) -> bytes:
    """The whole book as the bytes of an EPUB 3 file; ``modified`` is its ``dcterms:modified``
    (default: now)."""
    packaged = epub.EpubBook()
    packaged.set_identifier(f"urn:uuid:{book.ident.lower()}")
    packaged.set_title(book.title)
    packaged.set_language(book.lang)
    style = epub.EpubItem(
        uid="style", file_name=STYLE, media_type="text/css", content=str(asset("epub.css"))
    )
    packaged.add_item(style)
    documents = [_document(book, "title-page", TITLE_PAGE, book.title, "epub-title.html", {})]
    for page in book.pages:
        name = f"{page.anchor}.xhtml"
        documents.append(
            _document(
                book,
                page.anchor,
                name,
                str(page.number),
                "epub-section.html",
                {"page": page, "codex_file": CODEX},
            )
        )
        if page.picture is not None:
            packaged.add_item(
                epub.EpubImage(
                    uid=f"img-{page.id}",
                    file_name=page.image_path,
                    media_type=page.picture.media_type,
                    content=page.picture.data,
                )
            )
    if book.codex:
        documents.append(_document(book, "codex", CODEX, book.labels.codex, "epub-codex.html", {}))
    if book.cued:
        labels = book.labels
        documents.append(_document(book, "notes", NOTES, labels.cue_sheet, "epub-notes.html", {}))
    for document in documents:
        document.add_item(style)
        packaged.add_item(document)
    packaged.toc = [epub.Link(TITLE_PAGE, book.labels.title_page, "toc-title")] + [
        epub.Link(d.file_name, d.title, f"toc-{d.id}") for d in documents[1:]
    ]
    packaged.add_item(epub.EpubNcx())
    packaged.add_item(epub.EpubNav(title=book.labels.contents))
    packaged.spine = [*documents, "nav"]
    out = io.BytesIO()
    when = modified or datetime.now(timezone.utc)
    epub.write_epub(out, packaged, {"mtime": when, "raise_exceptions": True, "epub3_pages": False})
    return out.getvalue()


def _document(
    book: Book, uid: str, name: str, title: str, template: str, values: dict[str, object]
) -> epub.EpubHtml:
    body = environment().get_template(template).render(book=book, labels=book.labels, **values)
    return epub.EpubHtml(uid=uid, file_name=name, title=title, lang=book.lang, content=body)
