"""The book as Twee 3, Twine's source format, and an author's Twine edits brought back.

Export: ``StoryTitle``, ``StoryData`` (the IFID, the start, story format Harlowe 3, Twine's
default) and one passage per section, named by its id, laid out by depth from the start: a
``## title`` line, the prose, then one ``[[choice->id]]`` link per line. Story text is written
so that Harlowe shows it as text: HTML's ``& < >`` and whatever would open a link, hook, macro,
variable, verbatim run or line-start markup become character references, which Harlowe hands to
the browser as the characters themselves. Nothing from a model becomes a tag or a macro.

Import (:func:`parse` then :func:`merge`): the file is read and checked whole — its passages,
links, names, the start — before anything is changed; what it changes (prose, titles, choices,
new sections, the book's title and start) comes back as :class:`Edits`. Exporting, importing
and exporting again gives the same file.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from questfoundry.book.edition import Book, joined, one_line, paragraphs
from questfoundry.book.model import MAX_SECTIONS, Choice, Section, Topology, slug, valid_id
from questfoundry.contracts.errors import StateError

FORMAT = "Harlowe"
FORMAT_VERSION = "3.3.9"
#: passages Twee gives a meaning of their own
TITLE, DATA = "StoryTitle", "StoryData"
#: tags that make a passage code (a story's script or style sheet): never imported
CODE_TAGS = frozenset({"script", "stylesheet"})
#: how many problems an error names
SHOWN = 3

_HEADER = re.compile(
    r"::\s*(?P<name>(?:\\.|[^\\\[\]{}])*?)\s*"
    r"(?:\[(?P<tags>(?:\\.|[^\\\]])*)\])?\s*(?P<meta>\{.*\})?\s*"
)
_LINK = re.compile(r"\[\[(.*?)\]\]")
_LINKS_ONLY = re.compile(r"(?:\s*\[\[.*?\]\])+\s*")
_HEADING = re.compile(r"#{1,6}[ \t]+(.*)")
#: what Harlowe would read as markup, anywhere in a line
_MARKUP = re.compile(r"[&<>\[\]|{}`]|\((?=[\w-]+\s*:)|[$_](?=[A-Za-z])")
#: what Harlowe would read as markup at the start of a line
_LINE_START = re.compile(r"^(?:[#*\-=:+>]|0(?=\.))")


class TweeError(StateError):
    """A Twee file that cannot be imported into the book; nothing was changed."""


@dataclass(frozen=True)
class Passage:
    name: str
    tags: tuple[str, ...]
    lines: tuple[str, ...]
    line: int


@dataclass(frozen=True)
class Story:
    """A Twee file as read: its title and start (None when it has none) and its passages."""

    title: str | None
    start: str | None
    passages: tuple[Passage, ...]
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True)
class Edits:
    """What an import changes: the new topology, the prose of the sections whose prose changed
    (by id), and a line per kind of change."""

    topology: Topology
    prose: Mapping[str, str]
    changes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------ export


def to_twee(book: Book) -> str:
    """The book as a Twee 3 file."""
    data = {
        "ifid": book.ident,
        "format": FORMAT,
        "format-version": FORMAT_VERSION,
        "start": book.start.id,
        "zoom": 1,
    }
    lines = [f":: {TITLE}", _story_title(book.title), "", f":: {DATA}", json.dumps(data, indent=2)]
    places = _layout(book)
    for page in book.pages:
        meta = json.dumps({"position": places[page.id], "size": "100,100"}, separators=(",", ":"))
        lines += ["", f":: {page.id} {meta}", f"## {escape(page.title)}"]
        for paragraph in page.paragraphs:
            lines += ["", escape(paragraph)]
        if page.turns:
            lines.append("")
        lines += [f"[[{escape(turn.text)}->{turn.id}]]" for turn in page.turns]
    return "\n".join(lines) + "\n"


def escape(text: str) -> str:
    """``text`` on one line, as Harlowe markup that shows exactly these characters."""
    flat = one_line(text)
    escaped = _MARKUP.sub(lambda m: _reference(m.group()[0]), flat)
    return _LINE_START.sub(lambda m: _reference(m.group()), escaped)


def _reference(character: str) -> str:
    """The character reference standing for ``character`` (named for HTML's own three)."""
    return _NAMED.get(character) or f"&#{ord(character)};"


_NAMED = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def _story_title(title: str) -> str:
    """The title as StoryTitle's plain text: one line that cannot pass for a passage header."""
    return f" {title}" if title.startswith("::") else title


def _layout(book: Book) -> dict[str, str]:
    """Where Twine draws each passage: a column per step from the start, a row per passage."""
    depth = {book.start.id: 0}
    order = [book.start.id]
    by_id = {page.id: page for page in book.pages}
    for ident in order:
        for turn in by_id[ident].turns:
            if turn.id not in depth:
                depth[turn.id] = depth[ident] + 1
                order.append(turn.id)
    last = max(depth.values()) + 1
    rows: dict[int, int] = {}
    places = {}
    for page in book.pages:
        column = depth.get(page.id, last)
        row = rows[column] = rows.get(column, -1) + 1
        places[page.id] = f"{100 + 150 * column},{100 + 150 * row}"
    return places


# ------------------------------------------------------------------------------------ import


def parse(text: str) -> Story:
    """The passages of a Twee 3 file; :class:`TweeError` when it has none or names one twice."""
    passages: list[Passage] = []
    current: tuple[str, tuple[str, ...], int] | None = None
    body: list[str] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("::"):
            if current is not None:
                passages.append(Passage(*current[:2], _trimmed(body), current[2]))
            header = _HEADER.fullmatch(line)
            if header is None or not header["name"]:
                problems.append(f"line {number}: a passage header without a name")
                current, body = None, []
                continue
            tags = tuple(_unescape(header["tags"] or "").split())
            current, body = (_unescape(header["name"]), tags, number), []
        elif current is not None:
            body.append(line.rstrip())
    if current is not None:
        passages.append(Passage(*current[:2], _trimmed(body), current[2]))
    names = [p.name for p in passages]
    problems += [
        f"two passages are named {n!r}" for n in sorted({n for n in names if names.count(n) > 1})
    ]
    if not passages:
        problems.append("it has no passage")
    _raise(problems)
    skipped = tuple(p.name for p in passages if CODE_TAGS & set(p.tags))
    special = {p.name: p for p in passages}
    named = (
        [line.strip() for line in special[TITLE].lines if line.strip()] if TITLE in special else []
    )
    title = named[0] if named else None
    start = _start(special.get(DATA))
    story = [p for p in passages if p.name not in (TITLE, DATA) and p.name not in skipped]
    return Story(title, start, tuple(story), skipped)


def _start(data: Passage | None) -> str | None:
    if data is None:
        return None
    try:
        value = json.loads("\n".join(data.lines) or "{}")
    except ValueError:
        raise TweeError(f"line {data.line}: StoryData is not JSON") from None
    start = value.get("start") if isinstance(value, dict) else None
    return start if isinstance(start, str) else None


def _trimmed(lines: list[str]) -> tuple[str, ...]:
    while lines and not lines[-1].strip():
        lines.pop()
    return tuple(lines)


def _unescape(text: str) -> str:
    """A Twee name or tag without its backslash escapes (``\\q`` is ``q``)."""
    return re.sub(r"\\(.)", r"\1", text)


def merge(topology: Topology, prose: Mapping[str, str], story: Story) -> Edits:
    """The book's ``topology`` and ``prose`` (by id) with the edits ``story`` carries, checked
    whole: :class:`TweeError` naming the problems, and nothing changed, when any is found."""
    problems: list[str] = []
    known = {s.id: s for s in topology.sections}
    ids = _ids(story, known, problems)
    named = set(ids.values())
    missing = [s for s in topology.ids if s not in named]
    if missing:
        problems.append(
            f"no passage for sections {_few(missing)} (an import does not delete sections)"
        )
    if len(ids) > MAX_SECTIONS:
        problems.append(f"{len(ids)} sections, more than a book may have ({MAX_SECTIONS})")
    start = topology.start if story.start is None else ids.get(story.start)
    if start is None:
        problems.append(f"StoryData's start {story.start!r} names no passage")
    sections, texts = [], {}
    for passage in story.passages:
        if passage.name not in ids:
            continue
        ident = ids[passage.name]
        title, words, choices = _read(passage, ids, problems)
        texts[ident] = words
        sections.append(_section(known.get(ident), ident, title, choices))
    _raise(problems)
    assert start is not None  # a start naming nothing was a problem above
    order = {ident: index for index, ident in enumerate(topology.ids)}
    sections.sort(key=lambda s: order.get(s.id, len(order)))
    title = topology.title if story.title is None else _kept(topology.title, story.title)
    merged = Topology(title, start, tuple(sections))
    try:
        Topology.from_dict(merged.to_dict())
    except StateError as exc:
        raise TweeError(str(exc)) from None
    changed = {
        ident: joined(words)
        for ident, words in texts.items()
        if ident not in known or paragraphs(prose.get(ident, "")) != words
    }
    return Edits(merged, changed, _changes(topology, merged, changed))


def _ids(story: Story, known: Mapping[str, Section], problems: list[str]) -> dict[str, str]:
    """Each passage's section id: its name when a section has it, else its name as a slug."""
    ids: dict[str, str] = {}
    for passage in story.passages:
        ident = passage.name if passage.name in known else slug(passage.name)
        try:
            valid_id(ident, "passage name")
        except StateError:
            problems.append(f"line {passage.line}: passage {passage.name!r} gives no valid id")
            continue
        if ident in ids.values() or (ident in known and ident != passage.name):
            problems.append(
                f"line {passage.line}: passage {passage.name!r} takes the id {ident!r} of another"
            )
            continue
        ids[passage.name] = ident
    return ids


def _read(
    passage: Passage, ids: Mapping[str, str], problems: list[str]
) -> tuple[str | None, tuple[str, ...], tuple[Choice, ...]]:
    """A passage's title (None when it has no heading), paragraphs and choices."""
    lines = list(passage.lines)
    while lines and not lines[0].strip():
        lines.pop(0)
    heading = _HEADING.fullmatch(lines[0].strip()) if lines else None
    title = html.unescape(heading[1]).strip() if heading else None
    blocks: list[list[str]] = [[]]
    choices: list[Choice] = []
    where = f"passage {passage.name!r}"
    for line in lines[1:] if heading else lines:
        if _LINKS_ONLY.fullmatch(line):
            choices += [_choice(link, ids, where, problems) for link in _LINK.findall(line)]
        elif "[[" in line:
            problems.append(f"{where}: a link inside the prose (put each choice on its own line)")
        elif line.strip():
            blocks[-1].append(line.strip())
        elif blocks[-1]:
            blocks.append([])
    words = tuple(html.unescape(" ".join(block)) for block in blocks if block)
    return title, tuple(one_line(w) for w in words), tuple(choices)


def _choice(link: str, ids: Mapping[str, str], where: str, problems: list[str]) -> Choice:
    """A link as a choice: ``text->target``, ``target<-text``, ``text|target`` or ``target``."""
    if "->" in link:
        text, _, target = link.rpartition("->")
    elif "<-" in link:
        target, _, text = link.partition("<-")
    elif "|" in link:
        text, _, target = link.rpartition("|")
    else:
        text = target = link
    if target.strip() not in ids:
        problems.append(f"{where}: a link to {target.strip()!r}, which is no passage")
        return Choice("", "")
    return Choice(one_line(html.unescape(text)), ids[target.strip()])


def _section(
    old: Section | None, ident: str, title: str | None, choices: tuple[Choice, ...]
) -> Section:
    """The section as the passage has it; what did not change is kept exactly as it was."""
    if old is None:
        return Section(ident, title or ident, "", choices)
    kept = tuple(
        next((o for o in old.choices if o.target == c.target and one_line(o.text) == c.text), c)
        for c in choices
    )
    named = old.title if title is None else _kept(old.title, title)
    return replace(old, title=named, choices=kept)


def _kept(old: str, new: str) -> str:
    """``old`` when ``new`` is the same words (as the files show them), else ``new``."""
    return old if one_line(old) == one_line(new) else new


def _changes(before: Topology, after: Topology, prose: Mapping[str, str]) -> list[str]:
    old = {s.id: s for s in before.sections}
    new = [s.id for s in after.sections if s.id not in old]
    retitled = [s.id for s in after.sections if s.id in old and s.title != old[s.id].title]
    rechosen = [s.id for s in after.sections if s.id in old and s.choices != old[s.id].choices]
    rewritten = [i for i in prose if i in old]
    changes = [f"title: {after.title}"] if after.title != before.title else []
    if after.start != before.start:
        changes.append(f"start: {after.start}")
    for what, which in (
        ("new sections", new),
        ("prose", rewritten),
        ("titles", retitled),
        ("choices", rechosen),
    ):
        if which:
            changes.append(f"{what} ({len(which)}): {_few(which)}")
    return changes


def _few(items: Sequence[str]) -> str:
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def _raise(problems: Sequence[str]) -> None:
    if problems:
        more = f" (and {len(problems) - SHOWN} more)" if len(problems) > SHOWN else ""
        raise TweeError("the Twee file cannot be imported: " + "; ".join(problems[:SHOWN]) + more)
