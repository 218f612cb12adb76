"""``questfoundry run`` on a terminal: one rich progress bar per step."""

from __future__ import annotations

import io

from rich.console import Console

from questfoundry.cli.run import _bars
from questfoundry.studio import StepProgress


def event(step: str, done: int, total: int, status: str) -> StepProgress:
    return StepProgress("story_spark", step, "scene_smith", done, total, status)


def test_a_terminal_shows_a_bar_per_step_that_ends_full_or_says_why_not() -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100, color_system=None)
    with _bars(console) as update:
        update(event("draft", 0, 1, "skipped"))
        update(event("write", 0, 1, "running"))
        update(event("write", 0, 4, "running"))
        update(event("write", 3, 4, "running"))
        update(event("write", 1, 1, "done"))
        update(event("review", 0, 4, "running"))
        update(event("review", 1, 4, "running"))
        update(event("review", 0, 1, "failed"))
    final = screen.getvalue().rsplit("\x1b[2K", 1)[-1]  # the last frame: a line per step
    assert len([line for line in final.splitlines() if "(scene_smith)" in line]) == 3
    assert "draft (scene_smith) · skipped" in final and "1/1" in final
    assert "write (scene_smith)" in final and "4/4" in final
    assert "review (scene_smith) · failed" in final and "1/4" in final
