"""What every file of the book is made from: a :class:`Book` and the :class:`Page` per section.

The HTML reader, the Markdown text, the EPUB and the Twee source all read the same pages, so
they agree on numbers, anchors, paragraphs and pictures. Room is left where later work goes: a
``Book`` carries its language and the words its files print (:class:`Labels`), so a translated
edition is another ``Book`` written as ``book.<lang>.html`` (:func:`file_name`); a page's
paragraphs come as runs with the codex's term links (:attr:`Page.runs`), and its audio cues
(:attr:`Page.cues`) come from the book's cue sheet.
"""

from __future__ import annotations

import base64
import re
import string
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

from questfoundry.book.audio import Cue, CueSheet
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
    cues: str = "Audio cues"
    cue_sheet: str = "Cue sheet"
    production: str = "Production notes"
    brief: Mapping[str, str] = field(
        default_factory=lambda: {
            "premise": "Premise",
            "genre": "Genre",
            "audience": "Audience",
            "tone": "Tone",
        }
    )
    cue_kinds: Mapping[str, str] = field(
        default_factory=lambda: {"ambience": "Ambience", "music": "Music", "effect": "Effect"}
    )
    placements: Mapping[str, str] = field(
        default_factory=lambda: {
            "opening": "at the opening",
            "throughout": "throughout",
            "moment": "on “{moment}”",
            "close": "at the close",
        }
    )

    def turn(self, number: int) -> str:
        return self.turn_to.format(number=number)

    def placed(self, cue: Cue) -> str:
        """Where ``cue`` plays, in these words."""
        return self.placements[cue.placement].format(moment=cue.moment)

    def to_dict(self) -> dict[str, Any]:
        """Every label by name (a group of them, like ``brief``, as a mapping of its own)."""
        return asdict(self)

    @classmethod
    def read(cls, data: Mapping[str, Any]) -> tuple[Labels, list[str]]:
        """The labels ``data`` holds (shaped as :meth:`to_dict`, a translation's words): each
        missing, empty, not text, or not keeping its placeholders (``{number}``, ``{most}``,
        ``{moment}``) exactly stays as it is here, and is named in the notes."""
        given = data if isinstance(data, Mapping) else {}
        refused: list[str] = []
        kept: dict[str, Any] = {}
        for name, default in cls().to_dict().items():
            if isinstance(default, dict):
                found = given.get(name)
                group = found if isinstance(found, Mapping) else {}
                kept[name] = {
                    key: _label(group.get(key), text, f"{name}.{key}", refused)
                    for key, text in default.items()
                }
            else:
                kept[name] = _label(given.get(name), default, name, refused)
        return cls(**kept), refused


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
    #: the section's audio cues, from the book's cue sheet
    cues: tuple[Cue, ...] = ()

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
    blurb, the brief's fields for the title page, its language, the words around the story, its
    codex (printed as an appendix; a term's first mention in a section links to its entry when
    the reader is deep enough, :mod:`.codex`) and its cue sheet (printed in its notes, each
    section's cues beside it, :mod:`.audio`).

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
    cue_sheet: CueSheet | None = None

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
                    self.cue_sheet.cues.get(section.id, ()) if self.cue_sheet else (),
                )
            )
        return pages

    @property
    def cued(self) -> list[Page]:
        """The pages with audio cues, by number: the cue sheet the notes print."""
        return [page for page in self.pages if page.cues]


def _label(given: Any, default: str, name: str, refused: list[str]) -> str:
    """``given`` on one line when it is a label that can stand for ``default``, else
    ``default`` (and ``name`` joins ``refused``)."""
    text = one_line(given) if isinstance(given, str) else ""
    if text and _placeholders(text) == _placeholders(default):
        return text
    refused.append(name)
    return default


def _placeholders(text: str) -> list[str] | None:
    """The ``{name}`` fields of ``text`` in order, None when it is not a plain format string
    (a conversion, a format spec or a stray brace)."""
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError:
        return None
    fields = [(name, spec, conversion) for _, name, spec, conversion in parts if name is not None]
    if any(spec or conversion or not name.isidentifier() for name, spec, conversion in fields):
        return None
    return sorted(name for name, _, _ in fields)


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
