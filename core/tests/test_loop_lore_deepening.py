"""``lore_deepening``: kept hooks become canon, checked for plausibility and contradictions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from lore_studio import SECTIONS, Answering, state

from questfoundry.kit import CANON, TOPOLOGY, NonRetriableProviderError, Topology
from questfoundry.studio import Showrunner, StepError

PLAUSIBLE = {"verdict": "plausible", "notes": ""}
AGREES: dict[str, list[Any]] = {"contradictions": []}


def entry(kind: str, name: str, fact: str, *sections: str) -> dict[str, Any]:
    return {"kind": kind, "name": name, "fact": fact, "when": "", "sections": list(sections),
            "tags": ["mill"]}  # fmt: skip


def kept(showrunner: Showrunner, *hooks: tuple[str, int]) -> Topology:
    """Save a harvest keeping a hook per (title, section number); the book's topology."""
    topology = Topology.from_dict(state(showrunner, TOPOLOGY))
    harvest = [
        {"id": title.lower().replace(" ", "-"), "title": title, "kind": "mystery",
         "detail": f"{title}?", "sections": [topology.by_number(number).id], "triage": "keep",
         "reason": "It matters."}
        for title, number in hooks
    ]  # fmt: skip
    showrunner.runtime.state.set("book/hooks", {"hooks": harvest})
    return topology


def canon(showrunner: Showrunner) -> dict[str, dict[str, Any]]:
    prefix = len(CANON)
    return {k[prefix:]: state(showrunner, k) for k in showrunner.runtime.state.list_keys(CANON)}


@pytest.mark.parametrize("mended", [True, False])
def test_canon_contradicting_an_earlier_entry_is_rewritten_once_then_refused(
    studio: Callable[..., Showrunner], answers: Answering, mended: bool
) -> None:
    showrunner = studio()
    kept(showrunner, ("The old mill", 1), ("The debt", 2))
    burned = entry("place", "Ashford Mill", "The mill burned down ten years ago.", "1")
    grinds = entry("fact", "The debt", "The miller grinds grain at Ashford Mill every day.", "2")
    person = entry("person", "Ashford Mill", "A tall stranger.", "2")
    rent = entry("fact", "The debt", "The miller owes rent on the ruined mill.", "2")
    answers.when("canon", "Deepen", "The old mill", reply={"entries": [burned]})
    answers.when("canon", "Deepen", "The debt", reply={"entries": [grinds, person]})
    answers.when("research", reply=PLAUSIBLE, times=2)
    answers.when("contradictions", "New canon:\n- Ashford Mill (place", reply=AGREES)
    flagged = {"entry": "The debt", "contradicts": "Ashford Mill", "why": "it burned down"}
    answers.when("contradictions", "New canon:\n- The debt", reply={"contradictions": [flagged]})
    answers.when("canon", "contradicting", reply={"entries": [rent, person]})
    answer = AGREES if mended else {"contradictions": [flagged]}
    answers.when("contradictions", "New canon:\n- The debt (fact", "owes rent", reply=answer)
    report = showrunner.run("lore_deepening", sections=SECTIONS)

    checked = next(p for p in answers.prompts("contradictions") if "- The debt" in p)
    assert "Ashford Mill (place; sections 1): The mill burned down ten years ago." in checked
    rewrite = next(p for p in answers.prompts("canon") if "contradicting" in p)
    assert "- The debt: Ashford Mill: it burned down" in rewrite
    assert "- Ashford Mill: 'Ashford Mill' is already a place" in rewrite
    made = canon(showrunner)
    assert made["ashford-mill"]["fact"] == "The mill burned down ten years ago."
    assert made["ashford-mill"]["kind"] == "place"
    refused = [r for r in report.repairs if "refused" in r]
    if mended:
        assert made["the-debt"]["fact"] == "The miller owes rent on the ruined mill."
        assert refused == [
            "check_contradictions: canon of 'the-debt' refused for contradicting what is "
            "established (1): Ashford Mill ('Ashford Mill' is already a place)"
        ]
    else:
        assert "the-debt" not in made
        assert "The debt (Ashford Mill: it burned down)" in refused[0]
    assert not answers.unused()


def test_implausible_canon_is_rewritten_from_the_researchers_notes(
    studio: Callable[..., Showrunner], answers: Answering
) -> None:
    showrunner = studio()
    kept(showrunner, ("The old mill", 1))
    underwater = entry("place", "Ashford Mill", "The mill burns under the lake.", "1")
    ashes = entry("place", "Ashford Mill", "The mill burned down ten years ago.", "1")
    answers.when("canon", "Deepen", reply={"entries": [underwater]})
    notes = "Nothing burns under a lake."
    answers.when("research", reply={"verdict": "implausible", "notes": notes})
    answers.when("canon", "implausible", notes, reply={"entries": [ashes]})
    answers.when("contradictions", reply=AGREES)
    showrunner.run("lore_deepening", sections=SECTIONS)
    assert canon(showrunner)["ashford-mill"]["fact"] == "The mill burned down ten years ago."
    assert state(showrunner, "book/lore/drafts/the-old-mill")["revised"] is True
    assert not answers.unused()


def test_the_authors_canon_is_held_against_and_never_overwritten(
    studio: Callable[..., Showrunner], answers: Answering
) -> None:
    showrunner = studio()
    kept(showrunner, ("The old mill", 1))
    theirs = {"name": "The Old Mill", "fact": "It stands by the river.", "tags": ["mill"]}
    showrunner.runtime.state.set(CANON + "mill", theirs)  # no kind, no sections: still canon
    answers.when("canon", "Deepen", reply={"entries": [entry("fact", "Mill", "It burned.", "1")]})
    answers.when("research", reply=PLAUSIBLE)
    answers.when("contradictions", reply=AGREES)
    report = showrunner.run("lore_deepening", sections=SECTIONS)
    (checked,) = answers.prompts("contradictions")
    assert "Established canon:\n- The Old Mill (fact; sections none): It stands by the river." in (
        checked
    )
    assert canon(showrunner) == {"mill": theirs}
    assert "establish_canon: canon whose key holds canon this loop did not make was left out " \
        "(1): Mill" in report.repairs  # fmt: skip


def test_a_run_stopped_by_a_failing_check_continues_without_drafting_again(
    studio: Callable[..., Showrunner], answers: Answering
) -> None:
    showrunner = studio()
    kept(showrunner, ("The old mill", 1), ("The debt", 2))
    burned = entry("place", "Ashford Mill", "The mill burned down ten years ago.", "1")
    debt = entry("fact", "The debt", "The miller owes rent.", "2")
    answers.when("canon", "Deepen", "The old mill", reply={"entries": [burned]})
    answers.when("canon", "Deepen", "The debt", reply={"entries": [debt]})
    answers.when("research", reply=PLAUSIBLE, times=2)
    answers.when("contradictions", "New canon:\n- Ashford Mill", reply=AGREES)
    outage = NonRetriableProviderError("the gatekeeper's provider is down", provider="scripted")
    answers.when("contradictions", "New canon:\n- The debt", reply=outage)
    with pytest.raises(
        StepError, match=r"check_contradictions .*the gatekeeper's provider is down"
    ):
        showrunner.run("lore_deepening", sections=SECTIONS)
    assert canon(showrunner) == {}  # nothing established from half a check
    asked = len(answers.requests)
    answers.when("contradictions", "New canon:\n- The debt", reply=AGREES)
    report = showrunner.run("lore_deepening", sections=SECTIONS)
    assert report.resumed and report.skipped == ["draft_canon", "check_plausibility"]
    assert [(u.role, u.calls) for u in report.roles] == [("gatekeeper", 1)]
    assert len(answers.requests) == asked + 1  # the debt's check; the mill's was saved
    assert set(canon(showrunner)) == {"ashford-mill", "the-debt"}


def test_the_canon_reaches_the_prompts_of_the_sections_it_concerns(
    studio: Callable[..., Showrunner], answers: Answering
) -> None:
    showrunner = studio()
    topology = kept(showrunner, ("The old mill", 1))
    burned = entry("place", "Ashford Mill", "The mill burned down ten years ago.", "1")
    answers.when("canon", "Deepen", reply={"entries": [burned]})
    answers.when("research", reply=PLAUSIBLE)
    answers.when("contradictions", reply=AGREES)
    showrunner.run("lore_deepening", sections=SECTIONS)
    before = len(answers.requests)
    first = topology.by_number(1).id
    showrunner.run("revision", sections=SECTIONS, options={"section": first, "notes": "Darker."})
    rewrite = answers.requests[before]
    assert rewrite.messages[0].content.startswith("You are the scene smith")
    assert "Ashford Mill: The mill burned down ten years ago." in rewrite.messages[-1].content


def test_an_earlier_runs_canon_goes_but_the_authors_own_stays(
    studio: Callable[..., Showrunner],
) -> None:
    showrunner = studio()
    kept(showrunner)
    store = showrunner.runtime.state
    store.set(CANON + "old", {"name": "Old", "fact": "From a run.", "hook": "gone", "run": "x"})
    store.set(CANON + "king", {"name": "The king", "fact": "He is old.", "sections": []})
    report = showrunner.run("lore_deepening", sections=SECTIONS)
    assert list(canon(showrunner)) == ["king"]
    assert report.notes == ["hook_harvest kept no hook: there is nothing to deepen into canon"]


def test_lore_deepening_before_hook_harvest_fails_in_one_line(
    studio: Callable[..., Showrunner],
) -> None:
    with pytest.raises(StepError, match=r"no triaged hooks yet: run hook_harvest first$"):
        studio().run("lore_deepening", sections=SECTIONS)
