"""The book's checks and repairs: any shape-valid topology becomes one whose links all work."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest

from questfoundry.book import model as book
from questfoundry.book import render
from questfoundry.book.model import Choice, Section, Topology, reachable
from questfoundry.contracts.errors import StateError
from questfoundry.testing.schema_instance import schema_instance


def section(ident: str, *targets: str, title: str = "A room") -> dict[str, Any]:
    choices = [{"text": f"go {t}", "target": t} for t in targets]
    return {"id": ident, "title": title, "summary": "s", "choices": choices}


def topology(*sections: dict[str, Any], start: str = "a", title: str = "T") -> dict[str, Any]:
    return {"title": title, "start": start, "sections": list(sections)}


def assert_sound(repaired: Topology) -> None:
    ids = repaired.ids
    assert len(set(ids)) == len(ids)
    assert all(book.slug(i) == i and i for i in ids)
    assert repaired.start in ids
    assert all(c.target in ids for s in repaired.sections for c in s.choices)
    assert reachable(repaired.sections, repaired.start) == set(ids)
    assert repaired.title and all(s.title for s in repaired.sections)


def test_a_sound_topology_needs_no_repair() -> None:
    data = topology(section("a", "b", "c"), section("b", "c"), section("c"))
    repaired, notes = book.repair(data)
    assert notes == []
    assert repaired == Topology.from_dict(data)


def test_a_choice_naming_a_missing_section_is_dropped_and_said() -> None:
    repaired, notes = book.repair(topology(section("a", "b", "nowhere"), section("b")))
    assert repaired.section("a").choices == (Choice("go b", "b"),)
    assert notes == ["choices naming sections that do not exist were dropped (1): a → 'nowhere'"]


def test_duplicate_and_empty_ids_are_renumbered_and_links_follow_the_first() -> None:
    data = topology(section("a", "a"), section("a", "Cave"), section(""), section("Cave", "a"))
    repaired, notes = book.repair(data)
    assert repaired.ids == ["a", "s2", "s3", "s4"]
    assert repaired.section("s4").choices[0].target == "a"
    assert repaired.section("s2").choices[0].target == "s4"  # "Cave" renamed, its link kept
    assert any("section ids" in note for note in notes)
    assert_sound(repaired)


def test_a_start_naming_no_section_becomes_the_first() -> None:
    repaired, notes = book.repair(topology(section("x", "y"), section("y"), start="zz"))
    assert repaired.start == "x"
    assert any("start" in note for note in notes)


def test_unreachable_sections_are_linked_from_the_nearest_reachable_one_before() -> None:
    data = topology(section("a"), section("b"), section("c", "b"), start="a")
    repaired, notes = book.repair(data)
    assert [c.target for c in repaired.section("a").choices] == ["b"]
    assert [c.target for c in repaired.section("b").choices] == ["c"]
    assert notes == ["sections no path from the start reached were linked in (2): b, c"]


def test_empty_titles_and_choice_texts_are_filled() -> None:
    data = topology(
        {"id": "a", "title": " ", "summary": "", "choices": [{"text": "", "target": "b"}]},
        section("b", title="Hall"),
        title="",
    )
    repaired, notes = book.repair(data)
    assert repaired.title == "Untitled"
    assert repaired.section("a").title == "Section 1"
    assert repaired.section("a").choices[0].text == "Go to Hall"
    assert len(notes) == 2


@pytest.mark.parametrize("count", [1, 3, 8])
def test_any_instance_of_the_schema_repairs_into_a_sound_topology(count: int) -> None:
    schema = book.topology_schema(count)
    for seed in range(15):
        data = schema_instance(schema, f"seed {seed}")
        jsonschema.validate(data, schema)
        repaired, _ = book.repair(data)
        assert len(repaired.sections) == count
        assert_sound(repaired)
        again, notes = book.repair(repaired.to_dict())
        assert notes == [] and again == repaired


def test_the_html_links_every_choice_to_an_anchor_and_loads_nothing_from_outside() -> None:
    sections = (
        Section("a", "Gate <1>\nand more", "", (Choice('Knock & "wait" [now]', "b"),)),
        Section("b", "Yard", "", ()),
    )
    bound = render.Book(
        Topology("A & B", "a", sections),
        "blurb",
        {"a": "One.\n\nTwo <b>.", "b": "End."},
        {"a": render.Picture("image/png", "iVBORw0KGgo=", 'a "gate"')},
    )
    page = render.to_html(bound)
    ids = set(re.findall(r' id="([^"]+)"', page))
    hrefs = re.findall(r' href="([^"]*)"', page)
    assert hrefs and all(h.startswith("#") and h[1:] in ids for h in hrefs)
    assert re.findall(r' src="([^"]*)"', page) == ["data:image/png;base64,iVBORw0KGgo="]
    assert "<b>" not in page and "Two &lt;b&gt;." in page
    assert "http" not in page and "<script" not in page and "<link" not in page
    markdown = render.to_markdown(bound, {"a": "images/a.png"})
    assert '<a id="sec-b"></a>' in markdown and "(#sec-b)" in markdown
    assert "](images/a.png)" in markdown
    assert (
        "## Gate <1> and more\n" in markdown and '- [Knock & "wait" \\[now\\]](#sec-b)' in markdown
    )


def test_two_choices_to_one_section_keep_the_first() -> None:
    repaired, notes = book.repair(topology(section("a", "b", "b"), section("b")))
    assert repaired.section("a").choices == (Choice("go b", "b"),)
    assert notes == ["choices leading where another choice leads were dropped (1): a → b"]


def test_a_link_names_the_section_spelt_exactly_so_before_one_spelt_alike() -> None:
    data = topology(section("Cave", "cave"), section("cave", "Cave"), start="Cave")
    repaired, _ = book.repair(data)
    assert repaired.ids == ["s1", "cave"]
    assert repaired.section("s1").choices[0].target == "cave"
    assert repaired.section("cave").choices[0].target == "s1"


def test_sections_are_numbered_in_reading_order_and_found_by_number_or_id() -> None:
    data = topology(section("a", "b"), section("b", "c"), section("c"))
    read = Topology.from_dict(data)  # an older document: no numbers yet
    assert [s.number for s in read.sections] == [1, 2, 3]
    assert read.by_number(2).id == "b"
    assert read.section("c") is read.section(3) is read.section("3")
    assert Topology.from_dict(read.to_dict()) == read
    added = Topology(read.title, read.start, (*read.sections, Section("d", "New", "")))
    assert added.section("d").number == 4
    with pytest.raises(KeyError, match="no section 'zz'"):
        read.section("zz")


@pytest.mark.parametrize(
    ("where", "bad"),
    [
        ("section id", '"><script>alert(1)</script>'),
        ("start", "Start Here"),
        ("choice target", "-x"),
        ("section id", "a" * 41),
        ("section id", 7),
    ],
)
def test_ids_that_are_not_valid_are_refused_on_read_with_one_line(where: str, bad: Any) -> None:
    data = topology(section("a", "b"), section("b"))
    if where == "section id":
        data["sections"][1]["id"] = bad
    elif where == "start":
        data["start"] = bad
    else:
        data["sections"][0]["choices"][0]["target"] = bad
    with pytest.raises(StateError) as caught:
        Topology.from_dict(data)
    message = str(caught.value)
    assert where in message and "\n" not in message and len(message) < 160
    assert repr(bad)[:20] in message


def test_a_topology_with_broken_links_or_repeated_numbers_is_refused_on_read() -> None:
    data = topology(section("a", "zz"), section("b"))
    with pytest.raises(StateError, match="choices lead to no section: 'zz'"):
        Topology.from_dict(data)
    data = topology(section("a", "b"), section("b"))
    data["sections"][0]["number"] = data["sections"][1]["number"] = 5
    with pytest.raises(StateError, match="share a number"):
        Topology.from_dict(data)
    with pytest.raises(StateError, match="malformed"):
        Topology.from_dict({"title": "T", "start": "a"})
