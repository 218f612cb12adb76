"""Plugins own their settings and their roles: what the composed schema and the role catalogue do.

Test plugins are registered explicitly; nothing depends on what happens to be installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from questfoundry import hookimpl
from questfoundry.builtins.memory_cache import MemoryCache
from questfoundry.cli import cli
from questfoundry.config import load_config, validate
from questfoundry.contracts.backends import Backend, BackendContext
from questfoundry.contracts.errors import ConfigError, PluginError
from questfoundry.contracts.records import Request
from questfoundry.contracts.studio import LoopSpec, RoleSpec
from questfoundry.registry import PluginLoadWarning, PluginManager, get_plugin_manager
from questfoundry.runtime import open_gateway
from questfoundry.testing.scripted import ScriptedProvider

SEED = Path(__file__).parent / "configs" / "seed.yml"


class Built(MemoryCache):
    """A working cache that keeps what its factory was given."""

    def __init__(self, settings: Mapping[str, Any], context: BackendContext) -> None:
        super().__init__()
        self.settings = dict(settings)


class JarCache:
    """A third-party cache backend ``jar`` that declares one setting, ``lid``."""

    @hookimpl
    def cache_backends(self) -> dict[str, Any]:
        lid = {"type": "integer", "minimum": 1, "default": 3, "description": "Lids on the jar."}
        return {
            "jar": Backend(Built, settings={"properties": {"lid": lid}}, description="a jar"),
        }


class Cartography:
    """Contributes a text role and an image role, and a loop over them."""

    @hookimpl
    def roles(self) -> list[RoleSpec]:
        return [RoleSpec("cartographer", "text"), RoleSpec("map_painter", "image")]

    @hookimpl
    def loops(self) -> list[LoopSpec]:
        return [LoopSpec("mapping", ("cartographer", "map_painter"))]


def manager_with(*plugins: tuple[str, object]) -> PluginManager:
    return get_plugin_manager(entry_points=False, plugins=plugins)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / ".questfoundry" / "config.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- settings


def test_a_third_party_backends_good_setting_reaches_its_factory(tmp_path: Path) -> None:
    manager = manager_with(("jar", JarCache()))
    path = write(tmp_path, "caching:\n  backend: jar\n  lid: 7\n")
    config = load_config(path, env={}, manager=manager)
    cache = manager.create("cache backend", "jar", config.section("caching"), BackendContext(path))
    assert cache.settings["lid"] == 7


def test_a_third_party_backends_bad_setting_is_refused_naming_its_path(tmp_path: Path) -> None:
    path = write(tmp_path, "caching:\n  backend: jar\n  lid: 0\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={}, manager=manager_with(("jar", JarCache())))
    assert caught.value.path == "caching.lid"
    assert str(caught.value).startswith("caching.lid: 0 is less than the minimum of 1")


def test_a_backends_setting_is_unknown_while_another_backend_is_selected() -> None:
    with pytest.raises(ConfigError) as caught:
        validate({"caching": {"lid": 2}}, manager=manager_with(("jar", JarCache())))
    assert str(caught.value) == (
        "caching.lid: unknown key for cache backend 'memory'; "
        "'lid' is a setting of cache backend 'jar' (backend: jar)"
    )


def test_a_key_of_an_uninstalled_repository_plugin_names_the_distribution() -> None:
    with pytest.raises(ConfigError) as caught:
        validate({"caching": {"cache_dir": ".cache"}}, manager=manager_with())
    assert caught.value.path == "caching.cache_dir"
    assert "pip install questfoundry-cache-file" in str(caught.value)


def test_the_composed_schema_carries_the_third_party_fragment() -> None:
    from questfoundry.config import load_schema

    schema = load_schema(manager_with(("jar", JarCache())))
    fragment = schema["$defs"]["backend_settings"]["cache_backend"]["jar"]
    assert fragment["properties"]["lid"]["minimum"] == 1


def test_the_seed_example_validates_unchanged_against_the_installed_plugins() -> None:
    config = load_config(SEED, env={"OPENAI_API_KEY": "sk-test"})
    assert config.get("caching.cache_dir") == ".questfoundry/cache"


# ----------------------------------------------------------------------------- roles


def test_a_misspelt_role_is_refused_with_a_suggestion() -> None:
    with pytest.raises(ConfigError) as caught:
        validate({"roles": {"scene_smth": {"temperature": 0.5}}}, manager=manager_with())
    assert str(caught.value) == "roles.scene_smth: unknown role; did you mean 'scene_smith'?"


def test_a_plugins_role_may_be_configured() -> None:
    validate(
        {"roles": {"map_painter": {"size": "512x512"}}}, manager=manager_with(("c", Cartography()))
    )


def test_a_plugin_role_of_kind_image_is_routed_to_the_image_provider() -> None:
    text, image = ScriptedProvider(), ScriptedProvider()

    class Providers:
        @hookimpl
        def providers(self) -> dict[str, Any]:
            return {"writer": lambda s, c: text, "painter": lambda s, c: image}

    manager = manager_with(("c", Cartography()), ("p", Providers()))
    data = {
        "providers": {
            "text": {"default": "writer", "writer": {"model": "w-1"}},
            "image": {"default": "painter", "painter": {"model": "p-1", "size": "256x256"}},
        }
    }
    routed = manager.resolve_role("map_painter", data)
    assert (routed.provider, routed.model, routed.kind) == ("painter", "p-1", "image")
    assert routed.sources == {
        "provider": "providers.image.default",
        "model": "providers.image.painter",
        "kind": "role catalogue",
        "size": "providers.image.painter",
    }
    from questfoundry.config import Config

    with open_gateway(Config(data), manager) as gateway:
        reply = gateway.generate(Request(prompt="a map of the coast", role="map_painter"))
    assert reply.image is not None
    assert [r.kind for r in image.requests] == ["image"]
    assert text.requests == []


def test_roles_kind_in_config_overrides_the_catalogue() -> None:
    data = {
        "roles": {"cartographer": {"kind": "image"}},
        "providers": {"image": {"default": "x", "x": {"model": "m"}}},
    }
    routed = manager_with(("c", Cartography())).resolve_role("cartographer", data)
    assert (routed.kind, routed.sources["kind"]) == ("image", "roles.cartographer")


def test_every_value_says_which_layer_set_it() -> None:
    data = {
        "providers": {"text": {"default": "a", "a": {"model": "a-1", "temperature": 0.1}}},
        "roles": {"scene_smith": {"max_tokens": 100}},
    }
    routed = manager_with().resolve_role("scene_smith", data, {"model": "a-2", "top_p": 0.5})
    assert routed.sources == {
        "provider": "providers.text.default",
        "model": "override",
        "kind": "role catalogue",
        "temperature": "providers.text.a",
        "max_tokens": "roles.scene_smith",
        "top_p": "override",
    }


def test_a_duplicate_role_disables_the_later_plugin_naming_both() -> None:
    class Twin:
        @hookimpl
        def roles(self) -> list[RoleSpec]:
            return [RoleSpec("gatekeeper", "text")]

    with pytest.warns(PluginLoadWarning, match="role 'gatekeeper' is contributed twice") as caught:
        manager = manager_with(("twin", Twin()))
    assert "builtin:roles" in str(caught[0].message)
    assert [f.entry_point for f in manager.failures] == ["twin"]
    assert "gatekeeper" in manager.roles()


def test_a_loop_naming_an_unknown_role_disables_its_plugin() -> None:
    class Lost:
        @hookimpl
        def loops(self) -> list[LoopSpec]:
            return [LoopSpec("wander", ("scene_smith", "ghost"))]

    with pytest.warns(PluginLoadWarning, match="loop 'wander' names unknown roles: ghost"):
        manager = manager_with(("lost", Lost()))
    assert "wander" not in manager.loops()
    assert "story_spark" in manager.loops()


def test_the_catalogue_holds_the_fifteen_roles_and_a_plugins_own() -> None:
    manager = manager_with(("c", Cartography()))
    assert len(manager.roles()) == 17
    assert manager.roles()["map_painter"].kind == "image"
    assert manager.loops()["mapping"].roles == ("cartographer", "map_painter")


# ----------------------------------------------------------------------------- secrets


@pytest.mark.parametrize(
    "command",
    [["cost", "report"], ["cache", "stats"], ["config", "show"], ["limits"]],
    ids=" ".join,
)
def test_commands_that_call_no_provider_work_with_the_api_key_unset(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, SEED.read_text(encoding="utf-8"))
    monkeypatch.chdir(tmp_path)
    env = {"OPENAI_API_KEY": None, "QUESTFOUNDRY_CONFIG": str(path), "COLUMNS": "200"}
    result = CliRunner().invoke(cli, command, env=env)
    assert result.exit_code == 0, result.output
    assert "OPENAI_API_KEY" not in result.stderr


def test_building_the_provider_that_needs_the_unset_key_fails_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, SEED.read_text(encoding="utf-8"))
    monkeypatch.chdir(tmp_path)
    env = {"OPENAI_API_KEY": None, "QUESTFOUNDRY_CONFIG": str(path)}
    result = CliRunner().invoke(cli, ["ask", "hi", "--role", "scene_smith"], env=env)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: providers.text.openai.api_key: environment variable OPENAI_API_KEY is not set "
        f"(in {path})"
    ]


class NotACache:
    @hookimpl
    def cache_backends(self) -> dict[str, Any]:
        return {"jug": lambda settings, context: object()}


def test_a_factory_that_builds_something_else_is_refused_naming_its_plugin(tmp_path: Path) -> None:
    manager = get_plugin_manager(entry_points=False, plugins=[("jug-plugin", NotACache())])
    with pytest.raises(
        PluginError, match=r"'jug' of jug-plugin .* built a object, which is not a CacheBackend"
    ):
        manager.create("cache backend", "jug", {}, BackendContext(tmp_path))
