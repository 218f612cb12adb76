"""``questfoundry plugins`` and ``questfoundry run --help`` say what each loop makes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from questfoundry.cli import cli
from questfoundry.registry import get_plugin_manager


@pytest.mark.slow
def test_plugins_and_run_help_list_every_runnable_loop_with_what_it_makes(
    in_project: Callable[[str], Path],
) -> None:
    in_project("")
    loops = {n: s.description for n, s in get_plugin_manager().loops().items() if s.steps}
    assert {"hook_harvest", "lore_deepening", "codex_expansion"} <= set(loops)
    assert all(about and "\n" not in about for about in loops.values())
    runner = CliRunner()
    listed = json.loads(runner.invoke(cli, ["plugins", "--json"]).output)
    described = {k: v for p in listed for k, v in p["descriptions"].items()}
    assert {f"loop {name}": about for name, about in loops.items()}.items() <= described.items()
    shown = runner.invoke(cli, ["plugins"], env={"COLUMNS": "400"}).output
    assert all(f"loop: {name} — {about}" in shown for name, about in loops.items())
    helped = runner.invoke(cli, ["run", "--help"], terminal_width=400).output
    assert "Loops:" in helped
    assert all(
        " ".join(f"{name} {about}".split()) in " ".join(helped.split())
        for name, about in loops.items()
    )
