"""What the author tells the studio from the command line: ``brief``, ``init``'s questions, and
the options ``run LOOP`` takes (those every loop takes and those a loop declares)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from questfoundry.cli import cli
from questfoundry.config import load_config
from questfoundry.contracts.brief import BRIEF
from questfoundry.contracts.errors import LoopError
from questfoundry.contracts.studio import LoopOption, LoopSpec
from questfoundry.registry import get_plugin_manager
from questfoundry.runtime import Runtime

#: the environment of a questfoundry process: this project's config, no key, no Ollama near
ENV = {k: v for k, v in os.environ.items() if k not in ("QUESTFOUNDRY_CONFIG", "OPENAI_API_KEY")}
ENV |= {"GEMINI_API_KEY": "", "OLLAMA_HOST": "127.0.0.1:9"}


def qf(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def saved_brief(config: Path) -> dict[str, Any] | None:
    manager = get_plugin_manager()
    with Runtime(load_config(config, manager=manager), manager) as runtime:
        return runtime.state.get(BRIEF)


@pytest.fixture
def project(in_project: Callable[[str], Path]) -> Path:
    return in_project("{}\n")


# ---------------------------------------------------------------------------- brief


@pytest.mark.slow
def test_brief_sets_the_fields_given_and_shows_the_whole_brief(project: Path) -> None:
    assert "The brief is empty" in qf("brief").output
    set_ = qf("brief", "--premise", "A lighthouse keeper's last night.", "--tone", "wry", "--json")
    assert set_.exit_code == 0, set_.output
    assert json.loads(set_.output)["premise"] == "A lighthouse keeper's last night."
    qf("brief", "--sections", "12", "--pov", "first")
    shown = json.loads(qf("brief", "--json").output)
    assert shown == {
        "premise": "A lighthouse keeper's last night.",
        "genre": "",
        "audience": "",
        "tone": "wry",
        "pov": "first",
        "language": "en",
        "sections": 12,
        "limits": "",
    }
    table = qf("brief").output
    assert "wry" in table and "first person" in table and "12 sections" in table
    qf("brief", "--tone", "")
    assert json.loads(qf("brief", "--json").output)["tone"] == ""


@pytest.mark.parametrize(
    ("flag", "value", "problem"),
    [
        ("--pov", "fourth", "pov must be one of second, first, third, not 'fourth'"),
        (
            "--language",
            "English please",
            "language must be a language code such as en, fr or pt-BR, not 'English please'",
        ),
        ("--sections", "twelve", "sections must be a whole number from 1, not 'twelve'"),
        ("--sections", "0", "sections must be a whole number from 1, not 0"),
    ],
)
def test_a_bad_brief_value_is_one_line_and_changes_nothing(
    project: Path, flag: str, value: str, problem: str
) -> None:
    qf("brief", "--premise", "kept")
    refused = qf("brief", flag, value, "--genre", "lost")
    assert refused.exit_code == 1
    assert refused.stderr.strip().splitlines() == [f"Error: the brief's {problem}"]
    brief = saved_brief(project)
    assert brief is not None and (brief["premise"], brief["genre"]) == ("kept", "")


# ---------------------------------------------------------------------------- init


def test_init_saves_the_brief_its_flags_give_without_asking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ENV.keys() ^ os.environ.keys():
        monkeypatch.delenv(name, raising=False)
    made = CliRunner(env={"OLLAMA_HOST": "127.0.0.1:9"}).invoke(
        cli, ["init", "--provider", "demo", "--premise", "Tides.", "--sections", "9"]
    )
    assert made.exit_code == 0, made.output
    assert "?" not in made.output
    brief = saved_brief(tmp_path / ".questfoundry" / "config.yml")
    assert brief is not None and (brief["premise"], brief["sections"]) == ("Tides.", 9)


@pytest.mark.slow
def test_init_in_a_pipe_never_waits_for_input(tmp_path: Path) -> None:
    """stdin is a pipe nobody writes to or closes: a read would block until the timeout."""
    init = subprocess.Popen(
        [sys.executable, "-m", "questfoundry", "init", "--provider", "demo"],
        cwd=tmp_path,
        env=ENV,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = init.communicate(timeout=30)
    finally:
        assert init.stdin is not None
        init.stdin.close()
    assert init.returncode == 0, err
    assert "Wrote" in out and "brief" not in out
    assert saved_brief(tmp_path / ".questfoundry" / "config.yml") is None


class Terminal(io.BytesIO):
    """What a person types at a terminal: input that says it is a TTY."""

    def isatty(self) -> bool:
        return True


def test_init_on_a_terminal_asks_for_the_brief_and_checks_each_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QUESTFOUNDRY_CONFIG", raising=False)
    answers = ["A heist in a cathedral.", "", "", "tense", "fourth", "first", "", "x", "8", ""]
    typed = Terminal("".join(f"{answer}\n" for answer in answers).encode())
    asked = CliRunner(env={"OLLAMA_HOST": "127.0.0.1:9"}).invoke(
        cli, ["init", "--provider", "demo"], input=typed
    )
    assert asked.exit_code == 0, asked.output
    assert "What is the book about?" in asked.output and "Saved the brief" in asked.output
    assert (
        "pov must be one of" in asked.output and "sections must be a whole number" in asked.output
    )
    brief = saved_brief(tmp_path / ".questfoundry" / "config.yml")
    assert brief is not None
    assert (brief["premise"], brief["tone"], brief["pov"], brief["sections"]) == (
        "A heist in a cathedral.",
        "tense",
        "first",
        8,
    )
    no_input = CliRunner().invoke(cli, ["init", "--force", "--no-input"], input=Terminal(b""))
    assert no_input.exit_code == 0 and "?" not in no_input.output


# ---------------------------------------------------------------------------- run's options


def test_run_loop_help_lists_the_options_that_loop_declares(project: Path) -> None:
    revision = qf("run", "revision", "--help")
    assert revision.exit_code == 0
    assert "--section" in revision.output and "--notes" in revision.output
    assert "(required)" in revision.output
    for common in ("--sections", "--premise", "--estimate", "--budget", "--force", "--json"):
        assert common in revision.output
    assert "--notes" not in qf("run", "story_spark", "--help").output


def test_a_flag_the_loop_does_not_take_is_one_line_naming_the_loops_that_do(
    project: Path,
) -> None:
    taken = qf("run", "story_spark", "--notes", "scarier")
    assert taken.exit_code == 2
    assert taken.stderr.splitlines() == [
        "Error: run story_spark takes no --notes; loops that take it: revision"
    ]
    nobody = qf("run", "--premise", "x", "story_spark", "--no-such-flag")
    assert nobody.stderr.splitlines() == [
        "Error: run story_spark takes no --no-such-flag (no loop does); "
        "see: questfoundry run story_spark --help"
    ]


def test_a_loop_reads_its_declared_options_as_their_kinds() -> None:
    loop = LoopSpec(
        "l",
        (),
        options=(
            LoopOption("count", "n", "integer", default=2),
            LoopOption("apply", "a", "flag"),
            LoopOption("to", "t", "choice", choices=("fr", "de"), required=True),
        ),
    )
    assert loop.options_of({"to": "fr"}) == {"count": 2, "apply": None, "to": "fr"}
    assert loop.options_of({"to": "de", "count": "5", "apply": "yes"}) == {
        "count": 5,
        "apply": True,
        "to": "de",
    }
    for given, problem in [
        ({}, "loop 'l' needs --to"),
        ({"to": "it"}, "--to takes one of fr, de, not 'it'"),
        ({"to": "fr", "count": "many"}, "--count takes a whole number, not 'many'"),
        ({"to": "fr", "colour": "red"}, "loop 'l' takes no option 'colour'"),
    ]:
        with pytest.raises(LoopError, match=problem):
            loop.options_of(given)
    with pytest.raises(ValueError, match="two options share a name"):
        LoopSpec("m", (), options=(LoopOption("a", ""), LoopOption("a", "")))
    with pytest.raises(ValueError, match="every loop takes --budget already"):
        LoopSpec("m", (), options=(LoopOption("budget", ""),))
    with pytest.raises(LoopError, match="--count takes 1 to 9, not 12"):
        LoopSpec(
            "m", (), options=(LoopOption("count", "", "integer", minimum=1, maximum=9),)
        ).options_of({"count": "12"})
