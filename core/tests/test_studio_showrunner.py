"""The Showrunner over a scripted provider: roles, shared providers, loops, retries, resume."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from questfoundry.book.shape import Part, Shape
from questfoundry.config import Config
from questfoundry.contracts.backends import BackendContext
from questfoundry.contracts.errors import NonRetriableProviderError, QuestFoundryError
from questfoundry.contracts.hookspecs import hookimpl
from questfoundry.contracts.records import ProviderReply
from questfoundry.contracts.studio import LoopSpec, Step
from questfoundry.registry import get_plugin_manager
from questfoundry.studio import LoopError, Showrunner, StepContext, StepError
from questfoundry.studio.engine import dependencies
from questfoundry.testing.clock import FakeClock
from questfoundry.testing.drafts import faithful_draft
from questfoundry.testing.scripted import ScriptedProvider

PRICED = {"cost_per_input_token": 0.001, "cost_per_output_token": 0.002}
PREMISE = "A courier crosses a city that rearranges its streets every night."


class CountingProvider(ScriptedProvider):
    """A scripted provider that counts how often each face closes it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.closes = 0
        self.acloses = 0

    def close(self) -> None:
        self.closes += 1
        super().close()

    async def aclose(self) -> None:
        self.acloses += 1


class Providers:
    """Registers providers ``scripted`` and ``other``: every instance built is kept, in order.

    ``script`` is played by the first ``scripted`` instance built.
    """

    def __init__(self, script: list[Any]) -> None:
        self.script = script
        self.built: list[tuple[str, dict[str, Any], CountingProvider]] = []

    @hookimpl
    def providers(self) -> dict[str, Any]:
        def factory(name: str) -> Callable[[Mapping[str, Any], BackendContext], Any]:
            def build(settings: Mapping[str, Any], context: BackendContext) -> CountingProvider:
                first = not self.built
                provider = CountingProvider(self.script if first else ())
                self.built.append((name, dict(settings), provider))
                return provider

            return build

        return {"scripted": factory("scripted"), "other": factory("other")}

    @property
    def main(self) -> CountingProvider:
        return self.built[0][2]

    @property
    def calls(self) -> int:
        return sum(provider.calls for _, _, provider in self.built)


class Loops:
    """Contributes test loops."""

    def __init__(self, *loops: LoopSpec) -> None:
        self.contributed = loops

    @hookimpl
    def loops(self) -> tuple[LoopSpec, ...]:
        return self.contributed


def config(tmp_path: Path, extra: dict[str, Any] | None = None) -> Config:
    data: dict[str, Any] = {
        "providers": {
            "text": {"default": "scripted", "scripted": {"model": "m1"}, "other": {"model": "o1"}},
            "image": {"default": "scripted", "scripted": {"model": "img"}},
        },
        "caching": {"backend": "memory"},
        "rate_limiting": {"providers": {"scripted": dict(PRICED)}},
        "retry": {"max_retries": 0},
    }
    data.update(extra or {})
    return Config(data, None, tmp_path / ".questfoundry", frozenset())


@pytest.fixture
def providers() -> Providers:
    return Providers([])


@pytest.fixture
def studio(tmp_path: Path, providers: Providers) -> Iterator[Callable[..., Showrunner]]:
    """``studio(*loops, extra=..., concurrency=...)``: a Showrunner over the scripted providers."""
    made: list[Showrunner] = []

    def make(*loops: LoopSpec, extra: dict[str, Any] | None = None, **options: Any) -> Showrunner:
        plugins: list[tuple[str, object]] = [("test-providers", providers)]
        if loops:
            plugins.append(("test-loops", Loops(*loops)))
        manager = get_plugin_manager(entry_points=False, plugins=plugins)
        showrunner = Showrunner.from_config(config(tmp_path, extra), manager, clock=FakeClock())
        showrunner.runtime.state.set("book/brief", {"premise": PREMISE})  # none to invent
        if options:
            showrunner = Showrunner(showrunner.runtime, **options)
        made.append(showrunner)
        return showrunner

    yield make
    for showrunner in made:
        showrunner.close()


def texts(provider: ScriptedProvider) -> list[str]:
    """The last (user) message of every request ``provider`` received."""
    return [request.messages[-1].content for request in provider.requests]


async def face_run(showrunner: Showrunner, face: str, loop: str, **options: Any) -> Any:
    if face == "sync":
        return await asyncio.to_thread(showrunner.run, loop, **options)
    return await showrunner.arun(loop, **options)


FACES = pytest.mark.parametrize("face", ["sync", "async"])


# ---------------------------------------------------------------------------- roles


def test_roles_with_equal_provider_settings_share_one_instance(
    studio: Callable[..., Showrunner], providers: Providers
) -> None:
    showrunner = studio(
        extra={
            "roles": {
                "scene_smith": {"provider": "scripted", "model": "m2", "temperature": 0.8},
                "plotwright": {"provider": "other"},
            }
        }
    )
    smith, keeper = showrunner.role("scene_smith"), showrunner.role("gatekeeper")
    assert (smith.resolved.model, keeper.resolved.model) == ("m2", "m1")
    assert smith.provider is keeper.provider  # another model, equal provider settings
    assert showrunner.role("plotwright").provider is not smith.provider
    assert showrunner.role("illustrator").provider is not smith.provider  # image settings
    assert [(name, s["kind"]) for name, s, _ in providers.built] == [
        ("scripted", "text"),
        ("other", "text"),
        ("scripted", "image"),
    ]
    assert showrunner.role("scene_smith") is smith
    showrunner.close()
    showrunner.close()
    assert [provider.closes for _, _, provider in providers.built] == [1, 1, 1]


async def test_an_async_showrunner_closes_every_provider_once(
    studio: Callable[..., Showrunner], providers: Providers
) -> None:
    async with studio() as showrunner:
        await showrunner.role("scene_smith").agenerate("hello")
    await showrunner.aclose()
    assert [(p.acloses, p.closes) for _, _, p in providers.built] == [(1, 1)]


@FACES
async def test_a_role_speaks_under_its_instructions_and_the_ledger_knows_it(
    studio: Callable[..., Showrunner], providers: Providers, face: str
) -> None:
    showrunner = studio(extra={"roles": {"scene_smith": {"temperature": 0.8}}})
    smith = showrunner.role("scene_smith")
    assert smith.resolved.sources["temperature"] == "roles.scene_smith"
    if face == "sync":
        reply = await asyncio.to_thread(smith.generate, "a door", instructions="Be brief.")
    else:
        reply = await smith.agenerate("a door", instructions="Be brief.")
    assert reply.role == "scene_smith" and reply.text == "echo: a door"
    sent = providers.main.requests[0]
    assert sent.params["temperature"] == 0.8
    assert "scene smith" in sent.messages[0].content and "Be brief." in sent.messages[0].content
    rows = {row.key: row for row in showrunner.runtime.ledger.report("role")}
    assert rows["scene_smith"].calls == 1


def test_an_unknown_role_names_the_known_ones(studio: Callable[..., Showrunner]) -> None:
    with pytest.raises(LoopError, match=r"unknown role 'scene_smth' .*scene_smith"):
        studio().role("scene_smth")


# ---------------------------------------------------------------------------- story_spark


@pytest.mark.slow
@FACES
async def test_story_spark_saves_every_artifact_and_a_second_run_is_free(
    studio: Callable[..., Showrunner], providers: Providers, face: str
) -> None:
    showrunner = studio()
    first = await face_run(showrunner, face, "story_spark", sections=3)
    state = showrunner.runtime.state
    topology = state.get("book/topology")
    assert topology is not None and len(topology["sections"]) == 3
    ids = [s["id"] for s in topology["sections"]]
    assert state.list_keys("book/sections/") == sorted(f"book/sections/{i}" for i in ids)
    assert state.list_keys("book/reviews/") == sorted(f"book/reviews/{i}" for i in ids)
    record = state.get(f"runs/{first.run_id}")
    assert record is not None and record["status"] == "done"
    assert record["report"]["totals"]["calls"] == first.totals.calls
    assert state.get("runs/latest/story_spark") == {"run_id": first.run_id}
    assert [u.role for u in first.roles] == ["plotwright", "scene_smith", "gatekeeper"]
    assert first.totals.provider_calls == providers.calls > 0
    assert first.totals.cost > 0

    paid = providers.calls
    second = await face_run(showrunner, face, "story_spark", sections=3)
    assert providers.calls == paid
    assert second.run_id != first.run_id and not second.resumed
    assert second.totals.calls == first.totals.calls == second.totals.cache_hits
    assert second.totals.cost == 0 and second.totals.saved == first.totals.cost + first.totals.saved
    assert state.get("book/topology") == {**topology, "run": second.run_id}


def test_the_report_as_json_has_money_as_strings_and_counts_as_numbers(
    studio: Callable[..., Showrunner],
) -> None:
    report = studio().run("story_spark", sections=2).as_json()
    totals = report["totals"]
    assert isinstance(totals["calls"], int) and isinstance(totals["input_tokens"], int)
    assert isinstance(totals["cost"], str) and "E" not in totals["cost"]
    assert isinstance(totals["waited_seconds"], float)
    json.dumps(report)


def test_a_reply_that_is_not_json_is_asked_again_with_the_error(
    tmp_path: Path, studio: Callable[..., Showrunner], providers: Providers
) -> None:
    providers.script.append(ProviderReply("m1", text="Here is your topology!"))
    report = studio().run("story_spark", sections=2)
    asked = texts(providers.main)
    assert "Here is your topology!" in asked[1] and "the reply is not JSON" in asked[1]
    assert report.roles[0].calls >= 2


def test_a_step_whose_replies_never_parse_fails_in_one_line_and_resumes(
    studio: Callable[..., Showrunner], providers: Providers
) -> None:
    providers.script.extend([ProviderReply("m1", text="no"), ProviderReply("m1", text="[]")])
    showrunner = studio()
    with pytest.raises(StepError) as failure:
        showrunner.run("story_spark", sections=2)
    message = str(failure.value)
    assert message.startswith("story_spark: step draft_topology (plotwright) failed: ")
    assert "again after one retry" in message and "\n" not in message
    pointer = showrunner.runtime.state.get("runs/latest/story_spark")
    assert pointer is not None
    record = showrunner.runtime.state.get(f"runs/{pointer['run_id']}")
    assert record is not None and record["status"] == "failed" and record["steps"] == {}
    assert showrunner.runtime.state.get("book/topology") is None

    report = showrunner.run("story_spark", sections=2)  # the bad replies left the cache
    assert report.resumed and report.run_id == pointer["run_id"]
    assert report.roles[0].role == "plotwright" and report.roles[0].provider_calls >= 1


def test_meaning_problems_are_asked_about_once_then_repaired_and_reported(
    studio: Callable[..., Showrunner], providers: Providers
) -> None:
    broken = {
        "title": "T",
        "sections": [
            {"title": "A", "summary": "", "ending": False, "choices": [{"text": "x", "target": 9}]},
            {"title": "B", "summary": "", "ending": True, "choices": []},
        ],
    }
    providers.script.extend([ProviderReply("m1", text=json.dumps(broken))] * 2)
    report = studio().run("story_spark", sections=2)
    asked = texts(providers.main)
    assert "choices leading to no section or back to their own were dropped (1): 1 → 9" in asked[1]
    assert any("draft_topology: choices leading to no section" in r for r in report.repairs)
    assert any("draft_topology: dead ends" in r for r in report.repairs)
    assert report.roles[0].calls == 2


def test_a_good_draft_is_kept_as_it_is_with_no_repair_and_no_second_ask(
    studio: Callable[..., Showrunner], providers: Providers
) -> None:
    reply = json.dumps({"title": "The Keep", "sections": faithful_draft(Shape.of(6))})
    providers.script.append(ProviderReply("m1", text=reply))
    showrunner = studio()
    report = showrunner.run("story_spark", sections=6)
    assert not [r for r in report.repairs if r.startswith("draft_topology")]
    assert report.roles[0].role == "plotwright" and report.roles[0].calls == 1
    topology = showrunner.runtime.state.get("book/topology")
    assert topology is not None
    assert [(s["number"], s["title"]) for s in topology["sections"]] == [
        (n, f"Room {n}") for n in range(1, 7)
    ]
    first = topology["sections"][0]["choices"]
    assert [c["text"] for c in first] == ["Walk to room 2", "Walk to room 3"]


@pytest.mark.slow
def test_a_book_in_parts_resumes_without_asking_again_for_the_parts_it_saved(
    studio: Callable[..., Showrunner], providers: Providers
) -> None:
    shape = Shape.of(6)  # two sections a reply at max_tokens 600: three parts
    assert [(p.first, p.last) for p in shape.parts(600)] == [(1, 2), (3, 4), (5, 6)]
    acts = [{"title": f"Act {n}", "summary": "s"} for n in (1, 2, 3)]
    part = faithful_draft(shape, Part(1, 2))
    down = NonRetriableProviderError("the service is down", provider="scripted")
    providers.script.extend(
        [
            ProviderReply("m1", text=json.dumps({"title": "The Keep", "acts": acts})),
            ProviderReply("m1", text=json.dumps({"sections": part})),
            down,
        ]
    )
    showrunner = studio(extra={"roles": {"plotwright": {"max_tokens": 600}}}, concurrency=1)
    with pytest.raises(StepError, match=r"^story_spark: step draft_topology \(plotwright\)"):
        showrunner.run("story_spark", sections=6)
    state = showrunner.runtime.state
    assert state.list_keys("book/drafts/") == ["book/drafts/outline", "book/drafts/part-1"]

    report = showrunner.run("story_spark", sections=6)
    again = texts(providers.main)[3:]
    asked = {t.split("Draft sections ")[1][:6] for t in again if "Draft sections" in t}
    assert asked == {"3 to 4", "5 to 6"}  # (each asked again once: the scripted one is nonsense)
    assert not any("Outline a branching gamebook" in t for t in again)
    assert report.resumed and report.roles[0].role == "plotwright"
    topology = state.get("book/topology")
    assert topology is not None and topology["title"] == "The Keep"
    assert [s["title"] for s in topology["sections"][:2]] == ["Room 1", "Room 2"]
    assert state.list_keys("book/drafts/") == []


def test_an_empty_section_is_asked_again_then_marked_as_a_placeholder(
    studio: Callable[..., Showrunner], providers: Providers
) -> None:
    sound = {
        "title": "T",
        "sections": [{"title": "A", "summary": "", "ending": True, "choices": []}],
    }
    passed = ProviderReply("m1", text='{"verdict": "pass", "notes": ""}')
    providers.script.extend(
        [ProviderReply("m1", text=json.dumps(sound))] + [ProviderReply("m1", text=" ")] * 2
    )
    providers.script.append(passed)
    showrunner = studio()
    report = showrunner.run("story_spark", sections=1)
    section = showrunner.runtime.state.get("book/sections/a")
    assert section is not None and section["placeholder"] is True
    assert "It cannot be used: the prose was empty" in texts(providers.main)[2]
    assert report.repairs == ["write_sections: the prose was empty (placeholder written)"]


# ---------------------------------------------------------------------------- the engine


async def test_steps_whose_reads_are_ready_run_at_the_same_time(
    studio: Callable[..., Showrunner],
) -> None:
    order: list[str] = []
    started = {name: asyncio.Event() for name in ("left", "right")}

    def meeting(me: str, other: str) -> Callable[[StepContext], Any]:
        async def run(context: StepContext) -> None:
            started[me].set()
            await asyncio.wait_for(started[other].wait(), 5)  # only if both run at once
            order.append(me)

        return run

    async def join(context: StepContext) -> None:
        order.append("join")

    loop = LoopSpec(
        "meet",
        ("scene_smith", "gatekeeper"),
        steps=(
            Step("join", "gatekeeper", "", join, reads=("l", "r")),
            Step("left", "scene_smith", "", meeting("left", "right"), writes=("l",)),
            Step("right", "gatekeeper", "", meeting("right", "left"), writes=("r",)),
        ),
    )
    await studio(loop).arun("meet")
    assert sorted(order[:2]) == ["left", "right"] and order[2] == "join"


async def test_a_steps_fan_out_is_concurrent_within_its_bound(
    studio: Callable[..., Showrunner],
) -> None:
    flying, most = 0, 0

    async def fan(context: StepContext) -> None:
        async def one(item: int) -> int:
            nonlocal flying, most
            flying += 1
            most = max(most, flying)
            await context.text(f"item {item}")
            flying -= 1
            return item * 2

        assert await context.each(list(range(7)), one) == [i * 2 for i in range(7)]

    loop = LoopSpec("fan", ("scene_smith",), steps=(Step("fan", "scene_smith", "", fan),))
    await studio(loop, concurrency=3).arun("fan")
    assert most == 3


def test_a_run_stopped_mid_step_continues_without_redoing_what_it_saved(
    studio: Callable[..., Showrunner], providers: Providers
) -> None:
    async def write(context: StepContext) -> None:
        async def one(item: int) -> None:
            if await context.made(f"pages/{item}") is None:
                await context.save(f"pages/{item}", {"text": await context.text(f"page {item}")})

        await context.each(list(range(4)), one)

    loop = LoopSpec("pages", ("scene_smith",), steps=(Step("w", "scene_smith", "", write),))
    down = NonRetriableProviderError("the service is down", provider="scripted")
    providers.script.extend([ProviderReply("m1", text="p0"), ProviderReply("m1", text="p1"), down])
    showrunner = studio(loop, concurrency=1)
    with pytest.raises(StepError, match=r"^pages: step w \(scene_smith\) failed: scripted: the"):
        showrunner.run("pages")
    state = showrunner.runtime.state
    assert state.list_keys("pages/") == ["pages/0", "pages/1"]
    assert providers.calls == 3

    report = showrunner.run("pages")
    assert report.resumed and providers.calls == 5
    assert [text.rsplit("\n\n", 1)[-1] for text in texts(providers.main)[3:]] == [
        "page 2",
        "page 3",
    ]  # after each prompt's background
    assert state.list_keys("pages/") == [f"pages/{i}" for i in range(4)]
    assert report.totals.calls == 2


def test_loops_that_cannot_run_say_why_in_one_line(studio: Callable[..., Showrunner]) -> None:
    showrunner = studio(LoopSpec("someday", ("scene_smith",), "named, not built yet"))
    with pytest.raises(LoopError, match=r"unknown loop 'nope' \(runnable loops: art_touch_up, "):
        showrunner.run("nope")
    with pytest.raises(LoopError, match="'someday' has no steps yet"):
        showrunner.run("someday")
    with pytest.raises(LoopError, match="sections must be between 1 and 1000, not 0"):
        showrunner.run("story_spark", sections=0)
    with pytest.raises(StepError, match="has no topology yet: run story_spark first"):
        showrunner.run("binding_run")


async def _nothing(context: StepContext) -> None:
    return None


def test_steps_waiting_in_a_circle_or_writing_one_artifact_twice_are_refused() -> None:
    circle = LoopSpec(
        "circle",
        ("scene_smith",),
        steps=(
            Step("a", "scene_smith", "", _nothing, reads=("y",), writes=("x",)),
            Step("b", "scene_smith", "", _nothing, reads=("x",), writes=("y",)),
        ),
    )
    with pytest.raises(LoopError, match="in a circle: a, b"):
        dependencies(circle)
    twice = LoopSpec(
        "twice",
        ("scene_smith",),
        steps=(
            Step("a", "scene_smith", "", _nothing, writes=("x",)),
            Step("b", "scene_smith", "", _nothing, writes=("x",)),
        ),
    )
    with pytest.raises(LoopError, match="steps a and b both write 'x'"):
        dependencies(twice)
    with pytest.raises(ValueError, match="steps name roles it lacks: \\['gatekeeper'\\]"):
        LoopSpec("odd", ("scene_smith",), steps=(Step("a", "gatekeeper", "", _nothing),))


# ---------------------------------------------------------------------------- the book


@pytest.mark.slow
def test_three_loops_share_state_and_bind_a_book_with_its_images(
    studio: Callable[..., Showrunner], tmp_path: Path
) -> None:
    showrunner = studio()
    showrunner.run("story_spark", sections=3)
    art = showrunner.run("art_touch_up", sections=3)
    assert [u.role for u in art.roles] == ["art_director", "illustrator"]
    assert art.roles[1].model == "img"
    bound = showrunner.run("binding_run", sections=3)
    html = Path(bound.outputs["html"])
    assert html == tmp_path / "book" / "book.html"
    page = html.read_text()
    assert page.count('src="data:image/png;base64,') == 3
    assert Path(bound.outputs["markdown"]).read_text().count("](images/") == 3
    export = showrunner.runtime.state.get("book/export")
    assert export is not None and export["images"] == 3

    state = showrunner.runtime.state
    key = state.list_keys("book/sections/")[0]
    state.set(key, {**(state.get(key) or {}), "prose": "Rewritten since."})
    rebound = showrunner.run("binding_run", sections=3)
    assert rebound.totals.provider_calls == 0
    assert html.read_text().count("data:image/png") == 2
    assert any("left out 1 images made for older prose" in r for r in rebound.repairs)


@pytest.mark.slow
def test_the_report_counts_the_seconds_roles_waited_on_rate_limits(
    studio: Callable[..., Showrunner],
) -> None:
    # concurrent steps share two requests a minute: a call may wait more than the default 60 s
    limits = {
        "global": {"requests_per_minute": 2},
        "providers": {"scripted": dict(PRICED)},
        "max_wait_seconds": 3600,
    }
    report = studio(extra={"rate_limiting": limits}).run("story_spark", sections=2)
    assert report.totals.waited > 0
    assert report.totals.waited == pytest.approx(sum(u.waited for u in report.roles))
    assert report.as_json()["totals"]["waited_seconds"] == round(report.totals.waited, 3)


def test_a_budget_that_would_be_exceeded_stops_the_run_before_anything_is_sent(
    studio: Callable[..., Showrunner], providers: Providers
) -> None:
    limits = {"global": {"cost_per_day": 0.5}, "providers": {"scripted": dict(PRICED)}}
    showrunner = studio(extra={"rate_limiting": limits})
    with pytest.raises(StepError) as stopped:
        showrunner.run("story_spark", sections=2)
    assert str(stopped.value).startswith("story_spark: step draft_topology (plotwright) failed: ")
    assert isinstance(stopped.value, QuestFoundryError) and providers.calls == 0
    pointer = showrunner.runtime.state.get("runs/latest/story_spark")
    assert pointer is not None
    assert (showrunner.runtime.state.get(f"runs/{pointer['run_id']}") or {})["status"] == "failed"


def test_json_cut_off_at_max_tokens_says_which_setting_to_raise(
    studio: Callable[..., Showrunner], providers: Providers
) -> None:
    cut = ProviderReply("m1", text='{"title": "T", "sta', finish_reason="length")
    providers.script.extend([cut, cut])
    with pytest.raises(StepError, match=r"raise roles\.plotwright\.max_tokens\)$"):
        studio().run("story_spark", sections=2)
