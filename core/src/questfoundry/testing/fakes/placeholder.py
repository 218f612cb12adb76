"""What the fake servers answer: placeholder prose and pictures, the same for the same request.

The prose reads like a book's, so a stand-in book shows what a book looks like, yet means
nothing and never repeats the prompt or the instructions: sentences made of a fixed list of
words, chosen by a hash of the prompt, about as long as the prompt asks ("120 to 250 words",
"about 200 words"), else :data:`DEFAULT_WORDS`. A picture is a real PNG, a pattern in colours
chosen by a hash of the prompt. Standard library only.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
import struct
import zlib

#: how long placeholder prose runs when the prompt does not say
DEFAULT_WORDS = 150
#: the most words a reply runs to, whatever is asked (``max_tokens`` cuts before that anyway)
MAX_WORDS = 5000
#: a placeholder picture's size in pixels
PICTURE = (96, 64)

_ASKED = re.compile(r"\b(\d{1,5})(?:\s*(?:to|-|\u2013|and)\s*(\d{1,5}))?\s+words\b", re.IGNORECASE)
_AN = re.compile(r"\b([Aa]) (?=[aeiou])")
_ADJECTIVES = (
    "amber", "quiet", "narrow", "ancient", "pale", "restless", "silver", "hollow", "distant",
    "crooked", "bright", "heavy", "salt-worn", "gentle", "broken", "hidden",
)  # fmt: skip
_NOUNS = (
    "lantern", "harbor", "stair", "door", "meadow", "tower", "river", "bell", "road", "garden",
    "window", "bridge", "forest", "chapel", "well", "ferry", "market", "hill", "archive", "gate",
)  # fmt: skip
_VERBS = (
    "waits", "leans", "glows", "turns", "rests", "sways", "hums", "gleams", "drifts", "listens",
)  # fmt: skip
_PLACES = ("beyond", "beside", "beneath", "across", "toward", "behind", "above", "past")
_SENTENCES = (
    "The {a} {n} {v} {p} the {n2}.",
    "You see the {a} {n} {p} the {a2} {n2}.",
    "Somewhere {p} the {n}, a {a} {n2} {v}.",
    "The {n} {v}, and the {a} {n2} {v2} {p} it.",
    "You pause {p} the {a} {n} and listen.",
    "A {a} {n} {v} where the {n2} once stood.",
)


def asked_words(*texts: str) -> int:
    """How many words the first of ``texts`` that asks for a length wants ("120 to 250 words":
    185; "about 200 words": 200), else :data:`DEFAULT_WORDS`."""
    for text in texts:
        match = _ASKED.search(text)
        if match:
            low = int(match.group(1))
            high = int(match.group(2) or low)
            return max(1, min(MAX_WORDS, (low + high) // 2))
    return DEFAULT_WORDS


def reply_text(
    prompt: str, model: str = "", instructions: str = "", *, words: int | None = None
) -> str:
    """Placeholder prose answering ``prompt``: deterministic (the same prompt and model, the same
    text; another prompt, another text), about ``words`` words or as many as the prompt (else
    ``instructions``) asks for, in paragraphs; nothing of the prompt in it."""
    said = " ".join(prompt.split())  # spacing alone does not change the answer
    rng = random.Random(hashlib.sha256(f"{model}\x00{said}".encode()).digest())
    wanted = words or asked_words(prompt, instructions)
    paragraphs: list[str] = []
    sentences: list[str] = []
    count = 0
    while count < wanted:
        sentence = _sentence(rng)
        sentences.append(sentence)
        count += len(sentence.split())
        if len(sentences) >= rng.randint(3, 5):
            paragraphs.append(" ".join(sentences))
            sentences = []
    if sentences:
        paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs)


def _sentence(rng: random.Random) -> str:
    text = rng.choice(_SENTENCES).format(
        a=rng.choice(_ADJECTIVES),
        a2=rng.choice(_ADJECTIVES),
        n=rng.choice(_NOUNS),
        n2=rng.choice(_NOUNS),
        v=rng.choice(_VERBS),
        v2=rng.choice(_VERBS),
        p=rng.choice(_PLACES),
    )
    text = _AN.sub(lambda m: m.group(1) + "n ", text)  # "an ancient", not "a ancient"
    return text[0].upper() + text[1:]


def tiny_png(seed: str) -> bytes:
    """A small placeholder picture, a valid PNG (:data:`PICTURE` pixels, RGB): stripes, checks,
    rings or tiles in three colours, all chosen by a hash of ``seed`` (the same prompt, the same
    picture)."""
    digest = hashlib.sha256(seed.encode()).digest()
    colours = [digest[i : i + 3] for i in (0, 3, 6)]
    pattern, scale = digest[9] % 4, 4 + digest[10] % 9
    width, height = PICTURE

    def colour(x: int, y: int) -> bytes:
        if pattern == 0:  # diagonal stripes
            index = (x + y) // scale % 3
        elif pattern == 1:  # checks
            index = (x // scale + y // scale) % 2
        elif pattern == 2:  # rings around the middle
            index = int(math.hypot(x - width / 2, y - height / 2) // scale) % 3
        else:  # tiles
            index = x // scale % 2 + y // (2 * scale) % 2
        return colours[index]

    raw = b"".join(b"\x00" + b"".join(colour(x, y) for x in range(width)) for y in range(height))

    def block(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + block(b"IHDR", header)
        + block(b"IDAT", zlib.compress(raw, 9))
        + block(b"IEND", b"")
    )
