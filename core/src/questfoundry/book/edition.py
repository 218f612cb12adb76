"""What every file of the book is made from: a :class:`Book` and the :class:`Page` per section.

The HTML reader, the Markdown text, the EPUB and the Twee source all read the same pages, so
they agree on numbers, anchors, paragraphs and pictures. Room is left where later work goes: a
``Book`` carries its language and the words its files print (:class:`Labels`), so a translated
edition is another ``Book`` written as ``book.<lang>.html`` (:func:`file_name`); a page's
paragraphs come as runs with the codex's term links (:attr:`Page.runs`), and a section's audio
cues would join them there.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from questfoundry.book.codex import CodexEntry, Span, depths, linked
from questfoundry.book.images import EXTENSIONS, image_type
from questfoundry.book.model import Topology
from questfoundry.contracts.errors import StateError

#: the brief's fields a title page shows, in this order (others are the studio's own business)
BRIEF_FIELDS = ("premise", "genre", "audience", "tone")
#: a language tag as a ``lang`` attribute, a storage key and a file name may carry it
_LANG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,3}")
#: stands behind every book's identifier (a UUID derived from its title, as Twine's IFID is)
_NAMESPACE = uuid.UUID("6b1c2a52-31a4-4c55-9d0e-5f0f3a7c1e90")


@dataclass(frozen=True)
class Picture:
    """An illustration whose bytes are a PNG, JPEG, WebP or GIF (see :mod:`.images`)."""

    data: bytes
    caption: str = ""

    def __post_init__(self) -> None:
        if image_type(self.data) is None:
            raise ValueError("a picture must be a PNG, JPEG, WebP or GIF image")

    @property
    def media_type(self) -> str:
        return image_type(self.data) or ""

    @property
    def data_uri(self) -> str:
        return f"data:{self.media_type};base64,{base64.b64encode(self.data).decode()}"


@dataclass(frozen=True)
class Labels:
    """The words a book's files print around the story (one set per language)."""

    begin: str = "Begin reading"
    turn_to: str = "turn to {number}"
    the_end: str = "The end."
    start_again: str = "Start again"
    back: str = "Back"
    restart: str = "Restart"
    path: str = "Your path"
    reading: str = "Reading"
    choices: str = "Choices"
    keys: str = "Keys: 1 to {most} choose, B goes back."
    contents: str = "Contents"
    title_page: str = "Title page"
    codex: str = "Codex"
    brief: Mapping[str, str] = field(
        default_factory=lambda: {
            "premise": "Premise",
            "genre": "Genre",
            "audience": "Audience",
            "tone": "Tone",
        }
    )

    def turn(self, number: int) -> str:
        return self.turn_to.format(number=number)


@dataclass(frozen=True)
class Turn:
    """A choice as a reader meets it: its words and the number of the section it leads to."""

    text: str
    number: int
    id: str

    @property
    def anchor(self) -> str:
        return anchor(self.id)


@dataclass(frozen=True)
class Page:
    """One section as the files show it."""

    id: str
    number: int
    title: str
    paragraphs: tuple[str, ...]
    turns: tuple[Turn, ...]
    picture: Picture | None = None
    start: bool = False
    #: the paragraphs with the codex's terms linked (:func:`~.codex.linked`); none: no codex
    links: tuple[tuple[Span, ...], ...] = ()

    @property
    def anchor(self) -> str:
        return anchor(self.id)

    @property
    def runs(self) -> tuple[tuple[Span, ...], ...]:
        """Each paragraph as runs of text, a run linking a codex term carrying its entry."""
        return self.links or tuple(((p, None),) for p in self.paragraphs)

    @property
    def ending(self) -> bool:
        return not self.turns

    @property
    def image_path(self) -> str:
        """Where the picture goes beside a Markdown file or inside an EPUB."""
        kind = self.picture.media_type if self.picture else "image/png"
        return f"images/{self.id}{EXTENSIONS[kind]}"


@dataclass(frozen=True)
class Book:
    """Everything the files of a book hold: its topology, each section's prose and picture, the
    blurb, the brief's fields for the title page, its language, the words around the story and
    its codex (printed as an appendix; a term's first mention in a section links to its entry
    when the reader is deep enough, :mod:`.codex`).

    The topology is checked again as a state document is (valid ids, no broken link), so no file
    is ever written from one that could not have been read.
    """

    topology: Topology
    prose: Mapping[str, str]
    pictures: Mapping[str, Picture] = field(default_factory=dict)
    blurb: str = ""
    brief: Mapping[str, str] = field(default_factory=dict)
    lang: str = "en"
    labels: Labels = field(default_factory=Labels)
    codex: tuple[CodexEntry, ...] = ()

    def __post_init__(self) -> None:
        Topology.from_dict(self.topology.to_dict())
        if not _LANG.fullmatch(self.lang):
            raise StateError(f"the book's language {self.lang[:20]!r} is not a language tag")

    @property
    def title(self) -> str:
        return one_line(self.topology.title) or "Untitled"

    @property
    def ident(self) -> str:
        """The book's identifier, upper-case UUID (Twine's IFID, the EPUB's identifier): derived
        from its title, so every export of one book names the same story."""
        return str(uuid.uuid5(_NAMESPACE, self.title)).upper()

    @property
    def start(self) -> Page:
        return next(page for page in self.pages if page.start)

    @property
    def front(self) -> list[tuple[str, str]]:
        """The brief's fields a title page shows: (label, text), in :data:`BRIEF_FIELDS` order."""
        shown = [(self.labels.brief[f], one_line(str(self.brief.get(f, "")))) for f in BRIEF_FIELDS]
        return [(label, text) for label, text in shown if text]

    @property
    def appendix(self) -> list[CodexEntry]:
        """The codex entries in the order the appendix prints them: by term."""
        return sorted(self.codex, key=lambda entry: (entry.term.casefold(), entry.id))

    @cached_property
    def pages(self) -> list[Page]:
        """Every section as a page, by number (the order a printed gamebook has)."""
        topology = self.topology
        numbers = {s.id: s.number for s in topology.sections}
        depth = depths(topology) if self.codex else {}
        pages = []
        for section in sorted(topology.sections, key=lambda s: s.number):
            prose = paragraphs(self.prose.get(section.id, ""))
            pages.append(
                Page(
                    section.id,
                    section.number,
                    one_line(section.title) or f"{section.number}",
                    prose,
                    tuple(
                        Turn(one_line(c.text), numbers[c.target], c.target) for c in section.choices
                    ),
                    self.pictures.get(section.id),
                    section.id == topology.start,
                    linked(prose, self.codex, depth.get(section.id, 0)) if self.codex else (),
                )
            )
        return pages


def anchor(ident: str) -> str:
    """The anchor (HTML id, EPUB file stem) of the section ``ident``."""
    return f"sec-{ident}"


def file_name(extension: str, lang: str | None = None) -> str:
    """``book.html``, or ``book.<lang>.html`` for an edition in another language."""
    return f"book.{lang}.{extension}" if lang else f"book.{extension}"


def one_line(text: str) -> str:
    """``text`` with every run of white space (line breaks too) as one space, trimmed."""
    return " ".join(text.split())


def paragraphs(prose: str) -> tuple[str, ...]:
    """The paragraphs of ``prose`` (split at blank lines), each on one line."""
    return tuple(one_line(p) for p in re.split(r"\n\s*\n", prose) if p.strip())


def joined(parts: Sequence[str]) -> str:
    """Paragraphs as prose: separated by one blank line (the inverse of :func:`paragraphs`)."""
    return "\n\n".join(parts)
