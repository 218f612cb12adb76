"""``questfoundry state``: version, migrate, export, import, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from state_helpers import files

from questfoundry.builtins.file_store import FileStore
from questfoundry.cli import cli
from questfoundry.config import load_config
from questfoundry.registry import get_plugin_manager
from questfoundry.runtime import Runtime

CONFIG = """\
providers:
  text:
    default: openai
    openai:
      api_key: hunter2-live-credential
state:
  backups:
    keep: 2
"""


def project(root: Path) -> Path:
    (root / ".questfoundry").mkdir(parents=True)
    config = root / ".questfoundry" / "config.yml"
    config.write_text(CONFIG)
    return config


def run(config: Path, *args: str) -> Any:
    result = CliRunner().invoke(cli, ["--config", str(config), "state", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def write_through_the_api(config: Path, documents: dict[str, dict[str, Any]]) -> None:
    with Runtime(load_config(config), get_plugin_manager()) as runtime:
        for key, document in documents.items():
            runtime.state.set(key, document)
        runtime.state.update("book/count", lambda doc: {"n": (doc or {"n": 0})["n"] + 1})


DOCUMENTS = {
    "book/topology": {"sections": [1, 2], "title": "Phare"},
    "book/sections/1": {"text": "Storm, and the key: hunter2-live-credential"},
    "runs/r1": {"steps": ["story_spark"]},
}


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_export_into_a_fresh_project_and_export_again_gives_the_same_file(
    tmp_path: Path, suffix: str
) -> None:
    first, second = project(tmp_path / "one"), project(tmp_path / "two")
    write_through_the_api(first, DOCUMENTS)
    exported, again = tmp_path / f"one{suffix}", tmp_path / f"two{suffix}"
    result = run(first, "export", str(exported), "--include-history")
    assert result.exit_code == 0
    assert result.stdout == f"Exported 4 documents to {exported}.\n"
    assert "masked 1 secret-looking values" in result.stderr
    assert run(second, "import", str(exported)).exit_code == 0
    assert run(second, "export", str(again), "--include-history").exit_code == 0
    assert again.read_bytes() == exported.read_bytes()
    assert "hunter2" not in exported.read_text()


def test_version_says_where_the_state_stands(tmp_path: Path) -> None:
    config = project(tmp_path)
    result = run(config, "version", "--json")
    assert json.loads(result.stdout) == {
        "scopes": [{"scope": "questfoundry", "version": 1, "latest": 1}],
        "up_to_date": True,
    }


@pytest.mark.slow
def test_migrate_backs_up_first_and_keeps_as_many_backups_as_configured(tmp_path: Path) -> None:
    config = project(tmp_path)
    store = FileStore(tmp_path / ".questfoundry" / "state")
    store.set("notes", {"n": 1})  # written before versions: schema 0
    dry = run(config, "migrate", "--dry-run")
    assert dry.stdout.splitlines()[-1] == "questfoundry 1: would change 2 documents."
    assert store.get("notes") == {"n": 1}
    for target in ("1", "0", "1"):
        result = run(config, "migrate", "--to", target, "--json")
        data = json.loads(result.stdout)
        assert data["to"] == {"questfoundry": int(target)} and Path(data["backup"]).exists()
    assert store.get("legacy/notes") == {"n": 1} and store.get("notes") is None
    backups = sorted((tmp_path / ".questfoundry" / "backups" / "state").iterdir())
    assert len(backups) == 2
    assert run(config, "migrate").stdout == "The state is already at questfoundry 1.\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("migrate", "--to", "seven"), "'seven' is not N or SCOPE=N"),
        (("migrate", "--to", "4"), "no migration leads to questfoundry version 4"),
        (("import", "missing.json"), "missing.json: no such file"),
        (("import", "x.json", "--merge", "--replace"), "--merge and --replace exclude"),
        (("export", "out.csv"), "a state file ends in .json, .yaml or .yml"),
    ],
)
def test_a_mistake_is_one_clear_line(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = run(project(tmp_path), *args)
    assert result.exit_code != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_newer_state_is_refused_in_one_line_naming_both_versions(tmp_path: Path) -> None:
    config = project(tmp_path)
    FileStore(tmp_path / ".questfoundry" / "state").set(
        "_qf/schema_version", {"versions": {"questfoundry": 4}}
    )
    for command in ("version", "migrate"):
        result = run(config, command)
        assert result.exit_code == 1
        assert result.stderr.count("\n") == 1
        assert "questfoundry version 4 (this code knows 1)" in result.stderr


def test_a_bad_import_file_changes_nothing(tmp_path: Path) -> None:
    config = project(tmp_path)
    write_through_the_api(config, DOCUMENTS)
    root = tmp_path / ".questfoundry" / "state"
    before = files(root)
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "questfoundry_state: 1\nschema_version: {questfoundry: 1}\n"
        "documents:\n  book/new: {a: 1}\n  ../../outside: {a: 2}\n"
    )
    result = run(config, "import", str(bad), "--merge")
    assert result.exit_code == 1
    assert "'../../outside' has an empty, '.' or '..' part" in result.stderr
    assert files(root) == before
    assert not (tmp_path / "outside.json").exists()


def test_the_help_explains_the_commands(tmp_path: Path) -> None:
    config = project(tmp_path)
    assert "backup" in run(config, "migrate", "--help").stdout
    assert "--include-history" in run(config, "export", "--help").stdout
    assert "--merge" in run(config, "import", "--help").stdout
