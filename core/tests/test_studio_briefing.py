"""The background of a prompt: what goes in, in what order, and never more than the budget."""

from __future__ import annotations

import math

import pytest

from questfoundry.book.model import Choice, Section, Topology
from questfoundry.contracts.brief import Brief, CanonEntry, StyleGuide
from questfoundry.contracts.errors import StateError
from questfoundry.studio.briefing import CLOSE, OPEN, Knowledge, Links, background, look, ranked


def book(count: int = 6, summary: str = "Something happens here.") -> Topology:
    """A chain 1 → 2 → … with a branch from 1 to 3; the last section is an ending."""
    sections = []
    for n in range(1, count + 1):
        choices = [Choice(f"On to {n + 1}", f"s{n + 1}")] if n < count else []
        if n == 1:
            choices.append(Choice("Skip ahead", "s3"))
        sections.append(Section(f"s{n}", f"Room {n}", f"{summary} ({n})", tuple(choices)))
    return Topology("The Drowned Abbey", "s1", tuple(sections))


BRIEF = Brief(premise="A novice searches a flooded abbey for her missing teacher.", tone="hushed")


def tokens(text: str) -> int:
    """Tokens as the fake servers count them: four characters a token, rounded up."""
    return math.ceil(len(text) / 4)


def test_a_sections_background_has_the_brief_its_place_and_its_neighbours() -> None:
    told = background(Knowledge(BRIEF, topology=book()), 2000, "s3")
    assert told.startswith(OPEN) and told.endswith(CLOSE)
    assert "Premise: A novice searches a flooded abbey" in told and "Tone: hushed" in told
    assert "Title: The Drowned Abbey" in told
    assert "Section 3 of 6, 'Room 3', 1 choice from the start" in told
    assert "2 sections lead into it" in told
    leading_in = told[told.index("Sections leading into it") : told.index("Sections it leads to")]
    assert "1 'Room 1'" in leading_in and "2 'Room 2'" in leading_in
    assert "4 'Room 4'" in told[told.index("Sections it leads to") :]


def test_the_books_background_draws_on_nothing_a_run_makes() -> None:
    """Drafting the book again asks what the first draft asked: no title, no sections."""
    before = background(Knowledge(BRIEF), 2000)
    after = background(Knowledge(BRIEF, topology=book()), 2000)
    assert before == after and "Title" not in after and "Premise" in after


def test_an_empty_brief_and_an_empty_state_give_no_background() -> None:
    assert background(Knowledge(Brief()), 2000) == ""
    assert background(Knowledge(BRIEF), 0, None) == ""


@pytest.mark.parametrize("budget", [60, 120, 300, 2000])
def test_the_background_never_passes_its_budget_and_the_brief_comes_first(budget: int) -> None:
    long = Brief(premise="flooded " * 490, tone="hushed", limits="gore")
    canon = tuple((f"c{i}", CanonEntry(f"Fact {i}", "words " * 40, ("s3",))) for i in range(30))
    style = StyleGuide("Short sentences. " * 100, ("No slang.",) * 20)
    knowledge = Knowledge(long, style, canon, book(40, "summary " * 60))
    for section in (None, "s3", "s40"):
        told = background(knowledge, budget, section)
        assert tokens(told) <= budget
        if told:
            assert told.splitlines()[1] == "The book's brief, from its author:"
            assert "Premise: flooded" in told


def test_canon_naming_the_section_comes_first_then_its_neighbours_then_shared_words() -> None:
    canon = (
        ("a-far", CanonEntry("Bell", "The bell rings at dusk.", ("s6",))),
        ("b-word", CanonEntry("Room", "Every room floods.", (), ("room",))),
        ("c-near", CanonEntry("Key", "The key is bronze.", ("s2",))),
        ("d-here", CanonEntry("Door", "The door is sealed.", ("s3",))),
    )
    order = [e.name for e in ranked(canon, Links.of(book()), book().section("s3"), BRIEF)]
    assert order == ["Door", "Key", "Room", "Bell"]
    told = background(Knowledge(BRIEF, canon=canon, topology=book()), 2000, "s3")
    facts = told[told.index("Established facts") :]
    assert facts.index("Door") < facts.index("Key") < facts.index("Room") < facts.index("Bell")


def test_a_tight_budget_keeps_whole_summaries_and_leaves_out_the_least_relevant() -> None:
    canon = tuple(
        (f"c{i}", CanonEntry(f"Fact {i}", f"Fact number {i}.", ("s9",))) for i in range(9)
    )
    knowledge = Knowledge(BRIEF, canon=canon, topology=book(12))
    roomy = background(knowledge, 2000, "s3")
    tight = background(knowledge, 140, "s3")
    assert "Fact 8" in roomy and "Fact 8" not in tight
    lines = tight.splitlines()[1:-1]
    assert all(line in roomy.splitlines() for line in lines if "…" not in line)


def test_an_image_prompt_gets_the_brief_in_one_line() -> None:
    assert look(Brief(genre="gothic mystery", tone="brooding", audience="young adults")) == (
        "Style: gothic mystery; brooding; for young adults."
    )
    assert look(Brief(premise="only a premise")) == ""


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"pov": "fourth"}, "pov must be one of second, first, third"),
        ({"language": "english!"}, "language must be a language code"),
        ({"sections": 0}, "sections must be a whole number from 1"),
        ({"sections": "12"}, "sections must be a whole number"),
        ({"premise": "x" * 5000}, "5000 characters long"),
        ({"mood": "dark"}, "a brief has no field 'mood'"),
    ],
)
def test_a_bad_brief_value_is_refused_in_one_line(change: dict[str, object], problem: str) -> None:
    with pytest.raises(StateError, match=problem) as refused:
        Brief().updated(change)
    assert "\n" not in str(refused.value)


def test_a_brief_round_trips_and_shows_only_what_the_author_set() -> None:
    brief = Brief(premise="p", pov="first", language="fr", sections=12)
    assert Brief.from_dict({**brief.to_dict(), "run": "r1"}) == brief
    assert brief.shown() == {
        "Premise": "p",
        "Point of view": "first person",
        "Language": "fr",
        "Length": "12 sections",
    }
    assert Brief().shown() == {}
