"""A studio for the lore loops' tests: a scripted provider that answers chosen requests by rule.

Every other request gets what :class:`~questfoundry.testing.scripted.ScriptedProvider` gives: an
arbitrary valid instance of its schema (senseless but valid), or an echo for prose. Calls are
priced, and the cache is the memory cache, so a second run's cost says whether it was free.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from questfoundry.config import Config
from questfoundry.contracts.records import ProviderReply, ProviderRequest
from questfoundry.registry import get_plugin_manager
from questfoundry.studio import Showrunner
from questfoundry.testing.clock import FakeClock
from questfoundry.testing.scripted import ScriptedProvider, scripted_plugin

PRICED = {"cost_per_input_token": 0.001, "cost_per_output_token": 0.002}
#: few sections keep the suite quick; enough for three depths
SECTIONS = 6


class Answering(ScriptedProvider):
    """A scripted provider with rules: :meth:`when` a structured request named ``name`` holds
    every one of ``words`` in its prompt, it is answered with ``reply`` (``times`` times; an
    exception is raised instead)."""

    def __init__(self) -> None:
        super().__init__()
        self.rules: list[list[Any]] = []

    def when(self, name: str, *words: str, reply: Any, times: int = 1) -> None:
        self.rules.append([name, words, reply, times])

    def _next(self, request: ProviderRequest) -> ProviderReply:
        asked = request.params.get("response_schema") or {}
        prompt = request.messages[-1].content if request.messages else ""
        with self._lock:
            for rule in self.rules:
                name, words, reply, times = rule
                if times and asked.get("name") == name and all(w in prompt for w in words):
                    rule[3] -= 1
                    self.requests.append(request)
                    if isinstance(reply, BaseException):
                        raise reply
                    return ProviderReply(request.model, text=json.dumps(reply), usage=self.usage)
        return super()._next(request)

    def prompts(self, name: str) -> list[str]:
        """The prompt of every structured request named ``name``, in order."""
        return [
            r.messages[-1].content
            for r in self.requests
            if (r.params.get("response_schema") or {}).get("name") == name
        ]

    def unused(self) -> list[tuple[str, tuple[str, ...]]]:
        """The rules that answered fewer times than they were meant to."""
        return [(name, words) for name, words, _, times in self.rules if times]


@pytest.fixture
def answers() -> Answering:
    return Answering()


def showrunner_in(root: Path, provider: ScriptedProvider) -> Showrunner:
    """A Showrunner for the project at ``root`` over ``provider``, priced, with a memory cache."""
    data = {
        "providers": {"text": {"default": "scripted", "scripted": {"model": "m"}}},
        "caching": {"backend": "memory"},
        "rate_limiting": {"providers": {"scripted": dict(PRICED)}},
        "retry": {"max_retries": 0},
    }
    manager = get_plugin_manager(entry_points=False, plugins=[scripted_plugin(provider)])
    config = Config(data, None, root / ".questfoundry", frozenset())
    return Showrunner.from_config(config, manager, clock=FakeClock())


@pytest.fixture(scope="module")
def sparked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The state folder of a project after ``story_spark`` (made once per test session)."""
    root = tmp_path_factory.getbasetemp() / "sparked"
    if not root.exists():
        with showrunner_in(root, ScriptedProvider()) as showrunner:
            showrunner.run("story_spark", sections=SECTIONS)
    return root / ".questfoundry" / "state"


@pytest.fixture
def studio(
    tmp_path: Path, answers: Answering, sparked: Path
) -> Iterator[Callable[..., Showrunner]]:
    """``studio(spark=True)``: a Showrunner over ``answers`` for a project that starts with
    the book ``story_spark`` made (or, with ``spark=False``, with nothing)."""
    made: list[Showrunner] = []

    def make(spark: bool = True) -> Showrunner:
        if spark:
            shutil.copytree(sparked, tmp_path / ".questfoundry" / "state")
        showrunner = showrunner_in(tmp_path, answers)
        made.append(showrunner)
        return showrunner

    yield make
    for showrunner in made:
        showrunner.close()


def state(showrunner: Showrunner, key: str) -> dict[str, Any]:
    """The document at ``key``, which must exist."""
    document = showrunner.runtime.state.get(key)
    assert document is not None, key
    return document
