"""``hook_harvest``: open threads collected per section, triaged once each, with a reason."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from lore_studio import SECTIONS, Answering, state

from questfoundry.builtins.loops.hook_harvest import NO_REASON
from questfoundry.kit import TOPOLOGY, Topology
from questfoundry.studio import Showrunner, StepError

FOUND = "book/hooks/"


def hook(title: str, *sections: str) -> dict[str, object]:
    return {"title": title, "kind": "mystery", "detail": f"{title}?", "sections": list(sections)}


@pytest.mark.slow
def test_a_hook_naming_a_section_the_book_lacks_is_asked_again_then_repaired(
    studio: Callable[..., Showrunner], answers: Answering
) -> None:
    showrunner = studio()
    topology = Topology.from_dict(state(showrunner, TOPOLOGY))
    door = hook("The sealed door", "99", "1")
    answers.when("hooks", "threads section 2,", reply={"hooks": [door, door]}, times=2)
    report = showrunner.run("hook_harvest", sections=SECTIONS)
    second = topology.by_number(2).id
    assert state(showrunner, FOUND + second)["hooks"] == [
        {
            "id": "the-sealed-door",
            "title": "The sealed door",
            "kind": "mystery",
            "detail": "The sealed door?",
            "sections": [second, topology.by_number(1).id],
        }
    ]
    asked_again = [p for p in answers.prompts("hooks") if "threads section 2," in p][1]
    assert "sections the book does not have (1): 99" in asked_again
    assert "collect_hooks: section 2: hooks named sections the book does not have (1): 99" in (
        report.repairs
    )
    assert "collect_hooks: section 2: hooks listed twice were listed once (1): The sealed door" in (
        report.repairs
    )
    assert not answers.unused()


@pytest.fixture
def two_hooks(answers: Answering) -> None:
    """Section 1 leaves two threads open, the others none."""
    door, storm = hook("The sealed door"), hook("A promised storm")
    answers.when("hooks", "threads section 1,", reply={"hooks": [door, storm]})
    answers.when("hooks", "threads section", reply={"hooks": []}, times=SECTIONS - 1)


@pytest.mark.usefixtures("two_hooks")
def test_a_verdict_without_a_reason_or_given_twice_leaves_the_hook_for_later(
    studio: Callable[..., Showrunner], answers: Answering
) -> None:
    showrunner = studio()
    bare = {"hook": "the-sealed-door", "verdict": "keep", "reason": " "}
    again = {"hook": "the-sealed-door", "verdict": "drop", "reason": "Dull."}
    answers.when("triage", reply={"triage": [bare, again]}, times=2)
    report = showrunner.run("hook_harvest", sections=SECTIONS)
    hooks = state(showrunner, "book/hooks")["hooks"]
    assert [(h["id"], h["triage"], h["reason"]) for h in hooks] == [
        ("the-sealed-door", "later", NO_REASON),
        ("a-promised-storm", "later", NO_REASON),
    ]
    assert report.repairs[-3:] == [
        "triage_hooks: hooks triaged twice kept their first verdict (1): the-sealed-door",
        "triage_hooks: hooks triaged without a reason were left for later (1): the-sealed-door",
        "triage_hooks: hooks left without a verdict were left for later (1): a-promised-storm",
    ]
    assert not answers.unused()


@pytest.mark.usefixtures("two_hooks")
def test_a_verdict_naming_no_hook_is_taken_for_the_hook_listed_in_its_place(
    studio: Callable[..., Showrunner], answers: Answering
) -> None:
    showrunner = studio()
    first = {"hook": "door?", "verdict": "keep", "reason": "The book's central mystery."}
    second = {"hook": "A promised storm", "verdict": "drop", "reason": "Never pays off."}
    answers.when("triage", reply={"triage": [first, second]})
    answers.when("triage", reply={"triage": [{**first, "hook": "the-sealed-door"}, second]})
    report = showrunner.run("hook_harvest", sections=SECTIONS)
    hooks = state(showrunner, "book/hooks")["hooks"]
    assert [(h["id"], h["triage"]) for h in hooks] == [
        ("the-sealed-door", "keep"),
        ("a-promised-storm", "drop"),
    ]
    assert "the list does not hold (1): door?" in answers.prompts("triage")[1]
    assert not [r for r in report.repairs if r.startswith("triage_hooks")]  # sound when asked


def test_hook_harvest_before_story_spark_fails_in_one_line(
    studio: Callable[..., Showrunner],
) -> None:
    with pytest.raises(StepError, match=r"has no topology yet: run story_spark first$"):
        studio(spark=False).run("hook_harvest", sections=SECTIONS)
