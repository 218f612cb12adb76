"""Config loading has bounds: a hostile or broken file fails in one line, fast and small.

Before these bounds, a 470-byte "billion laughs" ran 90 s to 1.2 GB (aliases expand in
interpolation and secret scanning, not in the parser), a 50 MB file took 443 s and 4.6 GB, 500
levels of nesting gave a 3,000-line ``RecursionError``, and a ``config.yml`` folder was skipped.
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner

from questfoundry.cli import cli
from questfoundry.config import find_config, load_config
from questfoundry.config.files import MAX_BYTES, MAX_DEPTH, MAX_VALUES
from questfoundry.contracts.errors import ConfigError


def billion_laughs(levels: int = 9) -> str:
    """Each level is a list of ten aliases of the one before: 10**levels strings in all."""
    lines = ['a0: &a0 "lol"']
    for level in range(1, levels + 1):
        aliases = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{aliases}]")
    return "\n".join(lines) + "\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / ".questfoundry" / "config.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_yaml_bomb_is_refused_at_once_in_little_memory(tmp_path: Path) -> None:
    path = write(tmp_path, billion_laughs())
    assert path.stat().st_size < 600
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ConfigError) as caught:
            load_config(path, env={})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 5
    assert peak < 20 * 1024 * 1024
    assert f"the YAML expands to more than {MAX_VALUES:,} values" in str(caught.value)


def test_aliases_a_real_config_uses_are_fine(tmp_path: Path) -> None:
    text = (
        "rate_limiting:\n  global: &limits\n    requests_per_minute: 60\n"
        "  providers:\n    openai: *limits\n    ollama: *limits\n"
    )
    config = load_config(write(tmp_path, text), env={})
    assert config.get("rate_limiting.providers.ollama.requests_per_minute") == 60


def test_a_file_larger_than_the_limit_is_refused_without_being_parsed(tmp_path: Path) -> None:
    path = write(tmp_path, "project:\n  name: x\n# " + "y" * MAX_BYTES + "\n")
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=r"config file is larger than 1024 KiB"):
        load_config(path, env={})
    assert time.perf_counter() - started < 1


def test_deep_nesting_is_one_line_not_a_recursion_error(tmp_path: Path) -> None:
    path = write(tmp_path, "retry: " + "[" * 500 + "]" * 500 + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    message = str(caught.value)
    assert f"the YAML nests deeper than {MAX_DEPTH} levels at line 1" in message
    assert "\n" not in message


def test_a_project_config_that_is_a_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / ".questfoundry" / "config.yml").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"config\.yml is not a file"):
        find_config(tmp_path, env={})


def test_the_cli_reports_a_bomb_in_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, billion_laughs())
    result = CliRunner().invoke(cli, ["config", "validate", str(path)])
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("Error: the YAML expands to more than")
