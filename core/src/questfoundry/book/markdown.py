"""The book as Markdown (CommonMark): numbered sections, choices as "turn to N" links.

Every text from the story is escaped so that a Markdown renderer shows it as text: no raw
HTML, no link, image, code span or emphasis of its own, no block it could open at the start of
a line, no attribute block (Pandoc's ``{…}``). The only markup in the file is the book's own:
headings, its anchors (``<a id="sec-…">`` and ``<a id="codex-…">``, made of checked ids), links
to them and to the pictures written beside the file (``images/<id>.<ext>``).
"""

from __future__ import annotations

import re

from questfoundry.book.codex import Span
from questfoundry.book.edition import Book, Page

#: characters that may start or end inline markup (or an entity, an HTML tag, a Pandoc attribute)
_INLINE = re.compile(r"([\\`*_\[\]<>&~|{}#])")
#: what opens a block at the start of a line: a heading, quote, list item, break or setext line
_BLOCK = re.compile(r"^(\d*)([-+=:>.)])")
#: what :data:`_INLINE` puts in place of what it matched: the character, backslashed
_ESCAPE = r"\\\1"


def to_markdown(book: Book) -> str:
    """The whole book as one Markdown text; pictures are linked at :attr:`Page.image_path`."""
    labels = book.labels
    lines = [f"# {text(book.title)}", ""]
    if book.blurb:
        lines += [f"*{text(book.blurb)}*", ""]
    lines += [f"- **{text(label)}:** {text(value)}" for label, value in book.front]
    if book.front:
        lines.append("")
    lines += [f"[{text(labels.begin)}](#{book.start.anchor})", ""]
    for page in book.pages:
        lines += _page(book, page)
    if book.codex:
        lines += [f"## {text(labels.codex)}", ""]
        for entry in book.appendix:
            lines += [f'<a id="{entry.anchor}"></a>', "", f"**{text(entry.term)}**", ""]
            lines += [text(entry.text), ""]
    if book.cued:
        lines += _cue_sheet(book)
    return "\n".join(lines)


def _cue_sheet(book: Book) -> list[str]:
    """The book's notes: the cue sheet, section by section."""
    labels = book.labels
    lines = [f"## {text(labels.cue_sheet)}", ""]
    if book.cue_sheet is not None and book.cue_sheet.notes:
        lines += [f"*{text(labels.production)}:* {text(book.cue_sheet.notes)}", ""]
    for page in book.cued:
        lines += [f"**[{page.number}](#{page.anchor}). {text(page.title)}**", ""]
        for cue in page.cues:
            note = f" — *{text(cue.note)}*" if cue.note else ""
            kind, where = labels.cue_kinds[cue.kind], labels.placed(cue)
            lines.append(f"- {text(kind)}: {text(cue.sound)} ({text(where)}){note}")
        lines.append("")
    return lines


def _page(book: Book, page: Page) -> list[str]:
    labels = book.labels
    lines = [f'<a id="{page.anchor}"></a>', "", f"## {page.number}. {text(page.title)}", ""]
    if page.picture is not None:
        lines += [f"![{text(page.picture.caption)}]({page.image_path})", ""]
    for run in page.runs:
        lines += [_linked(run), ""]
    lines += [
        f"- [{text(turn.text)}](#{turn.anchor}) — {text(labels.turn(turn.number))}"
        for turn in page.turns
    ]
    if page.ending:
        lines.append(f"*{text(labels.the_end)}* [{text(labels.start_again)}](#{book.start.anchor})")
    lines.append("")
    return lines


def _linked(run: tuple[Span, ...]) -> str:
    """A paragraph's runs on one line, each shown as exactly its characters, a codex term as a
    link to its entry's anchor."""
    shown = "".join(
        f"[{_INLINE.sub(_ESCAPE, part)}](#{entry.anchor})" if entry else _INLINE.sub(_ESCAPE, part)
        for part, entry in run
    )
    return _BLOCK.sub(r"\1\\\2", " ".join(shown.split()))


def text(value: str) -> str:
    """``value`` on one line, shown by a Markdown renderer as exactly these characters."""
    return _linked(((value, None),))
