"""The book's model read from state: numbered sections, found by number or id, and ids that are
not valid refused with one line."""

from __future__ import annotations

from typing import Any

import pytest

from questfoundry.book.model import Choice, Section, Topology
from questfoundry.contracts.errors import StateError


def section(ident: str, *targets: str, title: str = "A room") -> dict[str, Any]:
    choices = [{"text": f"go {t}", "target": t} for t in targets]
    return {"id": ident, "title": title, "summary": "s", "choices": choices}


def topology(*sections: dict[str, Any], start: str = "a", title: str = "T") -> dict[str, Any]:
    return {"title": title, "start": start, "sections": list(sections)}


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
    assert read.has("c") and not read.has("zz")
    assert not read.has("3") and not read.has(3)  # type: ignore[arg-type]  # numbers are not ids


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


def test_a_section_without_choices_is_an_ending_unless_it_says_it_is_a_dead_end() -> None:
    data = topology(section("a", "b", "c"), section("b"), section("c"))
    data["sections"][2]["ending"] = False
    read = Topology.from_dict(data)
    assert [s.ending for s in read.sections] == [False, True, False]
    assert Section("x", "X", "", (Choice("go", "y"),), ending=True).ending is False
    data["sections"][1]["ending"] = "yes"
    with pytest.raises(StateError, match="ending flag 'yes' is not true or false"):
        Topology.from_dict(data)
