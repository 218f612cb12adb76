"""docs/studio.md stays true: its plugin example is a loop that runs."""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest

from questfoundry.config import Config
from questfoundry.registry import get_plugin_manager
from questfoundry.studio import Showrunner
from questfoundry.testing.clock import FakeClock
from questfoundry.testing.scripted import ScriptedProvider, scripted_plugin

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "studio.md"


def example(heading: str) -> str:
    """The first Python block after ``heading`` in the guide."""
    text = GUIDE.read_text(encoding="utf-8")
    after = text[text.index(heading) :]
    match = re.search(r"```python\n(.*?)```", after, re.DOTALL)
    assert match is not None, heading
    return match.group(1)


@pytest.mark.slow
def test_the_guides_plugin_loop_runs_after_story_spark(tmp_path: Path) -> None:
    plugin = types.ModuleType("guide_plugin")
    exec(compile(example("### Writing a loop in a plugin"), str(GUIDE), "exec"), vars(plugin))
    data = {"providers": {"text": {"default": "scripted", "scripted": {"model": "m"}}}}
    manager = get_plugin_manager(
        entry_points=False,
        plugins=[scripted_plugin(ScriptedProvider()), ("guide-plugin", plugin)],
    )
    config = Config(data, None, tmp_path / ".questfoundry", frozenset())
    with Showrunner.from_config(config, manager, clock=FakeClock()) as showrunner:
        showrunner.run("story_spark", sections=2)
        report = showrunner.run("epigraphs", sections=2)
        again = showrunner.run("epigraphs", sections=2)
        state = showrunner.runtime.state
        keys = state.list_keys("epigraphs/")
        assert len(keys) == 2 and all((state.get(k) or {})["quote"] for k in keys)
        assert not [k for k in state.list_keys("book/") if "epigraph" in k]  # its own keys only
    assert [(u.role, u.calls) for u in report.roles] == [("epigrapher", 2)]
    assert again.totals.provider_calls == 0 and again.totals.cache_hits == 2
