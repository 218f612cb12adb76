"""``translation_pass``: the book carried into another language and checked (bound as an edition
of its own in every format: tests/test_later_loops_end_to_end.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from lore_studio import SECTIONS, Answering, state

from questfoundry.kit import SECTIONS as PROSE
from questfoundry.kit import TOPOLOGY, TRANSLATIONS, Labels, Topology
from questfoundry.studio import Showrunner, StepError

GERMAN = {"language": "de"}
PASS = {"verdict": "pass", "notes": ""}


@pytest.mark.slow
def test_arbitrary_answers_translate_every_part_and_a_second_run_is_free(
    studio: Callable[..., Showrunner],
) -> None:
    showrunner = studio()
    topology = Topology.from_dict(state(showrunner, TOPOLOGY))
    first = showrunner.run("translation_pass", sections=SECTIONS, options=GERMAN)
    made = state(showrunner, TRANSLATIONS + "de")
    assert made["lang"] == "de" and made["title"] != topology.title
    assert set(made["sections"]) == set(topology.ids)
    for section in topology.sections:
        words = made["sections"][section.id]
        assert len(words["choices"]) == len(section.choices)
        assert words["prose"] and words["prose"] != state(showrunner, PROSE + section.id)["prose"]
    assert "{number}" in made["labels"]["turn_to"]  # a label keeps its placeholder, always
    assert [u.role for u in first.roles] == ["translator", "gatekeeper"]
    assert showrunner.runtime.state.list_keys("book/translating/") == []

    second = showrunner.run("translation_pass", sections=SECTIONS, options=GERMAN)
    assert second.totals.provider_calls == 0 and second.totals.cost == 0
    assert state(showrunner, TRANSLATIONS + "de") == {**made, "run": second.run_id}


@pytest.mark.slow
def test_a_translation_identical_to_its_source_is_asked_again_then_marked_untranslated(
    studio: Callable[..., Showrunner], answers: Answering
) -> None:
    showrunner = studio()
    topology = Topology.from_dict(state(showrunner, TOPOLOGY))
    second = topology.by_number(2)
    prose = "The ferryman waits by the black water, lantern raised."
    showrunner.runtime.state.set(PROSE + second.id, {"id": second.id, "prose": prose})
    source = {"title": second.title, "prose": prose, "choices": [c.text for c in second.choices]}
    here = "section 2: its title"
    answers.when("translation", here, reply=source, times=4)
    answers.when("translation_check", here, reply=PASS)
    report = showrunner.run("translation_pass", sections=SECTIONS, options=GERMAN)
    asked = [p for p in answers.prompts("translation") if here in p]
    assert "It cannot be used: sections/" in asked[1] and "texts returned unchanged" in asked[1]
    check = next(p for p in answers.prompts("translation_check") if here in p)
    assert "The studio found untranslated: " in check  # the gatekeeper is told
    assert "The studio found untranslated: " in asked[2]  # and the translator, once more
    assert f"check_translation: sections/{second.id} keeps its source words in: " in " ".join(
        report.repairs
    )
    assert state(showrunner, TRANSLATIONS + "de")["sections"][second.id]["prose"] == prose
    assert not answers.unused()


@pytest.mark.slow
def test_a_label_that_loses_its_placeholder_keeps_the_source_words(
    studio: Callable[..., Showrunner], answers: Answering
) -> None:
    showrunner = studio()
    words: dict[str, Any] = Labels().to_dict()
    german = {
        name: f"{text} (de)" if isinstance(text, str) else {k: f"{v}!" for k, v in text.items()}
        for name, text in words.items()
    }
    german["turn_to"] = "weiter bei"
    answers.when("translation", "the words the book prints", reply=german, times=4)
    answers.when("translation_check", "the words the book prints", reply=PASS)
    report = showrunner.run("translation_pass", sections=SECTIONS, options=GERMAN)
    labels = state(showrunner, TRANSLATIONS + "de")["labels"]
    assert labels["turn_to"] == "turn to {number}" and labels["begin"] == "Begin reading (de)"
    assert "translate: labels: labels that lost their {placeholders} (1): turn_to" in (
        report.repairs
    )


@pytest.mark.parametrize(
    ("language", "said"),
    [
        ("d e", "--language must be a language code such as en, fr or pt-BR, not 'd e'"),
        ("EN", "the book is written in EN already: name another language"),
    ],
)
def test_a_language_that_is_no_code_or_the_books_own_fails_in_one_line(
    studio: Callable[..., Showrunner], language: str, said: str
) -> None:
    with pytest.raises(StepError, match=f"{said}$"):
        studio().run("translation_pass", sections=SECTIONS, options={"language": language})


@pytest.mark.slow
def test_an_interrupted_translation_resumes_asking_only_for_the_parts_it_lacks(
    studio: Callable[..., Showrunner], answers: Answering
) -> None:
    showrunner = studio()
    topology = Topology.from_dict(state(showrunner, TOPOLOGY))
    last = max(s.number for s in topology.sections)
    answers.when("translation", f"section {last}: its title", reply={"nonsense": 1}, times=2)
    with pytest.raises(StepError, match=r"step translate .* again after one retry$"):
        showrunner.run("translation_pass", sections=SECTIONS, options=GERMAN)
    saved = showrunner.runtime.state.list_keys("book/translating/de/sections/")
    asked = len(answers.requests)
    report = showrunner.run("translation_pass", sections=SECTIONS, options=GERMAN)
    assert report.resumed and saved
    again = [
        r.messages[-1].content
        for r in answers.requests[asked:]
        if (r.params.get("response_schema") or {}).get("name") == "translation"
        and "Your translation was:" not in r.messages[-1].content  # the gatekeeper's sending back
    ]
    for key in saved:
        number = topology.section(key.rpartition("/")[2]).number
        assert not [p for p in again if f"section {number}: its title" in p]
    assert any(f"section {last}: its title" in p for p in again)
    assert set(state(showrunner, TRANSLATIONS + "de")["sections"]) == set(topology.ids)
