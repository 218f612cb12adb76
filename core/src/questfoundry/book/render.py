"""The book as files: one self-contained HTML page and a Markdown text.

The HTML needs nothing else: its style is inline, its images are ``data:`` URIs, it loads no
script, font or stylesheet, and every choice is a link to its section's anchor. The Markdown
links choices the same way and shows images from files written beside it.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from questfoundry.book.model import Section, Topology


@dataclass(frozen=True)
class Picture:
    """An illustration: media type, base64 data, caption."""

    mime: str
    data: str
    caption: str


@dataclass(frozen=True)
class Book:
    """Everything the binder puts in the files."""

    topology: Topology
    blurb: str
    prose: Mapping[str, str]
    pictures: Mapping[str, Picture]


def anchor(ident: str) -> str:
    """The anchor of a section (ids are slugs, so it is safe in HTML and Markdown)."""
    return f"sec-{ident}"


STYLE = """
body { font: 18px/1.6 Georgia, serif; max-width: 40em; margin: 2em auto; padding: 0 1em;
       color: #222; background: #fdfbf7; }
header { text-align: center; margin-bottom: 3em; }
section { border-top: 1px solid #ddd; padding: 2em 0; }
figure { margin: 1em 0; text-align: center; }
figure img { max-width: 100%; image-rendering: auto; min-width: 8em; }
figcaption { font-style: italic; color: #666; }
ul.choices { list-style: none; padding: 0; }
ul.choices li { margin: .4em 0; }
ul.choices a { text-decoration: none; }
ul.choices a::before { content: "→ "; }
.ending { font-style: italic; }
"""


def to_html(book: Book) -> str:
    """The whole book as one HTML document."""
    topology = book.topology
    title = html.escape(topology.title)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title><style>{STYLE}</style></head>",
        "<body>",
        f"<header><h1>{title}</h1>",
        f"<p>{html.escape(book.blurb)}</p>" if book.blurb else "",
        f'<p><a href="#{anchor(topology.start)}">Begin reading</a></p></header>',
    ]
    for section in topology.sections:
        parts.append(_html_section(book, section))
    parts += ["</body>", "</html>", ""]
    return "\n".join(part for part in parts if part)


def _html_section(book: Book, section: Section) -> str:
    lines = [f'<section id="{anchor(section.id)}">', f"<h2>{html.escape(section.title)}</h2>"]
    picture = book.pictures.get(section.id)
    if picture is not None:
        lines.append(
            f'<figure><img src="data:{picture.mime};base64,{picture.data}" '
            f'alt="{html.escape(picture.caption)}">'
            f"<figcaption>{html.escape(picture.caption)}</figcaption></figure>"
        )
    lines += [f"<p>{html.escape(p)}</p>" for p in _paragraphs(book.prose.get(section.id, ""))]
    if section.choices:
        lines.append('<ul class="choices">')
        lines += [
            f'<li><a href="#{anchor(c.target)}">{html.escape(c.text)}</a></li>'
            for c in section.choices
        ]
        lines.append("</ul>")
    else:
        start = anchor(book.topology.start)
        lines.append(f'<p class="ending">The end. <a href="#{start}">Start again</a></p>')
    lines.append("</section>")
    return "\n".join(lines)


def to_markdown(book: Book, image_paths: Mapping[str, str]) -> str:
    """The book as Markdown; ``image_paths`` maps section ids to image files (relative)."""
    topology = book.topology
    lines = [f"# {_md_line(topology.title)}", ""]
    if book.blurb:
        lines += [_md_line(book.blurb), ""]
    lines += [f"[Begin reading](#{anchor(topology.start)})", ""]
    for section in topology.sections:
        lines += [f'<a id="{anchor(section.id)}"></a>', "", f"## {_md_line(section.title)}", ""]
        picture = book.pictures.get(section.id)
        if picture is not None and section.id in image_paths:
            lines += [f"![{_md_text(picture.caption)}]({image_paths[section.id]})", ""]
        for paragraph in _paragraphs(book.prose.get(section.id, "")):
            lines += [paragraph, ""]
        if section.choices:
            lines += [f"- [{_md_text(c.text)}](#{anchor(c.target)})" for c in section.choices]
        else:
            lines.append(f"*The end.* [Start again](#{anchor(topology.start)})")
        lines.append("")
    return "\n".join(lines)


def _paragraphs(prose: str) -> Sequence[str]:
    return [" ".join(p.split()) for p in prose.split("\n\n") if p.strip()]


def _md_line(text: str) -> str:
    """``text`` on one line, so it cannot end a heading or a list item early."""
    return " ".join(text.split())


def _md_text(text: str) -> str:
    """``text`` on one line and safe inside a Markdown link's brackets."""
    return _md_line(text).replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
