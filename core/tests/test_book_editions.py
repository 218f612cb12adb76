"""The render model's cue sheet and translated editions: read from state safely, shown as text."""

from __future__ import annotations

from typing import Any

import pytest
from page_elements import Elements

from questfoundry.book.edition import file_name
from questfoundry.kit import (
    AUDIO,
    Book,
    Choice,
    Cue,
    CueSheet,
    Labels,
    Section,
    StateError,
    Topology,
    book_files,
    book_from_state,
    prose_digest,
    translated,
)

TOPOLOGY = Topology(
    "The Lamp",
    "a",
    (
        Section("a", "Dark", "", (Choice("Climb", "b"), Choice("Wait", "c"))),
        Section("b", "Top", ""),
        Section("c", "Dawn", ""),
    ),
)
PROSE = {"a": "The lamp gutters.", "b": "You reach the top.", "c": "Dawn comes."}
HOSTILE = "<script>alert(1)</script>"


def book(**more: Any) -> Book:
    return Book(TOPOLOGY, PROSE, blurb="A night.", brief={"tone": "hushed"}, **more)


def german(**sections: dict[str, Any]) -> dict[str, Any]:
    return {
        "lang": "de",
        "title": "Die Lampe",
        "blurb": "Eine Nacht.",
        "brief": {"tone": "leise"},
        "labels": {"turn_to": "weiter bei {number}", "begin": "Lesen"},
        "sections": sections,
    }


def words(ident: str, title: str, prose: str, *choices: str) -> dict[str, Any]:
    return {
        "title": title,
        "prose": prose,
        "choices": list(choices),
        "from": prose_digest(PROSE[ident]),
    }


def test_an_edition_keeps_ids_numbers_and_links_with_the_translated_words() -> None:
    document = german(
        a=words("a", "Dunkel", "Die Lampe flackert.", "Klettern", "Warten"),
        b=words("b", "Oben", "Du bist oben."),
        c=words("c", "Morgen", "Es dämmert."),
    )
    edition, notes = translated(book(), document)
    assert [(p.id, p.number, p.title) for p in edition.pages] == [
        ("a", 1, "Dunkel"),
        ("b", 2, "Oben"),
        ("c", 3, "Morgen"),
    ]
    assert [(t.text, t.id, t.number) for t in edition.pages[0].turns] == [
        ("Klettern", "b", 2),
        ("Warten", "c", 3),
    ]
    assert edition.lang == "de" and edition.title == "Die Lampe" and edition.blurb == "Eine Nacht."
    assert edition.labels.turn(2) == "weiter bei 2" and edition.labels.begin == "Lesen"
    assert edition.front == [("Tone", "leise")]
    every = sum(len(v) if isinstance(v, dict) else 1 for v in Labels().to_dict().values())
    assert notes == [f"the de edition keeps {every - 2} of its labels untranslated"]
    assert list(book_files(edition, "html", edition=True)) == [file_name("html", "de")]


def test_what_an_edition_lacks_stays_in_the_books_language_and_is_noted() -> None:
    stale = {**words("a", "Dunkel", "Alt.", "Klettern"), "from": "older"}  # one choice of two
    edition, notes = translated(book(), {**german(a=stale), "blurb": " ", "brief": {}})
    assert [p.title for p in edition.pages] == ["Dunkel", "Top", "Dawn"]
    assert [t.text for t in edition.pages[0].turns] == ["Climb", "Wait"]
    assert edition.blurb == "A night." and edition.prose["b"] == PROSE["b"]
    assert notes[:4] == [
        "the de edition keeps untranslated the sections it lacks: 2, 3",
        "the de edition has sections translated from older prose (run translation_pass again): 1",
        "the de edition keeps the choices untranslated where their number changed: 1",
        "the de edition keeps untranslated its blurb, tone",
    ]


@pytest.mark.parametrize("document", [{}, {"lang": 3}, {"lang": "not a tag!"}])
def test_a_translation_without_a_language_tag_is_refused_in_one_line(
    document: dict[str, Any],
) -> None:
    with pytest.raises(
        StateError, match=r"^(a translation must name its language|the book's language)"
    ):
        translated(book(), document)


def test_a_label_keeps_its_placeholders_or_stays_as_it_was() -> None:
    labels, refused = Labels.read(
        {
            "turn_to": "gehe zu {number!r}",
            "keys": "Tasten {most} {mehr}",
            "the_end": "Ende {",
            "back": "  ",
            "restart": "Neu",
            "placements": {"moment": "bei „{moment}“", "close": "am {Schluss}"},
        }
    )
    assert labels.restart == "Neu" and labels.placements["moment"] == "bei „{moment}“"
    assert labels.turn(4) == "turn to 4" and labels.the_end == "The end."
    assert {"turn_to", "keys", "the_end", "back", "placements.close"} <= set(refused)
    assert "restart" not in refused and "placements.moment" not in refused


def test_the_cue_sheet_is_read_safely_and_shown_only_as_text() -> None:
    cue = {"kind": "effect", "sound": HOSTILE, "placement": "moment", "moment": "gutters"}
    documents: dict[str, Any] = {f"book/sections/{i}": {"prose": p} for i, p in PROSE.items()}
    documents[AUDIO] = {"sections": {"a": [cue], "gone": [cue]}, "notes": HOSTILE}
    made, notes = book_from_state(TOPOLOGY, documents)
    assert made.cue_sheet is not None and list(made.cue_sheet.cues) == ["a"]
    assert notes == [
        "left out the cues of sections the book no longer has (run audio_pass again): ['gone']"
    ]
    html = book_files(made, "html")["book.html"].decode()
    assert HOSTILE not in html and html.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 3
    assert "on “gutters”" in html
    page = Elements(html)
    assert [s for s in page.scripts if "alert" in s] == []
    markdown = book_files(made, "md")["book.md"].decode()
    assert "\\<script\\>" in markdown and "<script>" not in markdown


@pytest.mark.parametrize(
    ("document", "said"),
    [
        ({"sections": []}, "the cue sheet must map section ids to their cues"),
        ({"sections": {"a": [{"kind": "song", "sound": "x", "placement": "close"}]}}, "kind"),
        ({"sections": {"a": [{"kind": "music", "sound": " ", "placement": "close"}]}}, "heard"),
        ({"sections": {"a": [{"kind": "music"}]}}, "lacks its kind, sound or placement"),
        ({"sections": {"../x": []}, "notes": ""}, "not a valid id"),
    ],
)
def test_a_cue_sheet_that_is_not_one_is_refused_in_one_line(
    document: dict[str, Any], said: str
) -> None:
    with pytest.raises(StateError, match=said):
        CueSheet.from_dict(document)
    documents = {f"book/sections/{i}": {"prose": p} for i, p in PROSE.items()}
    made, notes = book_from_state(TOPOLOGY, {**documents, AUDIO: document})
    assert made.cue_sheet is None and notes[0].startswith("left out the cue sheet: ")
    assert Cue("music", "x", "close").to_dict()["placement"] == "close"
