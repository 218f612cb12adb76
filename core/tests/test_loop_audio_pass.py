"""``audio_pass``: a cue sheet per section, checked and produced (the book's notes and its
sections show it: tests/test_later_loops_end_to_end.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from lore_studio import SECTIONS, Answering, state

from questfoundry.kit import AUDIO, TOPOLOGY, CueSheet, Topology
from questfoundry.studio import Showrunner

PASS = {"verdict": "pass", "notes": ""}


def cue(kind: str, sound: str, placement: str = "throughout", moment: str = "") -> dict[str, str]:
    return {"kind": kind, "sound": sound, "placement": placement, "moment": moment}


@pytest.mark.slow
def test_arbitrary_answers_make_a_cue_sheet_and_a_second_run_is_free(
    studio: Callable[..., Showrunner],
) -> None:
    showrunner = studio()
    first = showrunner.run("audio_pass", sections=SECTIONS)
    sheet = CueSheet.from_dict(state(showrunner, AUDIO))
    topology = Topology.from_dict(state(showrunner, TOPOLOGY))
    assert sheet.cues and set(sheet.cues) <= set(topology.ids)
    assert [u.role for u in first.roles] == ["audio_director", "gatekeeper", "audio_producer"]
    assert showrunner.runtime.state.list_keys(AUDIO + "/") == []  # the working plans are gone

    second = showrunner.run("audio_pass", sections=SECTIONS)
    assert second.totals.provider_calls == 0 and second.totals.cost == 0
    assert CueSheet.from_dict(state(showrunner, AUDIO)) == sheet


@pytest.mark.slow
def test_a_cue_on_words_the_prose_lacks_plays_throughout_and_a_silent_one_goes(
    studio: Callable[..., Showrunner], answers: Answering
) -> None:
    showrunner = studio()
    topology = Topology.from_dict(state(showrunner, TOPOLOGY))
    start = topology.section(topology.start)
    held = cue("effect", "A gull cries", "moment", "ECHO:")  # every prose opens "echo:"
    lost = cue("music", "A low cello", "moment", "the cello starts")
    silent = cue("ambience", "  ")
    plan = {"cues": [held, lost, silent]}
    answers.when("cues", f"Section {start.number}, ", reply=plan, times=2)
    answers.when("cue_review", f"Section {start.number}, ", reply=PASS)
    report = showrunner.run("audio_pass", sections=SECTIONS)
    here = f"Section {start.number}, "
    asked_again = [p for p in answers.prompts("cues") if "It cannot be used" in p and here in p]
    assert len(asked_again) == 1 and "(1): 'the cello starts'" in asked_again[0]
    assert "plan_cues: 1 cues said nothing of what is heard (dropped)" in report.repairs
    sheet = CueSheet.from_dict(state(showrunner, AUDIO))
    assert [(c.kind, c.placement, c.moment) for c in sheet.cues[start.id]] == [
        ("effect", "moment", "ECHO:"),
        ("music", "throughout", ""),
    ]
    assert not answers.unused()


@pytest.mark.slow
def test_cues_the_gatekeeper_sends_back_are_planned_again_from_its_notes(
    studio: Callable[..., Showrunner], answers: Answering
) -> None:
    showrunner = studio()
    topology = Topology.from_dict(state(showrunner, TOPOLOGY))
    start = topology.section(topology.start)
    here = f"Section {start.number}, "
    answers.when("cues", here, reply={"cues": [cue("music", "Brass fanfare")]})
    answers.when("cue_review", here, reply={"verdict": "revise", "notes": "Far too loud."})
    answers.when("cues", "Far too loud.", reply={"cues": [cue("ambience", "Soft rain")]})
    noted = {"notes": ["Field recording, -18 dB, looped."]}
    answers.when("production", f"section {start.number}, ", reply=noted)
    showrunner.run("audio_pass", sections=SECTIONS)
    replanned = [p for p in answers.prompts("cues") if "Far too loud." in p]
    assert len(replanned) == 1 and "- music: Brass fanfare (throughout)" in replanned[0]
    made: dict[str, Any] = state(showrunner, AUDIO)
    assert made["sections"][start.id] == [
        {**cue("ambience", "Soft rain"), "note": "Field recording, -18 dB, looped."}
    ]
    assert not answers.unused()
