"""``style_tune_up``: a style guide every later prose prompt carries; sections out of voice
rewritten, the author's own left alone."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from lore_studio import SECTIONS, Answering, state

from questfoundry.kit import SECTIONS as PROSE
from questfoundry.kit import STYLE, TOPOLOGY, StyleGuide, Topology, take_authorship
from questfoundry.studio import Showrunner

GUIDE = {
    "voice": "Hushed, salt-bitten, close to the keeper's breath",
    "register": "Plain words, short sentences",
    "motifs": ["the failing light"],
    "avoid": ["suddenly"],
    "rules": ["Never name the sea's colour."],
}
EMPTY = {"voice": " ", "register": "", "motifs": [], "avoid": [" "], "rules": []}
IN_VOICE = {"verdict": "in_voice", "notes": ""}


def prose(showrunner: Showrunner) -> dict[str, str]:
    topology = Topology.from_dict(state(showrunner, TOPOLOGY))
    return {i: state(showrunner, PROSE + i)["prose"] for i in topology.ids}


def text_prompts(answers: Answering) -> list[str]:
    """The prompt of every prose (not structured) request, in order."""
    return [r.messages[-1].content for r in answers.requests if "response_schema" not in r.params]


@pytest.mark.slow
def test_arbitrary_answers_make_a_guide_of_the_shape_prompts_read_and_a_second_run_is_free(
    studio: Callable[..., Showrunner],
) -> None:
    showrunner = studio()
    first = showrunner.run("style_tune_up", sections=SECTIONS)
    guide = StyleGuide.from_dict(state(showrunner, STYLE))  # the shape every background reads
    assert guide.guide or guide.rules
    assert [u.role for u in first.roles][:2] == ["style_lead", "gatekeeper"]
    assert first.totals.cost > 0
    rewritten = prose(showrunner)

    second = showrunner.run("style_tune_up", sections=SECTIONS)
    assert second.totals.provider_calls == 0 and second.totals.cost == 0
    assert second.totals.cache_hits == first.totals.calls
    assert prose(showrunner) == rewritten  # started from the same prose, made the same


def test_the_guide_reaches_every_later_prose_prompt(
    studio: Callable[..., Showrunner], answers: Answering
) -> None:
    showrunner = studio()
    answers.when("style_guide", reply=GUIDE)
    answers.when("voice", reply={"verdict": "out_of_voice", "notes": "Too loud."}, times=SECTIONS)
    showrunner.run("style_tune_up", sections=SECTIONS)
    said = "Voice: Hushed, salt-bitten, close to the keeper's breath Register: Plain words"
    assert said in state(showrunner, STYLE)["guide"]
    assert "Never use: suddenly" in state(showrunner, STYLE)["rules"]
    checks = answers.prompts("voice")
    assert len(checks) == SECTIONS and all(said in p and "Never use: suddenly" in p for p in checks)
    rewrites = text_prompts(answers)
    assert rewrites and all(said in p and "Too loud." in p for p in rewrites)
    assert not answers.prompts("style_guide")[0].count("Style guide:")  # never its own guide

    showrunner.run("revision", sections=SECTIONS, options={"section": "2", "notes": "Darker."})
    assert said in text_prompts(answers)[-1] and "Darker." in text_prompts(answers)[-1]
    assert not answers.unused()


def test_an_empty_guide_is_asked_again_then_made_from_the_brief(
    studio: Callable[..., Showrunner], answers: Answering
) -> None:
    showrunner = studio()
    answers.when("style_guide", reply=EMPTY, times=2)
    report = showrunner.run("style_tune_up", sections=SECTIONS, brief={"tone": "hushed"})
    assert "It cannot be used: the style guide was empty" in answers.prompts("style_guide")[1]
    assert report.repairs[0].startswith("draft_guide: the style guide was empty")
    guide = StyleGuide.from_dict(state(showrunner, STYLE))
    assert guide.guide == "Voice: Told in the second person, hushed. Register: Plain and concrete."
    assert guide.rules == ()
    assert not answers.unused()


def test_a_section_using_an_avoided_word_is_out_of_voice_but_the_authors_own_is_left_alone(
    studio: Callable[..., Showrunner], answers: Answering
) -> None:
    showrunner = studio()
    before = prose(showrunner)
    topology = Topology.from_dict(state(showrunner, TOPOLOGY))
    own = topology.by_number(3).id
    take_authorship(showrunner.runtime.state, {own: "You wait by the lamp. Echo: nothing."})
    answers.when("style_guide", reply={**GUIDE, "avoid": ["echo"]})  # every prose echoes
    answers.when("voice", reply=IN_VOICE, times=2 * (SECTIONS - 1))
    report = showrunner.run("style_tune_up", sections=SECTIONS)
    after = prose(showrunner)
    assert after[own] == "You wait by the lamp. Echo: nothing."
    assert not showrunner.runtime.state.get("book/voice/" + own)
    for ident in set(topology.ids) - {own}:
        assert state(showrunner, "book/voice/" + ident) == {
            "id": ident,
            "verdict": "out_of_voice",
            "notes": "Do without the words the guide avoids: echo.",
            "run": report.run_id,
        }
        document = state(showrunner, PROSE + ident)
        assert after[ident] != before[ident] and document["styled"]["from"] == before[ident]
    asked_again = [p for p in answers.prompts("voice") if "It cannot be used: a section pass" in p]
    assert len(asked_again) == SECTIONS - 1
    assert "a section passed in voice uses words the style guide avoids (1): echo" in asked_again[0]
    assert "kept 1 sections the author wrote" in " ".join(report.notes)
    assert not answers.unused()
