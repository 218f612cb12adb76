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
from questfoundry.errors import DuplicatePluginError, PluginError, PluginNotFoundError
from questfoundry.gateway import Gateway
from questfoundry.interfaces import RoleProvider
from questfoundry.plugins import ENTRY_POINT_GROUP, PluginLoadWarning, get_plugin_manager

REPO = Path(__file__).resolve().parents[1]

#: environment variables that change which plugins load or which config is read
CONTROL_VARS = ("QUESTFOUNDRY_DISABLE_PLUGINS", "QUESTFOUNDRY_LOAD_PLUGINS", "QUESTFOUNDRY_CONFIG")

TMPCACHE = """
    from questfoundry import hookimpl
    from questfoundry.interfaces import CacheStats


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
    from questfoundry.interfaces import LoopSpec, Migration, RoleProvider, RoleSpec

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
        return [Migration(1, 2, lambda document: {**document, "version": 2})]


    @hookimpl
    def call_completed(event):
        SEEN.append(event)
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
    }
    assert listed["builtin:memory_cache"]["registers"] == {"cache backend": ["memory"]}


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

    gateway = Gateway(load_config(path, env={}), get_plugin_manager(env={}))
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
        "hook": ["resolve_role_provider", "state_migrations", "call_completed"],
    }
    migrations = [m for batch in manager.hook.state_migrations() for m in batch]
    assert [(m.from_version, m.to_version) for m in migrations] == [(1, 2)]


def test_an_external_role_resolver_runs_before_the_built_in_one(site: Site) -> None:
    site.install(
        "questfoundry-everything", "0.3", {"everything": "qf_every"}, {"qf_every": EVERY_HOOK}
    )
    manager = get_plugin_manager(env=only("everything"))
    config = {"providers": {"text": {"default": "openai", "openai": {"model": "gpt-4o-mini"}}}}

    routed = manager.hook.resolve_role_provider(role="cartographer", config=config, override=None)
    assert routed == RoleProvider("cartographer", "everyprovider", "map-1", {"temperature": 0.1})

    # Answering None hands the decision to the built-in resolver.
    fallback = manager.hook.resolve_role_provider(role="plotwright", config=config, override=None)
    assert (fallback.provider, fallback.model) == ("openai", "gpt-4o-mini")


# ----------------------------------------------------------------------------- clear errors


def test_a_name_registered_by_two_plugins_is_refused_naming_both(site: Site) -> None:
    site.install_tmpcache()
    site.install(
        "questfoundry-cache-other", "0.9", {"cache-other": "qf_other"}, {"qf_other": OTHER_TMPCACHE}
    )
    manager = get_plugin_manager(env=only("cache-tmp", "cache-other"))
    with pytest.raises(DuplicatePluginError) as caught:
        manager.get("cache backend", "tmpcache")
    message = str(caught.value)
    assert "cache backend 'tmpcache' is registered twice" in message
    for name in ("cache-tmp", "questfoundry-cache-tmp", "cache-other", "questfoundry-cache-other"):
        assert name in message


def test_a_plugin_cannot_take_over_a_built_in_name(site: Site) -> None:
    site.install(
        "questfoundry-cache-fake",
        "0.1",
        {"cache-fake": "qf_fake"},
        {"qf_fake": TMPCACHE.replace('"tmpcache"', '"memory"')},
    )
    manager = get_plugin_manager(env=only("cache-fake"))
    with pytest.raises(
        DuplicatePluginError, match=r"builtin:memory_cache \(questfoundry\).*cache-fake"
    ):
        manager.get("cache backend", "memory")


def test_the_same_name_for_two_kinds_of_backend_is_no_duplicate(site: Site) -> None:
    site.install_tmpcache()
    source = TMPCACHE.replace("def cache_backends", "def state_stores")
    site.install(
        "questfoundry-store-tmp", "0.1", {"store-tmp": "qf_tmpstore"}, {"qf_tmpstore": source}
    )
    manager = get_plugin_manager(env=only("cache-tmp", "store-tmp"))
    assert manager.get("cache backend", "tmpcache").plugin == "cache-tmp"
    assert manager.get("state store", "tmpcache").plugin == "store-tmp"


def test_questfoundry_plugins_reports_a_duplicate_as_one_error_line(site: Site) -> None:
    site.install_tmpcache()
    site.install(
        "questfoundry-cache-other", "0.9", {"cache-other": "qf_other"}, {"qf_other": OTHER_TMPCACHE}
    )
    result = run_cli("plugins", env=only("cache-tmp", "cache-other"))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: cache backend 'tmpcache' is registered twice: by cache-tmp "
        "(questfoundry-cache-tmp) and by cache-other (questfoundry-cache-other)"
    ]


def test_a_plugin_that_fails_to_import_warns_once_and_the_rest_still_load(site: Site) -> None:
    site.install_tmpcache()
    site.install("questfoundry-broken", "0.1", {"broken": "qf_broken"}, {"qf_broken": BROKEN})
    with pytest.warns(PluginLoadWarning) as caught:
        manager = get_plugin_manager(env=only("cache-tmp", "broken"))
    assert len(caught) == 1
    assert "questfoundry-broken" in str(caught[0].message)
    assert "RuntimeError: boom at import" in str(caught[0].message)
    assert [(f.distribution, f.entry_point) for f in manager.failures] == [
        ("questfoundry-broken", "broken")
    ]
    assert manager.get("cache backend", "tmpcache").distribution == "questfoundry-cache-tmp"
    assert "broken" not in {info.name for info in manager.plugins()}


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
        manager.get("cache backend", "redis")
    assert str(caught.value) == (
        "cache backend 'redis' is not installed (installed: memory, tmpcache); "
        "pip install questfoundry-cache-redis"
    )
    assert (caught.value.kind, caught.value.name) == ("cache backend", "redis")
    assert sorted(caught.value.installed) == ["memory", "tmpcache"]
    assert caught.value.distribution == "questfoundry-cache-redis"


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
    path = write_config(tmp_path / "project", "caching:\n  backend: redis\n")
    result = run_cli("config", "validate", str(path), env=only())
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: caching.backend: cache backend 'redis' is not installed")
    assert "pip install questfoundry-cache-redis" in lines[0]
    assert "Traceback" not in result.output


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


def test_a_misspelt_hook_name_is_refused(site: Site) -> None:
    site.install(
        "questfoundry-cache-typo", "0.1", {"cache-typo": "qf_typo"}, {"qf_typo": MISSPELT_HOOK}
    )
    with pytest.raises(PluginError, match="cache_backend"):
        get_plugin_manager(env=only("cache-typo"))


def test_a_misspelt_hook_name_is_refused_naming_the_plugin(site: Site) -> None:
    site.install(
        "questfoundry-cache-typo", "0.1", {"cache-typo": "qf_typo"}, {"qf_typo": MISSPELT_HOOK}
    )
    with pytest.raises(PluginError) as caught:
        get_plugin_manager(env=only("cache-typo"))
    assert str(caught.value) == (
        "plugin cache-typo (questfoundry-cache-typo) implements unknown hooks: "
        "'cache_backend' (did you mean 'cache_backends'?)"
    )


def test_check_refuses_a_misspelt_hook_registered_by_hand() -> None:
    class Typo:
        @hookimpl
        def providres(self) -> dict[str, Any]:
            return {}

    manager = get_plugin_manager(entry_points=False)
    manager.register(Typo(), "typo")
    with pytest.raises(PluginError, match="providres"):
        manager.check()


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


@pytest.mark.parametrize("distribution", repo_plugin_distributions())
def test_each_installed_repository_plugin_is_discovered(distribution: str) -> None:
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        pytest.skip(f"{distribution} is not installed")
    names = {ep.name for ep in dist.entry_points.select(group=ENTRY_POINT_GROUP)}
    assert names, f"{distribution} publishes no entry point in the group {ENTRY_POINT_GROUP!r}"
    manager = get_plugin_manager(env=only(distribution))
    assert manager.failures == []
    listed = {info.name: info for info in manager.plugins() if info.distribution == distribution}
    assert set(listed) == names
    assert all(info.registers for info in listed.values()), listed
