"""The stand-in's answers: prose of the asked length that never repeats the prompt, cut at
``max_tokens`` as a model's is, and a real PNG picture chosen by the prompt."""

from __future__ import annotations

import re
import struct
import zlib
from typing import Any

import pytest

from questfoundry.testing.fakes import FakeOpenAI, reply_text, tiny_png
from questfoundry.testing.fakes.placeholder import DEFAULT_WORDS, PICTURE, asked_words

PROMPT = "Write the prose of this section, in the second person, about 200 words long."


def words(text: str) -> int:
    return len(text.split())


@pytest.mark.parametrize(
    ("asked", "wanted"),
    [
        ("Write vivid prose of 120 to 250 words.", 185),
        ("about 200 words long", 200),
        ("in 80-100 words", 90),
        ("no length at all", DEFAULT_WORDS),
    ],
)
def test_the_length_asked_for_is_read_from_the_prompt(asked: str, wanted: int) -> None:
    assert asked_words(asked) == wanted
    assert wanted <= words(reply_text(asked)) < wanted + 30


def test_prose_is_deterministic_and_never_repeats_the_prompt_or_the_instructions() -> None:
    prose = reply_text(PROMPT, "gpt-4o-mini", "You are the scene smith of a studio.")
    assert prose == reply_text(" ".join(PROMPT.split("  ")), "gpt-4o-mini")
    assert prose != reply_text(PROMPT + " Again.", "gpt-4o-mini")
    assert prose != reply_text(PROMPT, "llama3")
    said = {w.strip(".,").lower() for w in (PROMPT + " scene smith studio").split()}
    assert not said & {w.strip(".,").lower() for w in prose.split()} - {"the", "you", "a", "and"}
    assert "\n\n" in prose and prose[0].isupper() and prose.endswith(".")
    assert not re.search(r"\b[Aa] [aeiou]", reply_text("a long one", words=2000))  # "an ancient"


def test_the_instructions_say_how_long_when_the_prompt_does_not() -> None:
    assert 300 <= words(reply_text("Write section 4.", "", "Answer in 300 words.")) < 330


def test_a_reply_cut_at_max_tokens_says_length_through_the_real_sdk() -> None:
    openai = pytest.importorskip("openai")

    def ask(**limits: int) -> Any:
        return client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}], **limits
        )

    with FakeOpenAI() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-placeholder", max_retries=0)
        whole, cut = ask(), ask(max_tokens=20)
    assert whole.choices[0].finish_reason == "stop"
    assert whole.choices[0].message.content == reply_text(PROMPT, "gpt-4o-mini")
    assert cut.choices[0].finish_reason == "length"
    text = cut.choices[0].message.content or ""
    assert len(text) == 80 and whole.choices[0].message.content.startswith(text)
    assert cut.usage is not None and cut.usage.completion_tokens == 20


def test_a_picture_is_a_real_png_chosen_by_the_prompt() -> None:
    png = tiny_png("a lighthouse at dusk")
    assert png == tiny_png("a lighthouse at dusk") != tiny_png("a ferry at dawn")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    chunks, at = {}, 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kind, data = png[at + 4 : at + 8], png[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", png[at + 8 + length : at + 12 + length])
        assert crc == zlib.crc32(kind + data) & 0xFFFFFFFF
        chunks[kind] = data
        at += 12 + length
    assert list(chunks) == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (width, height, depth, colour) == (*PICTURE, 8, 2)
    pixels = zlib.decompress(chunks[b"IDAT"])
    assert len(pixels) == height * (1 + 3 * width)
    rows = [pixels[y * (1 + 3 * width) + 1 : (y + 1) * (1 + 3 * width)] for y in range(height)]
    assert len({rows[y][x : x + 3] for y in range(height) for x in range(0, 3 * width, 3)}) >= 2
