"""``questfoundry book check``: the graph's figures, whether the book meets the rules, and one
line for a state that holds no book or a broken one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from questfoundry.book.shape import Shape
from questfoundry.cli import cli
from questfoundry.config import load_config
from questfoundry.registry import get_plugin_manager
from questfoundry.runtime import Runtime
from questfoundry.testing.drafts import faithful_draft


def project(root: Path, topology: dict[str, Any] | None) -> Path:
    config = root / ".questfoundry" / "config.yml"
    config.parent.mkdir(parents=True)
    config.write_text("{}\n")
    if topology is not None:
        with Runtime(load_config(config), get_plugin_manager()) as runtime:
            runtime.state.set("book/topology", topology)
    return config


def check(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), "book", "check", *args])


def sixteen() -> dict[str, Any]:
    shape = Shape.of(16)
    topology, notes = shape.whole({"title": "The Keep", "sections": faithful_draft(shape)})
    assert notes == []
    return topology.to_dict()


@pytest.mark.slow
def test_a_book_meeting_the_rules_prints_its_figures(tmp_path: Path) -> None:
    config = project(tmp_path, sixteen())
    shown = check(config)
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines() == [
        "The Keep: 16 sections, 2 endings, 12 of 14 others branch (86%)",
        "from the start to an ending: 6 to 7 choices (shortest path, nearest to farthest ending)",
        "unreachable: none; dead ends: none; trapped: none; broken links: none",
        "It meets the rules.",
    ]
    figures = json.loads(check(config, "--json").stdout)
    assert figures["sections"] == 16 and figures["endings"] == 2
    assert figures["shortest_path_to_an_ending"] == 6
    assert figures["longest_shortest_path_to_an_ending"] == 7
    assert figures["meets_the_rules"] is True and figures["problems"] == []


@pytest.mark.slow
def test_a_book_breaking_the_rules_says_how_and_exits_1(tmp_path: Path) -> None:
    broken = sixteen()
    for section in broken["sections"][1:]:
        section["choices"] = []  # the start leads on; nothing after it does
    config = project(tmp_path, broken)
    shown = check(config)
    assert shown.exit_code == 1
    assert "It breaks the rules:" in shown.stdout
    unreached = "- sections no path from the start reaches (13): 4, 5, 6, 7, 8, 9, 10, 11 and 5"
    assert unreached in shown.stdout
    assert json.loads(check(config, "--json").stdout)["meets_the_rules"] is False


@pytest.mark.slow
def test_no_book_or_a_hostile_one_is_one_line(tmp_path: Path) -> None:
    empty = check(project(tmp_path / "empty", None))
    assert empty.exit_code == 1
    assert empty.stderr == "Error: the book has no topology yet: run story_spark first\n"
    hostile = sixteen()
    hostile["start"] = '"><script>alert(1)</script>'
    shown = check(project(tmp_path / "hostile", hostile))
    assert shown.exit_code == 1 and "Traceback" not in shown.output
    assert shown.stderr.startswith("Error: the book's start '\"><script>alert(1)</sc")
    assert len(shown.stderr.splitlines()) == 1
