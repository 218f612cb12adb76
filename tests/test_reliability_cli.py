"""Errors that point at the fix, in one bounded line with a non-zero exit (issue 19, items 5, 8).

Before: a 10,000-deep ``--set`` value or key was a ``RecursionError`` traceback (206 KB and 3 KB
of stderr); a ``config.yml`` linked to a file outside the project printed that file's keys;
``run`` before ``init`` said "no provider for role 'plotwright'"; ``config validate`` in an empty
folder printed "OK: no config file; defaults apply is valid"; ``init`` never said to start the
stand-in, nor that ``OPENAI_API_KEY`` was unset; ``ask --role scene_smth`` answered as a made-up
role; ``roles`` exited 0 with errors in its table; some ``--set`` mistakes were blamed on
config.yml; a plugin disabled as broken was "not installed: pip install …".
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from questfoundry.cli import cli
from questfoundry.cli.app import MAX_LINE
from questfoundry.testing.fakes import FakeOpenAI


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder as the working directory, no config named by the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QUESTFOUNDRY_CONFIG", raising=False)
    return tmp_path


def project(root: Path, text: str) -> Path:
    config = root / ".questfoundry" / "config.yml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(text)
    return config


def qf(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def one_line(result: Result) -> str:
    """The error line of a command that failed as it should: exit 1, one line, no traceback."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.stderr.splitlines() if not line.startswith("Warning:")]
    assert len(lines) == 1, result.stderr
    assert len(lines[0]) <= MAX_LINE
    return lines[0]


# ----------------------------------------------------------------------------- item 5


def test_an_error_line_is_cut_at_500_characters_and_debug_shows_it_whole(here: Path) -> None:
    missing = str(here / ("x" * 200) / ("y" * 200) / "config.yml")
    error = one_line(qf("--config", missing, "config", "show"))
    assert len(error) == MAX_LINE
    assert error.endswith("characters in all: run with --debug to see them)")
    debug = qf("--debug", "--config", missing, "config", "show")
    assert debug.exit_code == 1 and f"config file {missing} does not exist" in debug.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("assignment", "said"),
    [
        ("retry.max_retries=" + "[" * 10_000 + "]" * 10_000, "nests deeper than 32 levels"),
        (".".join(["a"] * 10_000) + "=1", "a key has at most 32 dotted parts"),
    ],
)
def test_a_set_value_or_key_10000_deep_is_one_line(here: Path, assignment: str, said: str) -> None:
    error = one_line(qf("--set", assignment, "config", "validate"))
    assert error.startswith("Error: --set ") and said in error


def test_a_config_linked_outside_the_project_is_named_not_quoted(here: Path) -> None:
    outside = here / "elsewhere" / "private.yml"
    outside.parent.mkdir()
    outside.write_text("private line one: SECRET-CONTENT-1\nretry: {max_retries: many}\n")
    root = here / "book"
    (root / ".questfoundry").mkdir(parents=True)
    (root / ".questfoundry" / "config.yml").symlink_to(outside)
    error = one_line(
        qf("--config", str(root / ".questfoundry" / "config.yml"), "config", "validate")
    )
    assert "private line" not in error and "SECRET" not in error and "many" not in error
    assert f"links to {outside}, outside the project" in error
    assert f"`questfoundry config validate {outside}`" in error
    assert "private line one: unknown key" in one_line(qf("config", "validate", str(outside)))


def test_a_link_inside_the_project_is_quoted_as_usual(here: Path) -> None:
    shared = project(here, "")
    shared.with_name("shared.yml").write_text("retry: {max_retries: many}\n")
    shared.unlink()
    shared.symlink_to("shared.yml")
    assert "retry.max_retries: expected an integer" in one_line(qf("config", "validate"))


# ----------------------------------------------------------------------------- item 8


def test_run_before_init_says_to_run_init(here: Path) -> None:
    error = one_line(qf("run", "story_spark"))
    assert error.startswith("Error: roles.")  # what failed, then what it means:
    assert error.endswith(
        "there is no config file (.questfoundry/config.yml here or in a parent folder): "
        "run `questfoundry init` first"
    )


def test_config_validate_with_no_config_file_fails_and_says_to_run_init(here: Path) -> None:
    error = one_line(qf("config", "validate"))
    assert "no config file to validate" in error and "run `questfoundry init`" in error


def test_init_of_the_demo_says_how_to_start_the_stand_in(here: Path) -> None:
    result = qf("init", "--provider", "demo", "--no-input")
    assert result.exit_code == 0, result.output
    start = "python -m questfoundry.testing.fakes openai --port 8765"
    assert f"Start the stand-in first (it serves until Ctrl-C): {start}" in result.stdout


def test_init_for_openai_without_its_key_warns(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = qf("init", "--provider", "openai", "--no-input")
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("Warning: OPENAI_API_KEY is not set: ")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-set")
    assert qf("init", "--provider", "openai", "--no-input", "--force").stderr == ""


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def test_ask_as_an_unknown_role_is_refused_with_the_nearest_name(
    here: Path, server: FakeOpenAI
) -> None:
    project(
        here,
        "providers:\n  text:\n    default: openai\n    openai:\n"
        f"      base_url: {server.base_url}\n      api_key: stand-in\n      model: gpt-4o-mini\n",
    )
    error = one_line(qf("ask", "--role", "scene_smth", "hello"))
    assert "unknown role 'scene_smth'; did you mean 'scene_smith'?" in error
    assert server.requests == []
    assert qf("ask", "--role", "scene_smith", "hello").exit_code == 0


def test_roles_with_a_misspelt_provider_exits_1_naming_it(here: Path) -> None:
    project(here, "providers:\n  text:\n    default: opneai\n")
    result = qf("roles")
    assert result.exit_code == 1 and "Roles" in result.stdout
    assert result.stderr.startswith("Error: providers.text.default: provider 'opneai' is not")
    assert "did you mean 'openai'?" in result.stderr
    listed = qf("roles", "--json")
    assert listed.exit_code == 1 and all(row["error"] for row in json.loads(listed.stdout))


def test_roles_with_no_image_provider_lists_the_illustrator_and_exits_0(here: Path) -> None:
    project(here, "providers:\n  text:\n    default: openai\n    openai:\n      model: m\n")
    listed = qf("roles", "--json")
    assert listed.exit_code == 0
    errors = {row["role"]: row["error"] for row in json.loads(listed.stdout) if row["error"]}
    assert list(errors) == ["illustrator"]


@pytest.mark.parametrize(
    "assignment",
    ["providers.text.default=opneai", "roles.scene_smth.model=x", "caching.backend=redsi"],
)
def test_a_set_mistake_is_blamed_on_set_not_on_the_file(here: Path, assignment: str) -> None:
    project(here, "retry:\n  max_retries: 2\n")
    error = one_line(qf("--set", assignment, "config", "validate"))
    assert error.endswith("(in --set)")


def test_a_mistake_in_the_file_is_still_blamed_on_the_file(here: Path) -> None:
    config = project(here, "roles:\n  scene_smth:\n    model: x\n")
    error = one_line(qf("--set", "roles.scene_smth.temperature=0.5", "config", "validate"))
    assert error.endswith(f"(in {config})")


def test_a_plugin_disabled_as_broken_is_said_to_be_installed_and_why(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in ("questfoundry_cache_redis", "questfoundry_cache_redis.plugin"):
        monkeypatch.setitem(sys.modules, module, None)  # importing it fails: a broken install
    project(here, "caching:\n  redis_url: redis://127.0.0.1:6379/15\n")
    error = one_line(qf("config", "validate"))
    assert "questfoundry-cache-redis is installed but disabled: failed to load" in error
    assert "pip install" not in error
