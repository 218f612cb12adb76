"""Discovery of third-party plugins through the entry-point group ``questfoundry``.

Each test builds throwaway distributions in a temporary folder — a real ``*.dist-info`` with
``METADATA`` and ``entry_points.txt`` beside the plugin's module — and puts the folder on
``sys.path``, which is exactly where :mod:`importlib.metadata` looks for installed distributions.
Nothing is installed into the environment and nothing is patched.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest
from click.testing import CliRunner, Result

from questfoundry import hookimpl
from questfoundry.cli import cli
from questfoundry.config import load_config
from questfoundry.contracts.errors import PluginNotFoundError
from questfoundry.registry import (
    ENTRY_POINT_GROUP,
    PluginLoadWarning,
    get_plugin_manager,
    known_plugins,
)
from questfoundry.runtime import open_gateway

REPO = Path(__file__).resolve().parents[1]

#: environment variables that change which plugins load or which config is read
CONTROL_VARS = ("QUESTFOUNDRY_DISABLE_PLUGINS", "QUESTFOUNDRY_LOAD_PLUGINS", "QUESTFOUNDRY_CONFIG")

TMPCACHE = """
    from questfoundry import hookimpl
    from questfoundry.contracts.records import CacheStats


    class TmpCache:
        capabilities = frozenset()

        def __init__(self, settings, context):
            self.settings = dict(settings)
            self.context = context
            self.entries = {}

        def get(self, key):
            return self.entries.get(key)

        def set(self, key, value, ttl=None):
            self.entries[key] = bytes(value)

        def delete(self, key):
            return self.entries.pop(key, None) is not None

        def clear(self):
            count = len(self.entries)
            self.entries.clear()
            return count

        def prune(self):
            return 0

        def stats(self):
            size = sum(len(value) for value in self.entries.values())
            return CacheStats(len(self.entries), size, 0, 0)

        def close(self):
            pass


    @hookimpl
    def cache_backends():
        return {"tmpcache": TmpCache}
"""

OTHER_TMPCACHE = """
    from questfoundry import hookimpl


    @hookimpl
    def cache_backends():
        return {"tmpcache": dict}
"""

# Contributes to every hook, so the listing can be checked hook by hook.
EVERY_HOOK = """
    from questfoundry import hookimpl
    from questfoundry.contracts.studio import LoopSpec, RoleProvider, RoleSpec
    from questfoundry.contracts.records import Migration

    SEEN = []


    def make(settings, context):
        return object()


    @hookimpl
    def cache_backends():
        return {"everycache": make}


    @hookimpl
    def limiter_strategies():
        return {"everylimiter": make}


    @hookimpl
    def cost_models():
        return {"everycost": make}


    @hookimpl
    def state_stores():
        return {"everystore": make}


    @hookimpl
    def providers():
        return {"everyprovider": make}


    @hookimpl
    def resolve_role_provider(role, config, override):
        if role == "cartographer":
            return RoleProvider(role, "everyprovider", "map-1", {"temperature": 0.1})
        return None


    @hookimpl
    def roles():
        return [RoleSpec("cartographer", "text", "draws the maps")]


    @hookimpl
    def loops():
        return [LoopSpec("mapping_pass", ("cartographer",))]


    @hookimpl
    def state_migrations():
        return [Migration(1, dict, dict, "copies the state", scope="questfoundry-everything")]


    @hookimpl
    def call_completed(event):
        SEEN.append(event)
"""

# One good hook and one misspelt: the plugin is disabled, yet what it offered is known.
HALF_MISSPELT = """
    from questfoundry import hookimpl


    @hookimpl
    def cache_backends():
        return {"halfcache": dict}


    @hookimpl
    def state_store():
        return {}
"""

# A provider that answers every prompt with "echo: <prompt>", for the CLI's ask.
ECHO_PROVIDER = """
    from questfoundry import hookimpl
    from questfoundry.contracts.records import ProviderReply, Usage


    class Echo:
        name = "everyprovider"
        capabilities = frozenset()

        def generate(self, request):
            text = request.prompt or request.messages[-1].content
            return ProviderReply(request.model, text="echo: " + text, usage=Usage(1, 1))

        async def agenerate(self, request):
            return self.generate(request)

        def stream(self, request):
            raise NotImplementedError

        def astream(self, request):
            raise NotImplementedError

        def close(self):
            pass

        async def aclose(self):
            pass


    @hookimpl
    def providers():
        return {"everyprovider": lambda settings, context: Echo()}
"""

MISSPELT_HOOK = """
    from questfoundry import hookimpl


    @hookimpl
    def cache_backend():
        return {"typo": dict}
"""

# Leaves a mark when imported, so a test can tell it was never imported at all.
BROKEN = """
    from pathlib import Path

    Path(__file__).with_name("qf_broken.imported").touch()
    raise RuntimeError("boom at import")
"""


@dataclass
class Site:
    """A folder on ``sys.path`` that throwaway distributions are "installed" into."""

    root: Path

    def install(
        self, dist: str, version: str, entry_points: Mapping[str, str], modules: Mapping[str, str]
    ) -> None:
        """Write ``modules`` (name → source) and a dist-info publishing ``entry_points``."""
        for module, source in modules.items():
            (self.root / f"{module}.py").write_text(dedent(source), encoding="utf-8")
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8"
        )
        lines = [f"[{ENTRY_POINT_GROUP}]", *(f"{k} = {v}" for k, v in entry_points.items())]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        importlib.invalidate_caches()

    def install_tmpcache(self) -> None:
        self.install(
            "questfoundry-cache-tmp",
            "1.2.3",
            {"cache-tmp": "qf_tmpcache"},
            {"qf_tmpcache": TMPCACHE},
        )

    def module(self, name: str) -> Any:
        """A module of this site, as loaded by the plugin manager."""
        module = sys.modules[name]
        assert Path(module.__file__ or "").parent == self.root
        return module


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """An empty site folder on ``sys.path``; its modules are forgotten afterwards."""
    for var in CONTROL_VARS:
        monkeypatch.delenv(var, raising=False)
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    yield Site(root)
    for name, module in list(sys.modules.items()):
        if Path(getattr(module, "__file__", None) or "/").parent == root:
            del sys.modules[name]
    importlib.invalidate_caches()


def only(*names: str) -> dict[str, str]:
    """An environment that loads only the named external plugins."""
    return {"QUESTFOUNDRY_LOAD_PLUGINS": ",".join(names)}


def run_cli(*args: str, env: Mapping[str, str] | None = None) -> Result:
    """Run ``questfoundry`` in this process, with a wide terminal so table cells are not cut."""
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "250", **(env or {})})


def run_cli_process(site: Site, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m questfoundry`` in a fresh interpreter that also sees ``site``."""
    clean = {k: v for k, v in os.environ.items() if k not in CONTROL_VARS}
    paths = [str(site.root), clean.get("PYTHONPATH", "")]
    clean.update(PYTHONPATH=os.pathsep.join(p for p in paths if p), COLUMNS="250", **env)
    return subprocess.run(
        [sys.executable, "-m", "questfoundry", *args],
        capture_output=True,
        text=True,
        env=clean,
        cwd=site.root,
        timeout=60,
        check=False,
    )


def write_config(folder: Path, text: str) -> Path:
    path = folder / ".questfoundry" / "config.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dedent(text), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- discovery


def test_a_third_party_distribution_is_discovered_through_its_entry_point(site: Site) -> None:
    site.install_tmpcache()
    manager = get_plugin_manager(env={})
    registration = manager.get("cache backend", "tmpcache")
    assert registration.plugin == "cache-tmp"
    assert registration.distribution == "questfoundry-cache-tmp"
    info = next(i for i in manager.plugins() if i.name == "cache-tmp")
    assert (info.distribution, info.version) == ("questfoundry-cache-tmp", "1.2.3")
    assert info.registers == {"cache backend": ["tmpcache"]}
    assert manager.failures == []


def test_built_ins_are_listed_before_external_plugins(site: Site) -> None:
    site.install_tmpcache()
    distributions = [info.distribution for info in get_plugin_manager(env={}).plugins()]
    core = distributions.count("questfoundry")
    assert core >= 4
    assert distributions[:core] == ["questfoundry"] * core
    assert "questfoundry-cache-tmp" in distributions[core:]


def test_questfoundry_plugins_lists_the_third_party_plugin(site: Site) -> None:
    site.install_tmpcache()
    result = run_cli("plugins")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if "questfoundry-cache-tmp" in line)
    assert "1.2.3" in row
    assert "cache-tmp" in row
    assert "cache backend: tmpcache" in row
    assert "memory" in result.stdout  # the built-ins are listed too


def test_questfoundry_plugins_json_lists_the_third_party_plugin(site: Site) -> None:
    site.install_tmpcache()
    result = run_cli("plugins", "--json")
    assert result.exit_code == 0, result.output
    listed = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert listed["cache-tmp"] == {
        "name": "cache-tmp",
        "distribution": "questfoundry-cache-tmp",
        "version": "1.2.3",
        "registers": {"cache backend": ["tmpcache"]},
        "error": None,
        "descriptions": {},
    }
    assert listed["builtin:memory_cache"]["descriptions"] == {
        "cache backend memory": "least recently used replies in this process's memory"
    }
    assert listed["builtin:memory_cache"]["registers"] == {"cache backend": ["memory"]}


@pytest.mark.slow
def test_a_fresh_questfoundry_process_lists_the_third_party_plugin(site: Site) -> None:
    site.install_tmpcache()
    result = run_cli_process(site, "plugins", "--json")
    assert result.returncode == 0, result.stderr
    assert "questfoundry-cache-tmp" in {
        entry["distribution"] for entry in json.loads(result.stdout)
    }


def test_the_plugins_backend_is_selectable_by_name_from_config(site: Site, tmp_path: Path) -> None:
    site.install_tmpcache()
    path = write_config(tmp_path / "project", "caching:\n  backend: tmpcache\n  ttl_seconds: 60\n")

    result = run_cli("config", "validate", str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("OK:")

    gateway = open_gateway(load_config(path, env={}), get_plugin_manager(env={}))
    try:
        assert isinstance(gateway.cache, site.module("qf_tmpcache").TmpCache)
        assert gateway.cache.settings["ttl_seconds"] == 60
        assert gateway.cache.context.project_dir == path.parent
    finally:
        gateway.close()


def test_an_external_plugin_contributes_to_every_hook(site: Site) -> None:
    site.install(
        "questfoundry-everything", "0.3", {"everything": "qf_every"}, {"qf_every": EVERY_HOOK}
    )
    manager = get_plugin_manager(env=only("everything"))
    info = next(i for i in manager.plugins() if i.name == "everything")
    assert info.registers == {
        "cache backend": ["everycache"],
        "limiter strategy": ["everylimiter"],
        "cost model": ["everycost"],
        "state store": ["everystore"],
        "provider": ["everyprovider"],
        "role": ["cartographer"],
        "loop": ["mapping_pass"],
        "hook": [
            "resolve_role_provider",
            "state_migrations",
            "call_completed",
        ],
    }
    migrations = [m for batch in manager.hook.state_migrations() for m in batch]
    assert [(m.scope, m.version) for m in migrations] == [("questfoundry-everything", 1)]


def test_an_external_role_resolver_runs_before_the_built_in_one(site: Site) -> None:
    site.install(
        "questfoundry-everything", "0.3", {"everything": "qf_every"}, {"qf_every": EVERY_HOOK}
    )
    manager = get_plugin_manager(env=only("everything"))
    config = {"providers": {"text": {"default": "openai", "openai": {"model": "gpt-4o-mini"}}}}

    routed = manager.resolve_role("cartographer", config)
    assert (routed.provider, routed.model, dict(routed.params)) == (
        "everyprovider",
        "map-1",
        {"temperature": 0.1},
    )

    # Answering None hands the decision to the built-in resolver.
    fallback = manager.resolve_role("plotwright", config)
    assert (fallback.provider, fallback.model) == ("openai", "gpt-4o-mini")


# ----------------------------------------------------------------------------- clear errors


def install_duplicate(site: Site) -> None:
    site.install_tmpcache()
    site.install(
        "questfoundry-cache-other", "0.9", {"cache-other": "qf_other"}, {"qf_other": OTHER_TMPCACHE}
    )


def test_a_name_registered_by_two_plugins_disables_the_second_naming_both(site: Site) -> None:
    install_duplicate(site)
    with pytest.warns(PluginLoadWarning) as caught:
        manager = get_plugin_manager(env=only("cache-tmp", "cache-other"))
    ours = [w for w in caught if issubclass(w.category, PluginLoadWarning)]
    assert len(ours) == 1
    message = str(ours[0].message)
    assert "cache backend 'tmpcache' is registered twice" in message
    for name in ("cache-tmp", "questfoundry-cache-tmp", "cache-other", "questfoundry-cache-other"):
        assert name in message
    assert "QUESTFOUNDRY_DISABLE_PLUGINS=questfoundry-cache-other" in message
    assert manager.get("cache backend", "tmpcache").plugin == "cache-tmp"
    assert [f.distribution for f in manager.failures] == ["questfoundry-cache-other"]


def test_a_plugin_cannot_take_over_a_built_in_name(site: Site) -> None:
    site.install(
        "questfoundry-cache-fake",
        "0.1",
        {"cache-fake": "qf_fake"},
        {"qf_fake": TMPCACHE.replace('"tmpcache"', '"memory"')},
    )
    with pytest.warns(
        PluginLoadWarning, match=r"builtin:memory_cache \(questfoundry\).*cache-fake"
    ):
        manager = get_plugin_manager(env=only("cache-fake"))
    assert manager.get("cache backend", "memory").plugin == "builtin:memory_cache"


def test_the_same_name_for_two_kinds_of_backend_is_no_duplicate(site: Site) -> None:
    site.install_tmpcache()
    source = TMPCACHE.replace("def cache_backends", "def state_stores")
    site.install(
        "questfoundry-store-tmp", "0.1", {"store-tmp": "qf_tmpstore"}, {"qf_tmpstore": source}
    )
    manager = get_plugin_manager(env=only("cache-tmp", "store-tmp"))
    assert manager.get("cache backend", "tmpcache").plugin == "cache-tmp"
    assert manager.get("state store", "tmpcache").plugin == "store-tmp"


def test_questfoundry_plugins_lists_a_duplicate_as_disabled_and_still_works(site: Site) -> None:
    install_duplicate(site)
    result = run_cli("plugins", env=only("cache-tmp", "cache-other"))
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert len(warnings) == 1, result.stderr
    row = next(line for line in result.stdout.splitlines() if "questfoundry-cache-other" in line)
    assert "disabled: cache backend 'tmpcache' is registered twice" in row
    assert "questfoundry-cache-tmp" in result.stdout


@pytest.mark.slow
def test_a_duplicate_plugin_leaves_ask_working(site: Site, tmp_path: Path) -> None:
    install_duplicate(site)
    path = write_config(
        tmp_path / "project",
        """
        providers:
          text:
            default: everyprovider
            everyprovider:
              model: m-1
        caching:
          backend: tmpcache
        """,
    )
    site.install("questfoundry-echo", "0.1", {"echo": "qf_echo"}, {"qf_echo": ECHO_PROVIDER})
    result = run_cli_process(
        site,
        "--config",
        str(path),
        "ask",
        "hello",
        QUESTFOUNDRY_LOAD_PLUGINS="cache-tmp,cache-other,echo",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "echo: hello"
    lines = result.stderr.splitlines()
    disabled = [line for line in lines if line.startswith("Warning: plugin ")]
    assert len(disabled) == 1 and "questfoundry-cache-other" in disabled[0], result.stderr
    assert any(line.startswith("Warning: no price known for everyprovider") for line in lines)
    assert len([line for line in lines if line.startswith("Warning:")]) == 2
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_backend_only_a_disabled_plugin_provides_says_so(site: Site) -> None:
    site.install(
        "questfoundry-cache-typo", "0.1", {"cache-typo": "qf_typo"}, {"qf_typo": HALF_MISSPELT}
    )
    with pytest.warns(PluginLoadWarning):
        manager = get_plugin_manager(env=only("cache-typo"))
    with pytest.raises(PluginNotFoundError) as caught:
        manager.get("cache backend", "halfcache")
    assert str(caught.value).startswith(
        "cache backend 'halfcache' is provided by questfoundry-cache-typo (implements unknown "
        "hooks: 'state_store' (did you mean 'state_stores'?)), which is disabled"
    )


def test_a_config_naming_a_backend_of_a_plugin_that_failed_to_import_says_so(
    site: Site, tmp_path: Path
) -> None:
    site.install(
        "questfoundry-cache-file", "9.9", {"cache-file": "qf_broken"}, {"qf_broken": BROKEN}
    )
    path = write_config(tmp_path / "project", "caching:\n  backend: file\n")
    result = run_cli("config", "validate", str(path), env=only("cache-file"))
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [
        "Error: caching.backend: cache backend 'file' is provided by questfoundry-cache-file "
        "(failed to load: RuntimeError: boom at import), which is disabled "
        f"(in {path})"
    ]


def test_a_plugin_that_fails_to_import_warns_once_and_the_rest_still_load(site: Site) -> None:
    site.install_tmpcache()
    site.install("questfoundry-broken", "0.1", {"broken": "qf_broken"}, {"qf_broken": BROKEN})
    with pytest.warns(PluginLoadWarning) as caught:
        manager = get_plugin_manager(env=only("cache-tmp", "broken"))
    ours = [w for w in caught if issubclass(w.category, PluginLoadWarning)]
    assert len(ours) == 1
    assert "questfoundry-broken" in str(ours[0].message)
    assert "RuntimeError: boom at import" in str(ours[0].message)
    assert "QUESTFOUNDRY_DISABLE_PLUGINS=questfoundry-broken" in str(ours[0].message)
    assert [(f.distribution, f.entry_point) for f in manager.failures] == [
        ("questfoundry-broken", "broken")
    ]
    assert manager.get("cache backend", "tmpcache").distribution == "questfoundry-cache-tmp"
    listed = {info.name: info for info in manager.plugins()}
    assert listed["broken"].error == "failed to load: RuntimeError: boom at import"
    assert listed["cache-tmp"].error is None


def test_a_plugin_whose_library_is_missing_names_the_missing_module(site: Site) -> None:
    source = "import questfoundry_no_such_library\n"
    site.install(
        "questfoundry-cache-needy", "0.1", {"cache-needy": "qf_needy"}, {"qf_needy": source}
    )
    with pytest.warns(
        PluginLoadWarning, match="questfoundry-cache-needy.*questfoundry_no_such_library"
    ):
        get_plugin_manager(env=only("cache-needy"))


def test_an_entry_point_naming_a_missing_attribute_is_a_load_failure(site: Site) -> None:
    site.install(
        "questfoundry-cache-typo",
        "0.1",
        {"cache-typo": "qf_tmpcache:no_such_object"},
        {"qf_tmpcache": TMPCACHE},
    )
    with pytest.warns(PluginLoadWarning, match="questfoundry-cache-typo"):
        manager = get_plugin_manager(env=only("cache-typo"))
    assert [f.distribution for f in manager.failures] == ["questfoundry-cache-typo"]


@pytest.mark.slow
def test_questfoundry_plugins_prints_one_warning_for_a_broken_plugin(site: Site) -> None:
    site.install_tmpcache()
    site.install("questfoundry-broken", "0.1", {"broken": "qf_broken"}, {"qf_broken": BROKEN})
    result = run_cli_process(site, "plugins", QUESTFOUNDRY_LOAD_PLUGINS="cache-tmp,broken")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert len(warnings) == 1, result.stderr
    assert "questfoundry-broken" in warnings[0]
    assert "RuntimeError: boom at import" in warnings[0]
    assert "Traceback" not in result.stderr
    assert "questfoundry-cache-tmp" in result.stdout


def test_an_unknown_backend_says_what_is_installed_and_what_to_install(site: Site) -> None:
    site.install_tmpcache()
    manager = get_plugin_manager(env=only("cache-tmp"))
    with pytest.raises(PluginNotFoundError) as caught:
        manager.get("cache backend", "file")
    assert str(caught.value) == (
        "cache backend 'file' is not installed (installed: memory, tmpcache); "
        "pip install questfoundry-cache-file"
    )
    assert (caught.value.kind, caught.value.name) == ("cache backend", "file")
    assert sorted(caught.value.installed) == ["memory", "tmpcache"]
    assert caught.value.distribution == "questfoundry-cache-file"


def test_no_distribution_that_does_not_exist_is_ever_suggested() -> None:
    repository = set(repo_plugin_distributions())
    assert set(known_plugins()) <= repository
    planned = ("questfoundry-cache-redis", "questfoundry-store-redis", "limiter-redis")
    missing = [name for name in planned if not any(name in dist for dist in repository)]
    for path in [REPO / "docs", REPO / "plugins", REPO / "core" / "src", REPO / "schemas"]:
        for file in path.rglob("*"):
            if file.suffix in {".md", ".py", ".json", ".txt"} and file.is_file():
                text = file.read_text(encoding="utf-8")
                for name in missing:
                    assert name not in text, f"{file} names {name}"


def test_a_misspelt_backend_name_suggests_the_close_one(site: Site) -> None:
    site.install_tmpcache()
    manager = get_plugin_manager(env=only("cache-tmp"))
    with pytest.raises(PluginNotFoundError) as caught:
        manager.get("cache backend", "tmpcahce")
    assert str(caught.value) == (
        "cache backend 'tmpcahce' is not installed (installed: memory, tmpcache); "
        "did you mean 'tmpcache'?"
    )


def test_an_unknown_name_nobody_publishes_gives_no_install_hint(site: Site) -> None:
    manager = get_plugin_manager(env=only())
    with pytest.raises(PluginNotFoundError) as caught:
        manager.get("state store", "zzz")
    assert str(caught.value) == "state store 'zzz' is not installed (installed: file)"


def test_config_validate_names_an_unknown_backend_in_one_error_line(
    site: Site, tmp_path: Path
) -> None:
    path = write_config(tmp_path / "project", "caching:\n  backend: file\n")
    result = run_cli("config", "validate", str(path), env=only())
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: caching.backend: cache backend 'file' is not installed")
    assert "pip install questfoundry-cache-file" in lines[0]
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_a_fresh_process_reports_an_unknown_backend_without_a_traceback(
    site: Site, tmp_path: Path
) -> None:
    path = write_config(tmp_path / "project", "caching:\n  backend: memroy\n")
    result = run_cli_process(site, "config", "validate", str(path), QUESTFOUNDRY_LOAD_PLUGINS="")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"Error: caching.backend: cache backend 'memroy' is not installed (installed: memory); "
        f"did you mean 'memory'? (in {path})"
    ]


def test_a_misspelt_hook_name_disables_the_plugin_naming_the_hook(site: Site) -> None:
    site.install(
        "questfoundry-cache-typo", "0.1", {"cache-typo": "qf_typo"}, {"qf_typo": MISSPELT_HOOK}
    )
    with pytest.warns(PluginLoadWarning) as caught:
        manager = get_plugin_manager(env=only("cache-typo"))
    ours = [str(w.message) for w in caught if issubclass(w.category, PluginLoadWarning)]
    assert ours == [
        "plugin questfoundry-cache-typo (cache-typo) is disabled: implements unknown hooks: "
        "'cache_backend' (did you mean 'cache_backends'?); the rest of QuestFoundry works "
        "without it (set QUESTFOUNDRY_DISABLE_PLUGINS=questfoundry-cache-typo to stop loading it)"
    ]
    assert "cache-typo" not in {name for name, _ in manager.pm.list_name_plugin()}


def test_check_disables_a_misspelt_hook_registered_by_hand() -> None:
    class Typo:
        @hookimpl
        def providres(self) -> dict[str, Any]:
            return {}

    manager = get_plugin_manager(entry_points=False)
    manager.register(Typo(), "typo")
    with pytest.warns(PluginLoadWarning, match="providres"):
        manager.check()
    assert [f.entry_point for f in manager.failures] == ["typo"]


def test_questfoundry_plugins_lists_a_misspelt_plugin_as_disabled(site: Site) -> None:
    site.install(
        "questfoundry-cache-typo", "0.1", {"cache-typo": "qf_typo"}, {"qf_typo": MISSPELT_HOOK}
    )
    result = run_cli("plugins", "--json", env=only("cache-typo"))
    assert result.exit_code == 0, result.output
    listed = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert "unknown hooks: 'cache_backend'" in listed["cache-typo"]["error"]
    assert listed["builtin:memory_cache"]["error"] is None


# ----------------------------------------------------------------------------- selection


def install_two(site: Site) -> None:
    site.install_tmpcache()
    source = TMPCACHE.replace('"tmpcache"', '"othercache"')
    site.install(
        "questfoundry-cache-other", "0.9", {"cache-other": "qf_other"}, {"qf_other": source}
    )


def loaded(env: Mapping[str, str]) -> set[str]:
    """Which of the two throwaway plugins load under ``env``."""
    manager = get_plugin_manager(env=env)
    return {info.name for info in manager.plugins()} & {"cache-tmp", "cache-other"}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, {"cache-tmp", "cache-other"}),
        ({"QUESTFOUNDRY_DISABLE_PLUGINS": "cache-tmp"}, {"cache-other"}),
        ({"QUESTFOUNDRY_DISABLE_PLUGINS": "questfoundry-cache-tmp"}, {"cache-other"}),
        ({"QUESTFOUNDRY_DISABLE_PLUGINS": " cache-tmp , cache-other "}, set()),
        ({"QUESTFOUNDRY_DISABLE_PLUGINS": "*"}, set()),
        ({"QUESTFOUNDRY_LOAD_PLUGINS": "cache-other"}, {"cache-other"}),
        ({"QUESTFOUNDRY_LOAD_PLUGINS": "questfoundry-cache-tmp"}, {"cache-tmp"}),
        ({"QUESTFOUNDRY_LOAD_PLUGINS": ""}, set()),
        (
            {
                "QUESTFOUNDRY_LOAD_PLUGINS": "cache-tmp,cache-other",
                "QUESTFOUNDRY_DISABLE_PLUGINS": "cache-tmp",
            },
            {"cache-other"},
        ),
    ],
    ids=[
        "default-all",
        "disable-by-entry-point",
        "disable-by-distribution",
        "disable-both",
        "disable-star",
        "load-one",
        "load-by-distribution",
        "load-none",
        "disable-beats-load",
    ],
)
def test_environment_selects_which_external_plugins_load(
    site: Site, env: dict[str, str], expected: set[str]
) -> None:
    install_two(site)
    assert loaded(env) == expected


def test_disabling_every_external_plugin_keeps_the_built_ins(site: Site) -> None:
    install_two(site)
    manager = get_plugin_manager(env={"QUESTFOUNDRY_DISABLE_PLUGINS": "*"})
    assert {info.distribution for info in manager.plugins()} == {"questfoundry"}
    assert set(manager.backends("cache backend")) == {"memory"}


def test_a_disabled_broken_plugin_is_never_imported(site: Site) -> None:
    site.install_tmpcache()
    site.install("questfoundry-broken", "0.1", {"broken": "qf_broken"}, {"qf_broken": BROKEN})
    manager = get_plugin_manager(env={"QUESTFOUNDRY_DISABLE_PLUGINS": "questfoundry-broken"})
    assert manager.failures == []
    assert not (site.root / "qf_broken.imported").exists()
    assert "cache-tmp" in {info.name for info in manager.plugins()}


def test_the_cli_honours_the_selection_variables(site: Site) -> None:
    install_two(site)
    result = run_cli("plugins", "--json", env={"QUESTFOUNDRY_DISABLE_PLUGINS": "cache-other"})
    assert result.exit_code == 0, result.output
    names = {entry["name"] for entry in json.loads(result.stdout)}
    assert "cache-tmp" in names
    assert "cache-other" not in names


# ------------------------------------------------------------------------ the repository's plugins


def repo_plugin_distributions() -> list[str]:
    return sorted(
        p.name
        for p in (REPO / "plugins").iterdir()
        if (p / "pyproject.toml").is_file() and not p.name.startswith("_")
    )


def test_the_ollama_cost_model_is_found_through_its_installed_entry_point() -> None:
    manager = get_plugin_manager(env={})
    registration = manager.get("cost model", "ollama")
    assert (registration.plugin, registration.distribution) == (
        "pricing-ollama",
        "questfoundry-pricing-ollama",
    )
    info = next(i for i in manager.plugins() if i.distribution == "questfoundry-pricing-ollama")
    assert info.version == metadata.version("questfoundry-pricing-ollama")


# ------------------------------------------------------------------------ the template


def template_recipe() -> str:
    """The bash block of ``plugins/_template/README.md`` that makes a new plugin."""
    text = (REPO / "plugins" / "_template" / "README.md").read_text(encoding="utf-8")
    section = text.split("## Making a new plugin", 1)[1]
    return section.split("```bash\n", 1)[1].split("\n```", 1)[0]


def test_the_template_recipe_makes_a_clean_plugin(tmp_path: Path) -> None:
    shutil.copytree(REPO / "plugins" / "_template", tmp_path / "plugins" / "_template")
    steps = [line for line in template_recipe().splitlines() if "pip install" not in line]
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", "\n".join(steps)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    new = tmp_path / "plugins" / "questfoundry-cache-sqlite"
    placeholders = re.compile(r"KIND|LABEL|HOOK_NAME|LIBRARY_|SUITE_|\bNAME\b")
    for path in new.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert not placeholders.search(text), f"{path.relative_to(new)}: {text[:200]}"
            if path.suffix == ".py":
                compile(text, str(path), "exec")
    readme = (new / "README.md").read_text(encoding="utf-8")
    assert readme.startswith("# questfoundry-cache-sqlite\n\ncache backend `sqlite` for")
    assert "| placeholder |" not in readme
    test_module = (new / "tests" / "test_cache_sqlite.py").read_text(encoding="utf-8")
    assert "yield backend\n        backend.close()" in test_module
    assert 'registers = {"cache backend": ["sqlite"]}' in test_module
