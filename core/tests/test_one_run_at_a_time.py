"""One run at a time per project: a run holds a lease on the project's state, so a second run is
refused at once naming the first, or with ``wait`` runs after it; never both at once."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from questfoundry.config import Config
from questfoundry.contracts.errors import StateError
from questfoundry.contracts.records import ProviderReply, ProviderRequest
from questfoundry.registry import get_plugin_manager
from questfoundry.studio import Showrunner
from questfoundry.testing.scripted import ScriptedProvider, scripted_plugin

SECTIONS = 3


class Timed(ScriptedProvider):
    """A scripted provider that notes when each request arrives, and takes a moment over it."""

    def __init__(self, name: str, seen: list[tuple[str, float]]) -> None:
        super().__init__()
        self.name_ = name
        self.seen = seen

    async def agenerate(self, request: ProviderRequest) -> ProviderReply:
        self.seen.append((self.name_, time.monotonic()))
        time.sleep(0.005)  # a provider takes time: runs that overlap would interleave
        return await super().agenerate(request)


def showrunner(project: Path, provider: ScriptedProvider, extra: dict[str, Any]) -> Showrunner:
    data: dict[str, Any] = {
        "providers": {"text": {"default": "scripted", "scripted": {"model": "m"}}},
        "caching": {"enabled": False},
        **extra,
    }
    manager = get_plugin_manager(entry_points=False, plugins=[scripted_plugin(provider)])
    return Showrunner.from_config(Config(data, None, project, frozenset()), manager)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return tmp_path / ".questfoundry"


def run_together(project: Path, extra: dict[str, Any], *, wait: bool) -> list[Any]:
    """Two runs of story_spark on one project, started at the same instant from two threads
    (two runtimes, as two processes have): each one's report, or the error it ended with."""
    seen: list[tuple[str, float]] = []
    runners = [showrunner(project, Timed(name, seen), extra) for name in ("a", "b")]
    start = threading.Barrier(2)
    ended: list[Any] = [None, None]

    def go(index: int) -> None:
        start.wait()
        try:
            ended[index] = runners[index].run("story_spark", sections=SECTIONS, wait=wait)
        except StateError as exc:
            ended[index] = exc

    threads = [threading.Thread(target=go, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for runner in runners:
        runner.close()
    return [*ended, seen]


def interleavings(seen: list[tuple[str, float]]) -> int:
    """How often the provider's next request came from the other run."""
    order = [name for name, _ in sorted(seen, key=lambda item: item[1])]
    return sum(1 for before, after in itertools.pairwise(order) if before != after)


def orphans(project: Path) -> list[str]:
    """Section and review documents not made by the run whose topology the book has."""
    with showrunner(project, ScriptedProvider(), {}) as reader:
        state = reader.runtime.state
        topology = state.get("book/topology") or {}
        keys = state.list_keys("book/sections/") + state.list_keys("book/reviews/")
        return [k for k in keys if (state.get(k) or {}).get("run") != topology.get("run")]


@pytest.mark.slow
def test_two_runs_started_together_take_turns_and_leave_no_orphans(project: Path) -> None:
    first, second, seen = run_together(project, {}, wait=True)
    assert not isinstance(first, Exception) and not isinstance(second, Exception)
    assert interleavings(seen) == 1, "one run's requests, then the other's"
    assert orphans(project) == []


def test_a_second_run_is_refused_at_once_naming_the_first(project: Path) -> None:
    first, second, _ = run_together(project, {}, wait=False)
    refused = [r for r in (first, second) if isinstance(r, StateError)]
    done = [r for r in (first, second) if not isinstance(r, StateError)]
    assert len(refused) == 1 and len(done) == 1, (first, second)
    message = str(refused[0])
    assert "\n" not in message and "another run holds this project" in message
    assert done[0].run_id in message and "story_spark" in message
    assert "pid " in message and "--wait" in message


@pytest.mark.slow
def test_the_lease_is_given_back_when_a_run_fails(project: Path) -> None:
    broken = ScriptedProvider([RuntimeError("the provider broke")])
    with showrunner(project, broken, {}) as runner, pytest.raises(RuntimeError):
        runner.run("story_spark", sections=SECTIONS)
    with showrunner(project, ScriptedProvider(), {}) as runner:
        assert runner.run("story_spark", sections=SECTIONS).resumed
