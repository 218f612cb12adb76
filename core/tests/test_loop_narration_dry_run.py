"""``narration_dry_run``: the book played along its paths, findings made revision notes, and
``--apply`` revising the sections noted as ``questfoundry revise`` does."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from lore_studio import SECTIONS, Answering, state

from questfoundry.builtins.loops.narration_dry_run import (
    MOST_PATHS,
    covering,
    readings,
    simple_paths,
)
from questfoundry.kit import SECTIONS as PROSE
from questfoundry.kit import TOPOLOGY, Choice, Section, Topology, take_authorship
from questfoundry.studio import Showrunner


def diamonds(count: int) -> Topology:
    """``count`` diamonds in a row (two ways through each: 2**count paths), then an ending;
    and a section no path reaches."""
    sections = []
    for n in range(count):
        join = f"j{n + 1}" if n + 1 < count else "end"
        sections += [
            Section(f"j{n}", "J", "", (Choice("left", f"l{n}"), Choice("right", f"r{n}"))),
            Section(f"l{n}", "L", "", (Choice("on", join),)),
            Section(f"r{n}", "R", "", (Choice("on", join),)),
        ]
    sections += [Section("end", "End", ""), Section("lost", "Lost", "", (Choice("x", "end"),))]
    return Topology("Diamonds", "j0", tuple(sections))


def test_a_book_of_few_paths_is_played_along_every_simple_path() -> None:
    topology = diamonds(3)
    paths, sampled = readings(topology)
    assert not sampled and len(paths) == 8 == len({tuple(p) for p in paths})
    assert all(p[0] == "j0" and p[-1] == "end" and len(set(p)) == len(p) for p in paths)


def test_a_book_of_too_many_paths_is_sampled_covering_every_section_it_reaches() -> None:
    topology = diamonds(7)  # 128 paths
    assert simple_paths(topology, MOST_PATHS) is None
    paths, sampled = readings(topology)
    assert sampled and paths == covering(topology)
    passed = {ident for path in paths for ident in path}
    assert passed == set(topology.ids) - {"lost"}
    assert len(paths) <= 8 and all(p[0] == "j0" and p[-1] == "end" for p in paths)


@pytest.mark.slow
def test_arbitrary_answers_play_every_path_and_a_second_run_is_free(
    studio: Callable[..., Showrunner],
) -> None:
    showrunner = studio()
    first = showrunner.run("narration_dry_run", sections=SECTIONS)
    _, paths = played(showrunner)
    summary = state(showrunner, "book/playtest")
    assert summary["paths"] == len(paths) and not summary["sampled"]
    assert f"played every one of the {len(paths)} paths from the start to an ending" in (
        first.notes
    )
    for index, path in enumerate(paths, 1):
        reading = state(showrunner, f"book/playtest/paths/{index}")
        assert reading["path"] == path
        assert all(f["section"] in path and f["note"] for f in reading["findings"])
    notes = showrunner.runtime.state.list_keys("book/playtest/notes/")
    noted = {key.rpartition("/")[2] for key in notes}
    assert noted == set(summary["sections"])
    assert first.roles[0].role == "player_narrator"  # the stand-in names no real section

    second = showrunner.run("narration_dry_run", sections=SECTIONS)
    assert second.totals.provider_calls == 0 and second.totals.cost == 0
    assert second.totals.cache_hits == first.totals.calls


def played(showrunner: Showrunner) -> tuple[Topology, list[list[str]]]:
    """The book's topology and every simple path through it."""
    topology = Topology.from_dict(state(showrunner, TOPOLOGY))
    paths = simple_paths(topology, MOST_PATHS)
    assert paths is not None
    return topology, paths


def test_a_finding_naming_a_section_the_book_lacks_is_asked_again_then_dropped(
    studio: Callable[..., Showrunner], answers: Answering
) -> None:
    showrunner = studio()
    topology, paths = played(showrunner)
    start = topology.section(topology.start)
    ghost = {"section": "99", "kind": "confusion", "note": "Who is the ferryman?"}
    real = {"section": f"#{start.number}", "kind": "contradiction", "note": "The lamp was lit."}
    answers.when("playtest", reply={"findings": [ghost, real, real]}, times=2 * len(paths))
    report = showrunner.run("narration_dry_run", sections=SECTIONS)
    again = [p for p in answers.prompts("playtest") if "It cannot be used" in p]
    assert len(again) == len(paths)
    assert "findings naming sections the book does not have (1): 99. Answer again" in again[0]
    assert report.repairs == [
        f"play_paths: {len(paths)} findings naming sections the book does not have were "
        "dropped, though the narrator was asked again"
    ]
    for index in range(1, len(paths) + 1):
        assert state(showrunner, f"book/playtest/paths/{index}")["findings"] == [
            {"section": start.id, "kind": "contradiction", "note": "The lamp was lit."}
        ]
    assert state(showrunner, "book/playtest")["sections"] == [start.id]
    assert not answers.unused()


@pytest.mark.slow
def test_apply_revises_the_noted_sections_as_revise_does_but_never_the_authors_own(
    studio: Callable[..., Showrunner], answers: Answering
) -> None:
    showrunner = studio()
    topology, paths = played(showrunner)
    start = topology.section(topology.start)
    own = next(s for s in topology.sections if s.choices and s.id != start.id)
    take_authorship(showrunner.runtime.state, {own.id: "The author's own words."})
    finding = {"kind": "unmotivated_choice", "note": "Why cross the bridge?"}
    on_start, on_own = ({"section": str(s.number), **finding} for s in (start, own))
    through = sum(own.id in path for path in paths)
    answers.when(
        "playtest", f"Section {own.number}, ", reply={"findings": [on_start, on_own]},
        times=through,
    )  # fmt: skip
    answers.when("playtest", reply={"findings": [on_start]}, times=len(paths) - through)
    note = {"verdict": "revise", "notes": "Say why the bridge matters."}
    answers.when("revision_note", reply=note, times=2)
    answers.when("review", reply={"verdict": "pass", "notes": ""})
    listed = showrunner.run("narration_dry_run", sections=SECTIONS)
    assert "run narration_dry_run --apply to have them revised" in " ".join(listed.notes)
    before = state(showrunner, PROSE + start.id)["prose"]

    applied = showrunner.run("narration_dry_run", sections=SECTIONS, options={"apply": True})
    rewrites = [
        r.messages[-1].content
        for r in answers.requests
        if r.messages[0].content.startswith("You are the scene smith")
    ]
    assert len(rewrites) == 1 and "The author's notes:\nSay why the bridge matters." in rewrites[0]
    assert f"Its prose now:\n{before}" in rewrites[0]
    revised = state(showrunner, PROSE + start.id)
    assert revised["prose"] != before and revised["notes"] == "Say why the bridge matters."
    assert state(showrunner, "book/reviews/" + start.id)["verdict"] == "pass"
    assert state(showrunner, PROSE + own.id)["prose"] == "The author's own words."
    assert f"--apply: revised from the playtest's notes: sections {start.number}" in applied.notes
    assert applied.totals.cache_hits == listed.totals.calls  # the playtest itself was free
    assert not answers.unused()
