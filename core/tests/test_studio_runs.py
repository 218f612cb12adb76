"""A loop run over the scripted provider: its spending cap holds however many calls race for it,
its forecast never calls a provider, and what the state holds for its prompts is read safely."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from questfoundry.config import Config
from questfoundry.contracts.hookspecs import hookimpl
from questfoundry.contracts.records import Usage
from questfoundry.contracts.studio import LoopOption, LoopSpec, Step, StepContext
from questfoundry.registry import get_plugin_manager
from questfoundry.studio import Showrunner, StepError
from questfoundry.testing.clock import FakeClock
from questfoundry.testing.scripted import ScriptedProvider, scripted_plugin

PRICED = {"cost_per_input_token": 0.001, "cost_per_output_token": 0.002}
ITEMS = 128


async def fan(context: StepContext) -> None:
    """One call per item, all at once within the studio's concurrency, each saved as made."""

    async def one(item: int) -> None:
        if await context.made(f"items/{item}") is None:
            await context.save(f"items/{item}", {"text": await context.text(f"item {item}")})

    await context.each(list(range(context.options["items"])), one)


class Loops:
    """Contributes the ``fan`` loop."""

    @hookimpl
    def loops(self) -> tuple[LoopSpec, ...]:
        items = LoopOption("items", "How many calls.", "integer", default=ITEMS)
        steps = (Step("fan", "scene_smith", "", fan),)
        return (LoopSpec("fan", ("scene_smith",), steps=steps, options=(items,)),)


@pytest.fixture
def provider() -> ScriptedProvider:
    return ScriptedProvider(usage=Usage(12, 30))


@pytest.fixture
def studio(tmp_path: Path, provider: ScriptedProvider) -> Iterator[Callable[..., Showrunner]]:
    made: list[Showrunner] = []

    def make(concurrency: int = 64, **config: Any) -> Showrunner:
        data = {
            "providers": {"text": {"default": "scripted", "scripted": {"model": "m1"}}},
            "roles": {"scene_smith": {"max_tokens": 40}},
            "caching": {"backend": "memory"},
            "pricing": {"providers": {"scripted": dict(PRICED)}},
            **config,
        }
        manager = get_plugin_manager(
            entry_points=False, plugins=[scripted_plugin(provider), ("test-fan", Loops())]
        )
        config_ = Config(data, None, tmp_path / ".questfoundry", frozenset())
        built = Showrunner.from_config(config_, manager, clock=FakeClock())
        showrunner = Showrunner(built.runtime, concurrency=concurrency)
        made.append(showrunner)
        return showrunner

    yield make
    for showrunner in made:
        showrunner.close()


def paid(provider: ScriptedProvider) -> Decimal:
    """What the provider's answers cost: each answer's usage at the configured prices."""
    each = Decimal(str(PRICED["cost_per_input_token"])) * provider.usage.input_tokens
    each += Decimal(str(PRICED["cost_per_output_token"])) * provider.usage.output_tokens
    return each * provider.calls


@pytest.mark.slow
def test_sixty_four_calls_racing_for_a_cap_never_spend_past_it(
    studio: Callable[..., Showrunner], provider: ScriptedProvider
) -> None:
    showrunner = studio()
    cap = Decimal("5")
    with pytest.raises(
        StepError, match=r"^fan: step fan \(scene_smith\) failed: this run's budget"
    ):
        showrunner.run("fan", budget=cap)
    assert 0 < provider.calls < ITEMS
    assert paid(provider) <= cap
    assert paid(provider) > cap / 2  # stopped by the cap, not before it mattered
    stopped = provider.calls
    resumed = showrunner.run("fan")
    assert resumed.resumed and provider.calls == ITEMS
    assert resumed.totals.calls == ITEMS - stopped


@pytest.mark.slow
def test_calls_the_cache_answers_cost_nothing_and_reserve_nothing(
    studio: Callable[..., Showrunner], provider: ScriptedProvider
) -> None:
    showrunner = studio()
    few = {"items": 12}
    showrunner.run("fan", options=few)
    again = showrunner.run("fan", options=few, budget=Decimal(0))
    assert again.totals.cache_hits == 12 and provider.calls == 12


def test_a_cap_needs_prices_and_says_where_to_set_them(
    studio: Callable[..., Showrunner], provider: ScriptedProvider
) -> None:
    showrunner = studio(pricing={})
    with pytest.raises(StepError, match=r"--budget needs prices, but scripted model 'm1' has none"):
        showrunner.run("fan", budget=Decimal(1))
    assert provider.calls == 0


def test_a_forecast_calls_no_provider_writes_nothing_and_counts_the_cache(
    studio: Callable[..., Showrunner], provider: ScriptedProvider
) -> None:
    showrunner = studio()
    few = {"items": 12}
    first = showrunner.estimate("fan", options=few)
    assert provider.calls == 0 and showrunner.runtime.state.list_keys("") == []
    assert first.status == "estimate" and first.run_id == ""
    assert first.totals.calls == 12 and first.totals.cache_hits == 0 and first.totals.cost > 0
    showrunner.run("fan", options=few)
    cached = showrunner.estimate("fan", options=few)
    assert cached.totals.cache_hits == 12 and cached.totals.cost == 0
    assert provider.calls == 12


def test_a_malformed_canon_entry_fails_the_step_in_one_line_naming_it(
    studio: Callable[..., Showrunner], provider: ScriptedProvider
) -> None:
    showrunner = studio()
    showrunner.runtime.state.set("book/canon/bell", {"name": "Bell", "fact": 7})
    with pytest.raises(StepError) as failed:
        showrunner.run("fan", options={"items": 2})
    assert str(failed.value) == (
        "fan: step fan (scene_smith) failed: book/canon/bell: a canon entry's fact must be "
        "text, not int"
    )
    assert provider.calls == 0


def test_canon_and_the_style_guide_reach_every_prompt(
    studio: Callable[..., Showrunner], provider: ScriptedProvider
) -> None:
    showrunner = studio()
    state = showrunner.runtime.state
    state.set("book/canon/bell", {"name": "Bell", "fact": "It rings at dusk.", "sections": []})
    state.set("book/style", {"guide": "Short sentences.", "rules": ["No slang."]})
    state.set("book/topology", {"title": "T", "start": "x", "sections": "not a list"})
    showrunner.run("fan", options={"items": 3})
    for request in provider.requests:
        prompt = request.messages[-1].content
        assert "Style guide:\nShort sentences.\n- No slang." in prompt
        assert "- Bell: It rings at dusk." in prompt
