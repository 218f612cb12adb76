"""Twee 3 for Twine: exported, edited by an author, imported back checked whole, exported again."""

from __future__ import annotations

import json
import re

import pytest

from questfoundry.book.edition import Book, paragraphs
from questfoundry.book.model import Topology
from questfoundry.book.twee import TweeError, escape, merge, parse, to_twee
from questfoundry.testing.books import HOSTILE, hostile_book, small_book


def round_trip(book: Book) -> tuple[str, Book, list[str]]:
    """``book`` exported, imported into itself and exported again; the second export, the
    book after the import and the import's changes."""
    exported = to_twee(book)
    edits = merge(book.topology, book.prose, parse(exported))
    again = Book(edits.topology, {**book.prose, **edits.prose}, book.pictures, book.blurb)
    return to_twee(again), again, edits.changes


def test_a_twee_file_has_the_story_data_one_passage_per_section_and_links() -> None:
    text = to_twee(small_book())
    assert text.startswith(":: StoryTitle\nThe Vigil\n\n:: StoryData\n{\n")
    data = json.loads(text.split(":: StoryData\n")[1].split("\n\n")[0])
    assert data["start"] == "gate" and data["format"] == "Harlowe"
    assert re.fullmatch(
        r"[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}", data["ifid"]
    )
    headers = re.findall(r"^:: (\S+) \{", text, re.M)
    assert headers == ["gate", "yard", "wall", "keep", "garden"]  # by number
    assert "[[Knock->yard]]\n[[Climb->wall]]" in text
    assert ':: gate {"position":"100,100","size":"100,100"}\n## The Gate\n' in text


def test_export_import_export_gives_the_same_file_and_changes_nothing() -> None:
    book = small_book()
    second, again, changes = round_trip(book)
    assert second == to_twee(book)
    assert changes == [] and again.topology == book.topology


def test_hostile_text_survives_the_round_trip_and_is_no_markup_in_twine() -> None:
    book = hostile_book()
    text = to_twee(book)
    second, again, changes = round_trip(book)
    assert second == text and changes == []
    assert [p.paragraphs for p in again.pages] == [p.paragraphs for p in book.pages]
    story = text.split(":: s1 ", 1)[1].split("\n:: s2 ")[0]
    assert "<" not in story and "(print:" not in story and "$power" not in story
    assert story.count("[[") == 2  # the two choices, nothing from the prose
    assert all(line.startswith(":: ") for line in text.splitlines() if line.startswith("::"))
    assert len(re.findall(r"^:: ", text, re.M)) == 2 + 5


@pytest.mark.parametrize("text", [*HOSTILE, "0. zero", "-- dash", "=><= centred", "a|b"])
def test_escaped_text_reads_back_as_itself(text: str) -> None:
    (passage,) = parse(f":: a\n## T\n\n{escape(text)}\n").passages
    edits = merge(Topology("T", "a", ()), {}, parse(f":: a\n## T\n\n{escape(text)}\n"))
    assert passage.name == "a"
    assert paragraphs(edits.prose["a"]) == (" ".join(text.split()),)


def edited(book: Book, old: str, new: str) -> str:
    text = to_twee(book)
    assert old in text
    return text.replace(old, new)


def test_an_authors_edits_come_back_as_prose_titles_choices_and_new_sections() -> None:
    book = small_book()
    text = edited(book, "## The Yard\n\nYou are at the yard.", "## The Courtyard\n\nYou wait.")
    text = text.replace("[[Jump down->garden]]", "[[Jump down->garden]]\n[[Hide->Cellar Door]]")
    text += ":: Cellar Door\n## The Cellar\n\nDark &amp; damp.\n\n[[Climb out->gate]]\n"
    text = text.replace('"start": "gate"', '"start": "yard"')
    edits = merge(book.topology, book.prose, parse(text))
    topology = edits.topology
    assert topology.start == "yard"
    assert topology.section("yard").title == "The Courtyard"
    assert paragraphs(edits.prose["yard"]) == ("You wait.", "Rain falls.")
    assert [c.target for c in topology.section("wall").choices] == ["garden", "cellar-door"]
    cellar = topology.section("cellar-door")
    assert cellar.number == 6 and cellar.title == "The Cellar"
    assert edits.prose["cellar-door"] == "Dark & damp."
    assert set(edits.prose) == {"yard", "cellar-door"}
    assert edits.changes == [
        "start: yard",
        "new sections (1): cellar-door",
        "prose (1): yard",
        "titles (1): yard",
        "choices (1): wall",
    ]


def test_twines_other_link_forms_and_its_code_passages() -> None:
    book = small_book()
    text = edited(book, "[[Knock->yard]]\n[[Climb->wall]]", "[[wall<-Climb]] [[Knock|yard]]")
    text += ":: StoryScript [script]\nalert(1)\n\n:: Style [stylesheet]\nbody {}\n"
    story = parse(text)
    assert story.skipped == ("StoryScript", "Style")
    edits = merge(book.topology, book.prose, story)
    choices = edits.topology.section("gate").choices
    assert [(c.text, c.target) for c in choices] == [("Climb", "wall"), ("Knock", "yard")]
    assert "StoryScript" not in str(edits.topology.to_dict())


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("[[Knock->yard]]", "[[Knock->attic]]"), "a link to 'attic', which is no passage"),
        (("\n:: garden {", "\n:: gone {"), "no passage for sections garden"),
        (('"start": "gate"', '"start": "attic"'), "StoryData's start 'attic' names no passage"),
        (("Rain falls.", "Rain [[falls->keep]]."), "a link inside the prose"),
        (("\n:: keep {", "\n:: Wall {"), "takes the id 'wall' of another"),
        (("\n:: keep {", "\n:: !!! {"), "gives no valid id"),
        (("\n:: keep {", "\n:: gate {"), "two passages are named 'gate'"),
        (("\n:: StoryData\n{", "\n:: StoryData\n{{"), "StoryData is not JSON"),
    ],
)
def test_a_file_that_cannot_be_imported_is_refused_whole_in_one_line(
    change: tuple[str, str], problem: str
) -> None:
    book = small_book()
    text = to_twee(book).replace(*change, 1)
    with pytest.raises(TweeError) as caught:
        merge(book.topology, book.prose, parse(text))
    message = str(caught.value)
    assert problem in message and "\n" not in message


def test_a_file_without_passages_is_refused() -> None:
    with pytest.raises(TweeError, match="it has no passage"):
        parse("just some text\n")
