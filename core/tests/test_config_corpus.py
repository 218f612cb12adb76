"""Invalid configs from ``configs/invalid``: each fails with one line naming its path.

Every corpus file starts with ``# expect: <text>`` lines; the error message must contain each text.
The same files are run through the library (``load_config`` + ``check_backends``) and through
``questfoundry config validate``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from questfoundry import hookimpl
from questfoundry.cli import cli
from questfoundry.config import Config, check_backends, load_config
from questfoundry.contracts.backends import BackendContext
from questfoundry.contracts.errors import ConfigError
from questfoundry.registry import PluginManager, get_plugin_manager

CONFIGS = Path(__file__).parent / "configs"
CORPUS = sorted((CONFIGS / "invalid").glob("*.yml"))
SECRET = "hunter2-corpus-secret"
#: what the corpus runs with: one secret-looking variable, nothing else
CORPUS_ENV = {"QF_TEST_CORPUS_TOKEN": SECRET}
REPOSITORY_PLUGINS = ",".join(
    p.name for p in (CONFIGS.parents[2] / "plugins").iterdir() if not p.name.startswith("_")
)


def expectations(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    found = [
        line.removeprefix("# expect:").strip() for line in lines if line.startswith("# expect:")
    ]
    assert found, f"{path.name} has no '# expect:' line"
    return found


def unused_factory(settings: Mapping[str, Any], context: BackendContext) -> None:
    raise AssertionError("config checks must not build backends")


class InstalledForTests:
    """Stands in for the plugins a real install would have, so the checks are deterministic."""

    @hookimpl
    def cache_backends(self) -> dict[str, Any]:
        return {"file": unused_factory}

    @hookimpl
    def providers(self) -> dict[str, Any]:
        return {"openai": unused_factory, "ollama": unused_factory}

    @hookimpl
    def cost_models(self) -> dict[str, Any]:
        return {"openai": unused_factory, "ollama": unused_factory}


@pytest.fixture(scope="module")
def installed() -> PluginManager:
    """This repository's plugins, whose settings fragments the corpus is checked against."""
    return get_plugin_manager(env={"QUESTFOUNDRY_LOAD_PLUGINS": REPOSITORY_PLUGINS})


@pytest.fixture(scope="module")
def manager() -> PluginManager:
    return get_plugin_manager(entry_points=False, plugins=[("for-tests", InstalledForTests())])


def test_corpus_is_big_enough() -> None:
    assert len(CORPUS) >= 22


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_invalid_config_fails_naming_its_path(path: Path, installed: PluginManager) -> None:
    with pytest.raises(ConfigError) as caught:
        config = load_config(path, env=CORPUS_ENV, manager=installed)
        config.require_variables()
        check_backends(config, installed)
    message = str(caught.value)
    for expected in expectations(path):
        assert expected in message
    assert "\n" not in message
    assert SECRET not in message
    assert message.endswith(f"(in {path})")


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_cli_rejects_invalid_config_with_one_line(path: Path) -> None:
    env: dict[str, str | None] = {
        **CORPUS_ENV,
        "QUESTFOUNDRY_CONFIG": None,
        "QUESTFOUNDRY_LOAD_PLUGINS": REPOSITORY_PLUGINS,  # the same answer on any checkout
    }
    result = CliRunner().invoke(cli, ["config", "validate", str(path)], env=env)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # handled, not escaped
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    for expected in expectations(path):
        assert expected in lines[0]
    assert SECRET not in result.output


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bad_yaml_indentation", "temperature_above_maximum"])
def test_cli_process_prints_no_traceback(name: str, tmp_path: Path) -> None:
    path = CONFIGS / "invalid" / f"{name}.yml"
    done = subprocess.run(
        [sys.executable, "-m", "questfoundry", "config", "validate", str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "", "QUESTFOUNDRY_LOAD_PLUGINS": REPOSITORY_PLUGINS},
        check=False,
    )
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("Error: ")
    assert expectations(path)[0] in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


# ----------------------------------------------------------------------------- check_backends


def test_defaults_need_only_the_builtins() -> None:
    check_backends(Config({}), get_plugin_manager(entry_points=False))


def test_seed_example_names_only_installed_backends(manager: PluginManager) -> None:
    config = load_config(CONFIGS / "seed.yml", env={"OPENAI_API_KEY": "sk-test"})
    check_backends(config, manager)


def test_misspelt_backend_says_what_is_installed_and_suggests(manager: PluginManager) -> None:
    with pytest.raises(ConfigError) as caught:
        check_backends(Config({"caching": {"backend": "fiel"}}), manager)
    assert caught.value.path == "caching.backend"
    assert str(caught.value) == (
        "caching.backend: cache backend 'fiel' is not installed (installed: file, memory); "
        "did you mean 'file'?"
    )


def test_known_but_missing_backend_says_which_distribution_to_install() -> None:
    with pytest.raises(ConfigError, match="pip install questfoundry-cache-file"):
        check_backends(
            Config({"caching": {"backend": "file"}}), get_plugin_manager(entry_points=False)
        )


def test_unknown_provider_is_reported_once_at_its_first_use(manager: PluginManager) -> None:
    data = {
        "providers": {"text": {"default": "mistral", "mistral": {"model": "m"}}},
        "roles": {"scene_smith": {"provider": "mistral"}},
    }
    with pytest.raises(ConfigError) as caught:
        check_backends(Config(data), manager)
    assert caught.value.path == "providers.text.default"
    assert str(caught.value).count("'mistral' is not installed") == 1


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"providers": {"image": {"dalle": {}}}}, "providers.image.dalle"),
        ({"caching": {"per_provider": {"opnai": {}}}}, "caching.per_provider.opnai"),
        ({"rate_limiting": {"providers": {"olama": {}}}}, "rate_limiting.providers.olama"),
        ({"pricing": {"providers": {"gemeni": {}}}}, "pricing.providers.gemeni"),
        (
            {"pricing": {"providers": {"openai": {"cost_model": "opneai"}}}},
            "pricing.providers.openai.cost_model",
        ),
        ({"rate_limiting": {"backend": "redis"}}, "rate_limiting.backend"),
    ],
)
def test_every_place_that_names_a_backend_is_checked(
    data: dict[str, Any], path: str, manager: PluginManager
) -> None:
    with pytest.raises(ConfigError) as caught:
        check_backends(Config(data), manager)
    assert caught.value.path == path


def test_all_unknown_backends_are_reported_together(manager: PluginManager) -> None:
    data = {"state": {"backend": "sql"}, "caching": {"backend": "disk"}}
    with pytest.raises(ConfigError) as caught:
        check_backends(Config(data), manager)
    message = str(caught.value)
    assert message.startswith("caching.backend: cache backend 'disk'")
    assert "; state.backend: state store 'sql' is not installed" in message
