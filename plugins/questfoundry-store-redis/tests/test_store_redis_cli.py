"""``questfoundry state`` over the ``redis`` store, as a user runs it: export, import, outages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from questfoundry.cli import cli
from questfoundry.testing.app import Runtime, get_plugin_manager, load_config
from questfoundry.testing.redis import RedisServer

pytestmark = pytest.mark.redis

DOCUMENTS: dict[str, dict[str, Any]] = {
    "book/topology": {"sections": [1, 2], "title": "Phare"},
    "book/sections/1": {"text": "Storm.", "choices": [{"to": 2, "label": "Ring the bell"}]},
    "runs/r1": {"steps": ["story_spark"]},
}


def project(root: Path, name: str, url: str, prefix: str = "questfoundry:") -> Path:
    """A project whose state is in Redis at ``url``, under ``prefix`` and the project's name."""
    (root / ".questfoundry").mkdir(parents=True)
    config = root / ".questfoundry" / "config.yml"
    config.write_text(
        f"project:\n  name: {name}\n"
        f"state:\n  backend: redis\n  redis_url: '{url}'\n  key_prefix: '{prefix}'\n"
    )
    return config


def run(config: Path, *args: str, debug: bool = False) -> Result:
    flags = ["--debug"] if debug else []
    result = CliRunner().invoke(cli, [*flags, "--config", str(config), "state", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


@pytest.mark.slow
def test_export_import_into_a_fresh_project_and_export_again_gives_the_same_file(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    first = project(tmp_path / "one", "one", redis_url, redis_prefix)
    second = project(tmp_path / "two", "two", redis_url, redis_prefix)
    with Runtime(load_config(first), get_plugin_manager()) as runtime:
        for key, document in DOCUMENTS.items():
            runtime.state.set(key, document)
        runtime.state.update("book/count", lambda doc: {"n": (doc or {"n": 0})["n"] + 1})
    exported, again = tmp_path / "one.json", tmp_path / "two.yaml"
    assert run(first, "export", str(exported)).exit_code == 0
    assert run(second, "import", str(exported)).exit_code == 0
    assert run(second, "export", str(tmp_path / "two.json")).exit_code == 0
    assert (tmp_path / "two.json").read_bytes() == exported.read_bytes()
    assert run(second, "export", str(again)).exit_code == 0  # and as YAML, the same documents
    with Runtime(load_config(second), get_plugin_manager()) as runtime:
        assert runtime.state.list_keys("book/") == [
            "book/count",
            "book/sections/1",
            "book/topology",
        ]
        assert runtime.state.get("book/sections/1") == DOCUMENTS["book/sections/1"]


def outage_lines(config: Path, password: str | None) -> tuple[str, str]:
    """What ``state version`` prints on stderr, plainly and with ``--debug``."""
    plain, debug = run(config, "version"), run(config, "version", debug=True)
    assert plain.exit_code == 1 and debug.exit_code == 1
    for result in (plain, debug):
        assert password is None or password not in result.output + result.stderr
    return plain.stderr, debug.stderr


def test_a_stopped_redis_is_one_line_naming_the_server(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    config = project(tmp_path, "lighthouse", redis_server.url)
    redis_server.stop()
    plain, debug = outage_lines(config, None)
    assert plain.splitlines() == [plain.strip()]
    assert plain.startswith("Error: state ")
    assert f"in redis 127.0.0.1:{redis_server.port}/0 cannot be read: cannot reach Redis" in plain
    assert "redis.exceptions" not in debug  # raised from None: no redis-py error chained


def test_a_wrong_password_never_reaches_the_terminal_even_with_debug(
    tmp_path: Path, locked_server: RedisServer, redis_password: str
) -> None:
    url = f"redis://:{redis_password}-wrong@127.0.0.1:{locked_server.port}/0"
    plain, debug = outage_lines(project(tmp_path, "lighthouse", url), redis_password)
    assert plain.splitlines() == [plain.strip()]
    assert "refused the credentials of state.redis_url" in plain
    assert "Traceback" in debug and "redis.exceptions" not in debug
