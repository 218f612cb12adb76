"""The author directs the studio (issue 18), end to end on the fake OpenAI server: the brief in
every request, revisions and the author's own edits, forecasts and a per-run cap.

The fake records every request it receives, so these tests read what a real provider would have
been sent, and count what would have been paid for.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from questfoundry.book.model import Topology
from questfoundry.cli import cli
from questfoundry.config import load_config
from questfoundry.registry import get_plugin_manager
from questfoundry.studio import Showrunner
from questfoundry.studio.briefing import CLOSE, OPEN
from questfoundry.testing.clock import FakeClock
from questfoundry.testing.fakes import FakeOpenAI, RecordedRequest

KEY = "sk-author-test"
PREMISE = "A lighthouse keeper must keep the light burning through the storm of the century."


@pytest.fixture
def openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def project(folder: Path, server: FakeOpenAI, **extra: Any) -> Path:
    """A project using ``server`` for text and images; its config's path."""
    text = {"api_key": KEY, "base_url": server.base_url, "model": "gpt-4o-mini"}
    config = {
        "providers": {
            "text": {"default": "openai", "openai": text},
            "image": {"default": "openai", "openai": {"model": "gpt-image-1"}},
        },
        "retry": {"max_retries": 0},
        **extra,
    }
    path = folder / ".questfoundry" / "config.yml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(config))
    return path


def showrunner(path: Path, **options: Any) -> Showrunner:
    config = load_config(path, env={"OPENAI_API_KEY": KEY})
    made = Showrunner.from_config(config, get_plugin_manager(), clock=FakeClock())
    return Showrunner(made.runtime, **options) if options else made


def prompts(server: FakeOpenAI) -> list[str]:
    """The user message of every chat request the server received, in order."""
    return [user(r) for r in server.requests if r.path == "/v1/chat/completions"]


def user(request: RecordedRequest) -> str:
    return str(request.body["messages"][-1]["content"])


def block(prompt: str) -> str:
    """The background a prompt starts with (empty when it has none)."""
    if not prompt.startswith(OPEN):
        return ""
    return prompt[: prompt.index(CLOSE) + len(CLOSE)]


# ---------------------------------------------------------------------------- the brief


@pytest.mark.slow
def test_the_brief_and_a_sections_neighbours_reach_the_roles_within_the_budget(
    tmp_path: Path, openai: FakeOpenAI
) -> None:
    budget = 700
    path = project(tmp_path, openai, studio={"context_tokens": budget})
    with showrunner(path) as studio:
        studio.run("story_spark", sections=4, brief={"premise": PREMISE, "tone": "salt-bitten"})
        bound = studio.run("binding_run")
        topology = Topology.from_dict(studio.runtime.state.get("book/topology") or {})
        asked = prompts(openai)
        studio.run("art_touch_up", brief={"genre": "gothic adventure"})
    front = Path(bound.outputs["html"]).read_text(encoding="utf-8")
    assert PREMISE in front and "salt-bitten" in front  # the title page shows the brief
    plans = prompts(openai)[len(asked) :]
    assert len(plans) >= 4 and all("Where this section stands:" in block(p) for p in plans)
    pictures = [r.body["prompt"] for r in openai.requests if r.path == "/v1/images/generations"]
    assert len(pictures) == 4
    assert all(p.endswith("Style: gothic adventure; salt-bitten.") for p in pictures)
    carrying = [p for p in asked if PREMISE in block(p) and "Tone: salt-bitten" in block(p)]
    assert len(asked) > 8 and len(carrying) >= 0.9 * len(asked)
    assert max(math.ceil(len(block(p)) / 4) for p in asked) <= budget

    writes = [p for p in asked if p.startswith(OPEN) and "Write the prose of this section" in p]
    assert len(writes) == 4
    for section in topology.sections:
        (write,) = [p for p in writes if f"Section {section.number} of 4, " in block(p)]
        leading_in = [
            s for s in topology.sections if any(c.target == section.id for c in s.choices)
        ]
        for before in leading_in:
            assert f"- {before.number} {before.title!r}: {before.summary}" in block(write)


@pytest.mark.slow
def test_a_book_without_a_premise_gets_one_from_the_plotwright_saved_and_reported(
    tmp_path: Path, openai: FakeOpenAI
) -> None:
    with showrunner(project(tmp_path, openai)) as studio:
        first = studio.run("story_spark", sections=3)
        premise = (studio.runtime.state.get("book/brief") or {})["premise"]
        (note,) = [n for n in first.notes if "premise" in n]
        invented = "the brief had no premise: the plotwright invented one, saved in the brief"
        assert note == f"{invented}: {premise}"
        asked = prompts(openai)
        assert "Invent its premise" in asked[0] and block(asked[0]) == ""
        assert all(f"Premise: {premise}" in block(p) for p in asked[1:])
        paid = len(openai.requests)
        second = studio.run("story_spark", sections=3)
        assert len(openai.requests) == paid and not [n for n in second.notes if "premise" in n]


# ---------------------------------------------------------------------------- the author's hand


def qf(config: Path, *args: str, **env: str) -> Any:
    result = CliRunner(env={"OPENAI_API_KEY": KEY, **env}).invoke(
        cli, ["--config", str(config), *args]
    )
    return result


def sections(config: Path) -> dict[str, dict[str, Any]]:
    with showrunner(config) as studio:
        state = studio.runtime.state
        return {key: state.get(key) or {} for key in state.list_keys("book/sections/")}


@pytest.mark.slow
def test_revise_and_the_authors_own_edits(tmp_path: Path, openai: FakeOpenAI) -> None:
    config = project(tmp_path, openai)
    assert qf(config, "run", "story_spark", "--sections", "3").exit_code == 0
    with showrunner(config) as studio:
        topology = Topology.from_dict(studio.runtime.state.get("book/topology") or {})
    second, third = (f"book/sections/{topology.by_number(n).id}" for n in (2, 3))

    editor = tmp_path / "editor.py"
    editor.write_text("import sys\nopen(sys.argv[1], 'w').write('My own words, by hand.\\n')\n")
    edited = qf(config, "book", "edit", "2", EDITOR=f"{sys.executable} {editor}")
    assert edited.exit_code == 0, edited.output
    assert "Section 2 is yours now" in edited.output
    before = sections(config)
    assert before[second]["prose"] == "My own words, by hand." and before[second]["author"]

    revised = qf(config, "revise", "3", "--notes", "Make it scarier.", "--json")
    assert revised.exit_code == 0, revised.output
    assert [r["role"] for r in json.loads(revised.stdout)["roles"]] == [
        "scene_smith",
        "gatekeeper",
    ]
    after = sections(config)
    assert after[third] != before[third] and after[third]["notes"] == "Make it scarier."
    assert {k: v for k, v in after.items() if k != third} == {
        k: v for k, v in before.items() if k != third
    }
    assert any("Make it scarier." in p for p in prompts(openai))

    refused = qf(config, "revise", "2", "--notes", "Shorter.")
    assert refused.exit_code == 1 and "Traceback" not in refused.stderr
    assert [line for line in refused.stderr.splitlines() if "Error" in line] == [
        "Error: revision: step rewrite (scene_smith) failed: section 2 is the author's own "
        "(edited by hand): revise it with --force to have the scene smith rewrite it"
    ]

    again = qf(config, "run", "story_spark", "--sections", "3")
    assert again.exit_code == 0, again.output
    assert "Note: kept 1 sections the author wrote" in again.output
    assert sections(config)[second]["prose"] == "My own words, by hand."

    forced = qf(config, "revise", "2", "--notes", "Shorter.", "--force")
    assert forced.exit_code == 0, forced.output
    replaced = sections(config)[second]
    assert replaced["prose"] != "My own words, by hand." and not replaced.get("author")


@pytest.mark.slow
def test_an_unchanged_import_takes_nothing_and_a_changed_one_marks_only_what_differs(
    tmp_path: Path, openai: FakeOpenAI
) -> None:
    from questfoundry.kit import take_authorship

    with showrunner(project(tmp_path, openai)) as studio:
        studio.run("story_spark", sections=3)
        state = studio.runtime.state
        held = {
            k.rsplit("/", 1)[1]: (state.get(k) or {})["prose"]
            for k in state.list_keys("book/sections/")
        }
        first, *rest = held
        respaced = {ident: "  " + text.replace(" ", "\n") for ident, text in held.items()}
        assert take_authorship(state, respaced) == []
        assert take_authorship(state, {**held, first: "Rewritten by me."}) == [first]
        assert (state.get(f"book/sections/{first}") or {})["author"] is True
        assert not any((state.get(f"book/sections/{i}") or {}).get("author") for i in rest)


# ---------------------------------------------------------------------------- forecasts and caps


@pytest.mark.parametrize(
    ("count", "words"),
    [
        (8, 120),
        pytest.param(8, 400, marks=pytest.mark.soak),
        pytest.param(40, 120, marks=pytest.mark.soak),
        pytest.param(40, 400, marks=pytest.mark.soak),
    ],
)
def test_a_forecast_calls_no_provider_and_is_within_half_to_twice_the_real_cost(
    tmp_path: Path, count: int, words: int
) -> None:
    """The stand-in writes prose of the length the prompt asks for, as a model would."""
    options = {"words": words}
    with FakeOpenAI() as server, showrunner(project(tmp_path, server)) as studio:
        forecast = studio.estimate("story_spark", sections=count, options=options)
        assert server.requests == [] and forecast.status == "estimate"
        assert studio.runtime.state.list_keys("") == []  # it changed nothing
        real = studio.run("story_spark", sections=count, options=options)
        ratio = forecast.totals.cost / real.totals.cost
        assert Decimal("0.5") <= ratio <= 2
        paid = len(server.requests)
        cached = studio.estimate("story_spark", sections=count, options=options)
        assert len(server.requests) == paid
        # the forecast of the run again is what that run then pays: $0 when the cache answers
        # it all (a reply refused as unreadable is never cached, so a run that met one asks again)
        again = studio.run("story_spark", sections=count, options=options)
        asked = len(server.requests) - paid
        assert cached.totals.calls - cached.totals.cache_hits == asked
        assert (cached.totals.cost == 0) == (asked == 0) == (again.totals.cost == 0)


@pytest.mark.slow
def test_estimate_on_the_command_line_has_the_run_reports_shape(
    tmp_path: Path, openai: FakeOpenAI
) -> None:
    config = project(tmp_path, openai)
    shown = qf(config, "run", "story_spark", "--sections", "5", "--estimate", "--json")
    assert shown.exit_code == 0, shown.output
    forecast = json.loads(shown.stdout)
    assert openai.requests == []
    assert forecast["status"] == "estimate" and forecast["loop"] == "story_spark"
    assert isinstance(forecast["totals"]["calls"], int) and forecast["totals"]["calls"] > 5
    assert re.fullmatch(r"0\.\d+", forecast["totals"]["cost"])
    assert {r["role"] for r in forecast["roles"]} == {"plotwright", "scene_smith", "gatekeeper"}
    table = qf(config, "run", "story_spark", "--sections", "5", "--estimate")
    assert "no provider called" in table.output and "Already in the cache (free): 0" in table.output


@pytest.mark.slow
def test_run_budget_stops_a_run_before_it_passes_the_cap_and_the_run_resumes(
    tmp_path: Path, openai: FakeOpenAI
) -> None:
    """The race at concurrency 64 is core/tests/test_studio_runs.py's; this is the command."""
    config = project(tmp_path, openai)
    forecast = json.loads(
        qf(config, "run", "story_spark", "--sections", "6", "--estimate", "--json").stdout
    )
    cap = (Decimal(forecast["totals"]["cost"]) / 3).quantize(Decimal("0.000001"))
    stopped = qf(config, "run", "story_spark", "--sections", "6", "--budget", str(cap))
    assert stopped.exit_code == 1
    (error,) = [line for line in stopped.stderr.splitlines() if line.startswith("Error:")]
    assert "this run's budget: $" in error and error.endswith("(saved: run it again to continue)")
    with showrunner(config) as studio:
        spent = sum(row.cost for row in studio.runtime.ledger.report())
    assert 0 < spent <= cap
    paid = len(openai.requests)
    resumed = qf(config, "run", "story_spark", "--sections", "6", "--json")
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["resumed"] and len(openai.requests) > paid
    bad = qf(config, "run", "story_spark", "--budget", "lots")
    assert bad.exit_code == 1 and bad.stderr.strip() == (
        "Error: --budget takes an amount of US dollars such as 0.50, not 'lots'"
    )
