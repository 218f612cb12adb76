"""Books for testing the book's files and readers: a small sound one, a branching one of any
size (the studio's own shape), and one whose every text is hostile — script tags, event
handlers, ``javascript:`` links, closing tags, Markdown, Twee and Harlowe markup — with pictures
of each kind a book may hold and an SVG that none may."""

from __future__ import annotations

import base64
import struct
import zlib

from questfoundry.book.edition import Book, Picture
from questfoundry.book.model import Choice, Section, Topology
from questfoundry.book.shape import Shape

#: what a hostile model or state file writes in every text field
HOSTILE = (
    '<script>document.title="PWNED"</script>',
    '"><img src=x onerror="document.title=\'PWNED\'">',
    "</section></main><script>alert(1)</script>",
    "[click](javascript:alert(1)) <javascript:alert(1)> ![x](javascript:alert(2))",
    "<svg onload=alert(1)> &lt;b&gt; {onclick=alert(1)} `code` *em* _em_",
    "[[Escape->nowhere]] :: StoryData (print: '<script>') $power _temp ## Heading",
    "# not a heading\n\n- not a list\n\n12. not a list either\n\n> not a quote",
)


def png(width: int = 3, height: int = 2, seed: int = 7) -> bytes:
    """A real PNG of ``width`` x ``height`` pixels."""
    row = b"\x00" + bytes([seed % 256, 90, 60]) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def block(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    return (
        b"\x89PNG\r\n\x1a\n"
        + block(b"IHDR", header)
        + block(b"IDAT", zlib.compress(row * height))
        + block(b"IEND", b"")
    )


JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwcKDcp"
    "LDAxNDQ0Hyc5PTgyPC4zNDL/wAALCAABAAEBAREA/8QAFAABAAAAAAAAAAAAAAAAAAAACf/EABQQAQAAAAAAAAAAAAAAAAAA"
    "AAD/2gAIAQEAAD8AKp//2Q=="
)
GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")
WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00/\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>'


def small_book(**more: object) -> Book:
    """Five sections, two endings, a picture; numbers not in list order."""
    sections = (
        Section("gate", "The Gate", "", (Choice("Knock", "yard"), Choice("Climb", "wall")), 1),
        Section("wall", "The Wall", "", (Choice("Jump down", "garden"),), 3),
        Section("yard", "The Yard", "", (Choice("Follow the light", "keep"),), 2),
        Section("keep", "The Keep", "", (), 4),
        Section("garden", "The Garden", "", (), 5),
    )
    prose = {s.id: f"You are at {s.title.lower()}.\n\nRain falls." for s in sections}
    fields: dict[str, object] = {
        "pictures": {"gate": Picture(png(), "The gate at dusk")},
        "blurb": "A night, a gate, a keeper.",
        "brief": {"premise": "A courier at a gate.", "tone": "hushed", "secret": "not shown"},
    }
    fields.update(more)
    return Book(Topology("The Vigil", "gate", sections), prose, **fields)  # type: ignore[arg-type]


def hostile_book() -> Book:
    """Every text field of every section carries :data:`HOSTILE` strings."""
    bad = " ".join(HOSTILE)
    sections = tuple(
        Section(
            f"s{n}",
            f"{HOSTILE[n % len(HOSTILE)]} {n}",
            bad,
            tuple(
                Choice(f"{HOSTILE[(n + k) % len(HOSTILE)]}", f"s{t}") for k, t in enumerate(targets)
            ),
            n,
        )
        for n, targets in ((1, (2, 3)), (2, (4,)), (3, (4, 5)), (4, ()), (5, ()))
    )
    prose = {s.id: "\n\n".join(HOSTILE) for s in sections}
    return Book(
        Topology(HOSTILE[0], "s1", sections),
        prose,
        {"s1": Picture(png(), HOSTILE[1]), "s3": Picture(GIF, HOSTILE[2])},
        blurb=HOSTILE[3],
        brief={
            "premise": HOSTILE[4],
            "genre": HOSTILE[0],
            "audience": HOSTILE[1],
            "tone": HOSTILE[2],
        },
    )


def branching_book(count: int, title: str = "The Branching Keep") -> Book:
    """A book of ``count`` sections laid out as the studio lays one out (:class:`Shape`), each
    with two paragraphs of prose; the start is section 1."""
    shape = Shape.of(count)
    sections = tuple(
        Section(
            f"s{n}",
            f"Room {n}",
            "",
            tuple(
                Choice(f"Take door {k + 1} toward room {t}", f"s{t}")
                for k, t in enumerate(shape.targets(n))
            ),
            n,
        )
        for n in range(1, count + 1)
    )
    prose = {
        s.id: f"You stand in room {s.number}. Dust hangs in the lamplight.\n\nSomewhere a door "
        "creaks, and the draught smells of rain and old paper."
        for s in sections
    }
    return Book(Topology(title, "s1", sections), prose, {"s1": Picture(png(), "The keep")})
