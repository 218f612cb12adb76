"""A run report's "waited" is wall time: calls waiting on a limit together count once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from questfoundry.config import Config
from questfoundry.contracts.backends import Backend, BackendContext
from questfoundry.contracts.hookspecs import hookimpl
from questfoundry.contracts.records import BucketLevel, Reply
from questfoundry.contracts.studio import LoopSpec, Step
from questfoundry.registry import get_plugin_manager
from questfoundry.studio import Showrunner, StepContext
from questfoundry.studio.report import RoleUsage, RunReport
from questfoundry.testing.scripted import ScriptedProvider, scripted_plugin

CALLS = 4
WAIT = 0.25  # seconds each call is told to wait, all at once


def usage(role: str, *spans: tuple[float, float]) -> RoleUsage:
    """A role whose calls waited from ``start`` to ``end`` of each span."""
    found = RoleUsage(role, "p", "m")
    for start, end in spans:
        found.add(Reply("p", "m", text="x", waited=end - start, waits=((start, end - start),)))
    return found


def report(*roles: RoleUsage) -> RunReport:
    return RunReport("r", "loop", 1, "done", False, list(roles))


def test_waits_at_the_same_time_count_once() -> None:
    smith = usage("scene_smith", (10.0, 20.0), (10.0, 20.0), (15.0, 25.0))
    assert smith.waited == 15.0  # 10..25, not 30
    assert smith.as_json()["waited_seconds"] == 15.0


def test_the_totals_are_the_wall_time_of_every_role_s_waits() -> None:
    smith = usage("scene_smith", (10.0, 20.0))
    keeper = usage("gatekeeper", (12.0, 22.0), (30.0, 31.0))
    totals = report(smith, keeper).totals
    assert totals.waited == 13.0  # 10..22 and 30..31
    assert report(smith, keeper).rows()[-1][-1] == "13.00"


class Slow:
    """Limiter strategy ``slow``: each of the first ``CALLS`` acquires is told to wait ``WAIT``."""

    def __init__(self) -> None:
        self.asked = 0

    @hookimpl
    def limiter_strategies(self) -> dict[str, Any]:
        plugin = self

        class Limiter:
            capabilities: frozenset[str] = frozenset()

            def acquire(self, amounts: Mapping[str, float]) -> float:
                plugin.asked += 1
                return WAIT if plugin.asked <= CALLS else 0.0

            def adjust(self, amounts: Mapping[str, float]) -> None:
                pass

            def levels(self) -> Sequence[BucketLevel]:
                return []

            def close(self) -> None:
                pass

        def make(settings: Mapping[str, Any], context: BackendContext) -> Limiter:
            return Limiter()

        return {"slow": Backend(make)}


async def ask_together(context: StepContext) -> None:
    await context.each(list(range(CALLS)), lambda n: context.text(f"line {n}"))


class Loops:
    @hookimpl
    def loops(self) -> tuple[LoopSpec, ...]:
        step = Step("ask", "scene_smith", "Write.", ask_together)
        return (LoopSpec("together", ("scene_smith",), steps=(step,)),)


@pytest.mark.slow
def test_a_run_whose_calls_wait_together_reports_one_wait(tmp_path: Path) -> None:
    data = {
        "providers": {"text": {"default": "scripted", "scripted": {"model": "m"}}},
        "caching": {"enabled": False},
        "rate_limiting": {"backend": "slow", "global": {"requests_per_minute": 1}},
    }
    plugins = [scripted_plugin(ScriptedProvider()), ("slow", Slow()), ("loops", Loops())]
    manager = get_plugin_manager(entry_points=False, plugins=plugins)
    config = Config(data, None, tmp_path / ".questfoundry", frozenset())
    with Showrunner.from_config(config, manager) as showrunner:
        done = showrunner.run("together", sections=1)
    (smith,) = done.roles
    assert smith.calls == CALLS
    assert WAIT <= done.totals.waited < 2 * WAIT  # the four waits overlapped
    assert done.totals.waited <= done.seconds
