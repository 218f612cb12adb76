"""The runtime: every backend built once, lazily, shared, and closed once."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from questfoundry.builtins.memory_cache import MemoryCache
from questfoundry.config import Config, load_config
from questfoundry.contracts.hookspecs import hookimpl
from questfoundry.contracts.records import Request
from questfoundry.registry import get_plugin_manager
from questfoundry.runtime import Runtime
from questfoundry.testing.scripted import ScriptedProvider, scripted_plugin


class CountingCaches:
    """Registers cache ``counted``, whose factory is slow and counts its builds and closes."""

    def __init__(self) -> None:
        self.built = 0
        self.closed = 0

    @hookimpl
    def cache_backends(self) -> dict[str, Any]:
        plugin = self

        class Counted(MemoryCache):
            def close(self) -> None:
                plugin.closed += 1

        def make(settings: Any, context: Any) -> MemoryCache:
            threading.Event().wait(0.05)  # long enough for every racing thread to arrive
            plugin.built += 1
            return Counted()

        return {"counted": make}


def runtime_of(tmp_path: Path, data: dict[str, Any], *plugins: tuple[str, object]) -> Runtime:
    config = Config(data, None, tmp_path / ".questfoundry", frozenset())
    return Runtime(config, get_plugin_manager(entry_points=False, plugins=list(plugins)))


def test_threads_racing_for_a_backend_build_it_once(tmp_path: Path) -> None:
    caches = CountingCaches()
    runtime = runtime_of(tmp_path, {"caching": {"backend": "counted"}}, ("counted", caches))
    seen: list[object] = []
    threads = [threading.Thread(target=lambda: seen.append(runtime.cache)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert caches.built == 1 and len({id(cache) for cache in seen}) == 1
    runtime.close()
    runtime.close()
    assert caches.closed == 1


def test_nothing_is_built_until_it_is_used(tmp_path: Path) -> None:
    caches = CountingCaches()
    with runtime_of(tmp_path, {"caching": {"backend": "counted"}}, ("counted", caches)):
        pass
    assert caches.built == caches.closed == 0
    assert not (tmp_path / ".questfoundry").exists()  # no ledger, no limiter file


def test_roles_with_equal_provider_settings_share_one_instance(tmp_path: Path) -> None:
    made: list[ScriptedProvider] = []

    class Fresh:
        @hookimpl
        def providers(self) -> dict[str, Any]:
            def make(settings: Any, context: Any) -> ScriptedProvider:
                made.append(ScriptedProvider())
                return made[-1]

            return {"scripted": make}

    data = {
        "providers": {
            "text": {"default": "scripted", "scripted": {"model": "m1"}},
            "image": {"scripted": {"model": "img", "size": "256x256"}},
        }
    }
    with runtime_of(tmp_path, data, ("fresh", Fresh())) as runtime:
        assert runtime.provider("scripted") is runtime.provider("scripted", "text")
        assert runtime.provider("scripted", "image") is not runtime.provider("scripted")
    assert len(made) == 2 and all(provider.closed for provider in made)


def test_a_provider_is_built_only_when_a_call_needs_it(tmp_path: Path) -> None:
    provider = ScriptedProvider()
    data = {"providers": {"text": {"default": "scripted", "scripted": {"model": "m1"}}}}
    with runtime_of(tmp_path, data, scripted_plugin(provider)) as runtime:
        assert runtime.pooled("scripted", "text") is None
        runtime.gateway.plan(Request(prompt="hi"))
        assert runtime.pooled("scripted", "text") is None
        runtime.gateway.generate(Request(prompt="hi"))
        assert runtime.pooled("scripted", "text") is provider


@pytest.mark.parametrize("backend", ["memory", "file"])
def test_the_default_cache_is_the_file_cache_where_it_is_installed(
    tmp_path: Path, backend: str
) -> None:
    env = {} if backend == "file" else {"QUESTFOUNDRY_DISABLE_PLUGINS": "questfoundry-cache-file"}
    config = Config({}, None, tmp_path / ".questfoundry", frozenset())
    manager = get_plugin_manager(env=env)
    if backend == "file" and "file" not in manager.backends("cache backend"):
        pytest.skip("questfoundry-cache-file is not installed")
    with Runtime(config, manager) as runtime:
        assert runtime.cache_backend_name == backend


def test_a_cache_section_naming_no_backend_takes_the_default_backends_settings(
    tmp_path: Path,
) -> None:
    manager = get_plugin_manager(env={})
    if "file" not in manager.backends("cache backend"):
        pytest.skip("questfoundry-cache-file is not installed")
    path = tmp_path / ".questfoundry" / "config.yml"
    path.parent.mkdir()
    path.write_text("caching:\n  cache_dir: .questfoundry/answers\n", encoding="utf-8")
    with Runtime(load_config(path, manager=manager, env={}), manager) as runtime:
        assert runtime.cache_backend_name == "file"
        assert runtime.cache is not None
    assert (tmp_path / ".questfoundry" / "answers").is_dir()


def test_a_closed_runtime_builds_nothing_more(tmp_path: Path) -> None:
    data = {"providers": {"text": {"default": "scripted", "scripted": {"model": "m1"}}}}
    runtime = runtime_of(tmp_path, data, scripted_plugin(ScriptedProvider()))
    cache = runtime.cache
    runtime.close()
    assert runtime.cache is cache  # what was built stays readable
    with pytest.raises(RuntimeError, match="closed"):
        _ = runtime.ledger
    with pytest.raises(RuntimeError, match="closed"):
        runtime.provider("scripted")


def test_a_value_set_on_the_command_line_is_labelled_so_in_the_runtimes_answer(
    tmp_path: Path,
) -> None:
    file = tmp_path / ".questfoundry" / "config.yml"
    file.parent.mkdir()
    file.write_text(
        "providers:\n  text:\n    default: scripted\n    scripted: {model: m1}\n"
        "roles:\n  gatekeeper: {model: m2, temperature: 0.2}\n"
    )
    manager = get_plugin_manager(entry_points=False, plugins=[scripted_plugin(ScriptedProvider())])
    config = load_config(file, manager=manager, overrides={"roles.gatekeeper.model": "m3"})
    with Runtime(config, manager) as runtime:
        routed = runtime.resolve("gatekeeper")
    assert (routed.model, routed.params["temperature"]) == ("m3", 0.2)
    assert routed.sources["model"] == "--set roles.gatekeeper.model"
    assert routed.sources["temperature"] == "roles.gatekeeper"
