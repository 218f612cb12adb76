"""The book's shape: the studio's skeleton meets the rules, a good draft is kept as it is, and any
draft — nonsense included — is mended into a branching book that meets them."""

from __future__ import annotations

import itertools
import json
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from questfoundry.book.graph import Graph, endings_wanted, figures
from questfoundry.book.model import MAX_CHOICES, Choice, Section, Topology
from questfoundry.book.shape import Part, Shape, draft_schema, outline_schema
from questfoundry.testing.drafts import faithful_draft
from questfoundry.testing.schema_instance import schema_instance


def assert_meets_the_rules(topology: Topology, sections: int) -> None:
    assert [s.number for s in topology.sections] == list(range(1, sections + 1))
    assert topology.start == topology.sections[0].id
    assert figures(topology).problems() == []
    assert Topology.from_dict(json.loads(json.dumps(topology.to_dict()))) == topology


@pytest.mark.parametrize("sections", [*range(1, 41), 50, 99, 400, 1000])
def test_the_skeleton_meets_the_rules_with_forward_links_only(sections: int) -> None:
    shape = Shape.of(sections)
    found = shape.graph.figures()
    assert found.problems() == []
    assert all(n < t <= sections for n, ts in enumerate(shape.links, 1) for t in ts)
    assert all(len(set(ts)) == len(ts) <= MAX_CHOICES for ts in shape.links)
    wanted = max(endings_wanted(sections), round(sections / 8))
    assert found.endings == wanted


def test_a_good_draft_is_kept_as_it_is_with_no_repair() -> None:
    shape = Shape.of(16)
    topology, notes = shape.whole({"title": "The Keep", "sections": faithful_draft(shape)})
    assert notes == []
    assert topology.title == "The Keep"
    assert [s.title for s in topology.sections] == [f"Room {n}" for n in range(1, 17)]
    second = topology.by_number(2)
    assert [c.text for c in second.choices] == ["Walk to room 4", "Walk to room 5"]
    assert [topology.section(c.target).number for c in second.choices] == [4, 5]
    assert topology.section(topology.by_number(15).id).ending


def test_a_draft_that_leaves_the_slots_but_meets_the_rules_is_kept() -> None:
    shape = Shape.of(6)
    draft = faithful_draft(shape)
    draft[0]["choices"] = [{"text": "Dive", "target": 3}, {"text": "Climb", "target": 2}]
    draft[1]["choices"] = [{"text": "Back", "target": 1}, {"text": "On", "target": 4}]
    topology, notes = shape.whole({"title": "T", "sections": draft})
    assert notes == []
    assert [topology.section(c.target).number for c in topology.by_number(2).choices] == [1, 4]


def test_a_draft_in_a_line_becomes_a_branching_book() -> None:
    shape = Shape.of(16)
    line = [
        {"title": f"R{n}", "summary": "", "ending": n == 16, "choices": onward}
        for n in range(1, 17)
        for onward in [[{"text": "On", "target": n + 1}] if n < 16 else []]
    ]
    topology, notes = shape.whole({"title": "T", "sections": line})
    assert_meets_the_rules(topology, 16)
    found = figures(topology)
    assert found.endings >= 2 and found.branching >= found.choosing / 3
    assert any("too few endings" in note for note in notes)


def test_each_section_is_mended_on_its_own_and_every_change_is_said() -> None:
    shape = Shape.of(6)
    draft = faithful_draft(shape)
    draft[0]["choices"] = [
        {"text": "Nowhere", "target": 99},
        {"text": "Here", "target": 1},
        {"text": "Two", "target": 2},
        {"text": "Two again", "target": 2},
    ]
    draft[1] = {**draft[1], "choices": [], "ending": False}  # a dead end
    draft[5] = {**draft[5], "ending": True}
    draft[2] = {**draft[2], "ending": True}  # marked an ending, with choices
    mended, notes = shape.fill(Part(1, 6), {"sections": draft})
    assert [c["target"] for c in mended["sections"][0]["choices"]] == [2]
    assert mended["sections"][1]["choices"] == [{"text": "", "target": t} for t in shape.targets(2)]
    assert mended["sections"][2]["ending"] is False
    assert notes == [
        "choices leading to no section or back to their own were dropped (2): 1 → 99, 1 → 1",
        "choices leading where another choice leads were dropped (1): 1 → 2",
        "sections marked as endings but offering choices are not endings (1): 3",
        "dead ends (no choices, not an ending) took their slots' choices (1): 2",
    ]


def test_a_book_without_enough_endings_gets_its_slots_endings_back() -> None:
    shape = Shape.of(6)
    draft = faithful_draft(shape)
    draft[4]["choices"] = [{"text": "Loop", "target": 2}]
    draft[4]["ending"] = False
    topology, notes = shape.whole({"title": "T", "sections": draft})
    assert_meets_the_rules(topology, 6)
    assert topology.by_number(5).ending and not topology.by_number(5).choices
    assert notes == ["too few endings, so these sections end the book as their slots do (1): 5"]


def test_a_trap_the_reader_cannot_leave_is_opened() -> None:
    shape = Shape.of(8)
    draft = faithful_draft(shape)
    draft[1]["choices"] = [{"text": "In", "target": 4}]  # 4 and 5 loop between themselves
    draft[3]["choices"] = [{"text": "Round", "target": 5}]
    draft[4]["choices"] = [{"text": "And round", "target": 4}]
    draft[4]["ending"] = False
    topology, notes = shape.whole({"title": "T", "sections": draft})
    assert_meets_the_rules(topology, 8)
    assert any(note.startswith("no ending could be reached from these sections") for note in notes)


@pytest.mark.slow
@pytest.mark.parametrize("sections", [6, 16, 50])
def test_nonsense_drafts_in_parts_still_make_a_branching_book(sections: int) -> None:
    shape = Shape.of(sections)
    parts = shape.parts(700)
    assert len(parts) > 1 or sections == 6
    drafts: list[dict[str, Any]] = []
    for index, part in enumerate(parts):
        schema = draft_schema(part.count, titled=False)
        mended, _ = shape.fill(part, schema_instance(schema, f"part {index}"))
        drafts += mended["sections"]
    topology, _ = shape.join("Nonsense", drafts)
    assert_meets_the_rules(topology, sections)


def test_parts_cover_the_book_in_order_and_each_reply_fits_max_tokens() -> None:
    shape = Shape.of(400)
    for max_tokens in (600, 2000, 4096, 16000):
        parts = shape.parts(max_tokens)
        assert parts[0].first == 1 and parts[-1].last == 400
        assert all(a.last + 1 == b.first for a, b in itertools.pairwise(parts))
        assert [p.act for p in parts] == sorted(p.act for p in parts)
        assert parts[-1].act + 1 == min(5, len(parts))
        biggest = max(parts, key=lambda p: p.count)
        reply = {"sections": _wordy(faithful_draft(shape, biggest))}
        jsonschema.validate(reply, draft_schema(biggest.count, titled=False))
        assert len(json.dumps(reply)) / 4 <= max_tokens
    assert len(Shape.of(12).parts(4096)) == 1  # a small book: one reply
    acts = parts[-1].act + 1
    jsonschema.validate(schema_instance(outline_schema(acts), "o"), outline_schema(acts))


def _wordy(draft: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A draft as long-winded as a real model's: an 8-word title, a 35-word summary."""
    words = "the lantern swings over the black water while the ferryman waits"
    return [
        {
            **section,
            "title": " ".join(words.split()[:8]),
            "summary": " ".join((words.split() * 4)[:35]),
            "choices": [{**c, "text": " ".join(words.split()[:8])} for c in section["choices"]],
        }
        for section in draft
    ]


def test_the_slots_name_every_section_and_where_its_choices_lead() -> None:
    shape = Shape.of(6)
    assert shape.slots(Part(1, 6)).splitlines() == [
        "1 (the start): choices leading to " + ", ".join(map(str, shape.targets(1))),
        *(
            f"{n}: choices leading to " + ", ".join(map(str, shape.targets(n)))
            if shape.targets(n)
            else f"{n}: an ending"
            for n in range(2, 7)
        ),
    ]


def test_figures_name_what_breaks_the_rules() -> None:
    sections = (
        Section("a", "A", "", (Choice("b", "b"), Choice("c", "c"))),
        Section("b", "B", "", (Choice("d", "d"),)),
        Section("c", "C", "", (), ending=False),  # a dead end
        Section("d", "D", "", (Choice("e", "e"),)),
        Section("e", "E", "", (Choice("d", "d"),)),  # d and e: a loop with no way out
        Section("f", "F", ""),  # an ending nobody reaches
    )
    found = figures(Topology("T", "a", sections))
    assert (found.sections, found.endings, found.branching) == (6, 1, 1)
    assert found.unreachable == (6,) and found.dead_ends == (3,) and found.trapped == (1, 2, 4, 5)
    assert found.shortest is None and found.longest is None
    assert found.problems() == [
        "sections no path from the start reaches (1): 6",
        "dead ends: sections without choices that are not endings (1): 3",
        "sections from which no ending can be reached (4): 1, 2, 4, 5",
        "1 endings: a book of 6 has 2+",
        "1 of 5 sections that are not endings offer two or more choices: at least a third should",
    ]
    assert found.as_json()["meets_the_rules"] is False


def test_paths_from_the_start_to_the_nearest_and_the_farthest_ending() -> None:
    graph = Graph(1, {1: (2, 3), 2: (4,), 3: (), 4: (5,), 5: ()}, frozenset({3, 5}))
    found = graph.figures()
    assert (found.shortest, found.longest) == (1, 3)
    assert found.problems() == []


#: a section as a careless model drafts it: an ending or not, and where its choices lead (any
#: number, in the book or not); titles and texts come from its place (some empty, some digits)
drafted = st.tuples(st.booleans(), st.lists(st.integers(-2, 70), max_size=MAX_CHOICES))
TITLES = ("", "Hall", "Hall", "42", "Über Gate!")


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(st.lists(drafted, min_size=1, max_size=40))
def test_any_draft_is_mended_into_a_book_that_meets_the_rules(
    sections: list[tuple[bool, list[int]]],
) -> None:
    draft = [
        {
            "title": TITLES[n % len(TITLES)],
            "summary": "s",
            "ending": ending,
            "choices": [{"text": TITLES[t % 3], "target": t} for t in targets],
        }
        for n, (ending, targets) in enumerate(sections)
    ]
    shape = Shape.of(len(draft))
    topology, _ = shape.whole({"title": "T", "sections": draft})
    assert_meets_the_rules(topology, len(draft))
    again, notes = shape.whole({"title": "T", "sections": _as_draft(topology)})
    assert notes == [] and again == topology  # what the repair returns needs no repair


def _as_draft(topology: Topology) -> list[dict[str, Any]]:
    return [
        {
            "title": s.title,
            "summary": s.summary,
            "ending": s.ending,
            "choices": [
                {"text": c.text, "target": topology.section(c.target).number} for c in s.choices
            ],
        }
        for s in topology.sections
    ]
