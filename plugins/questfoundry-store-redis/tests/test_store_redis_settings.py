"""The ``redis`` store's settings: config.yml validation, the runtime building it, secrets kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from questfoundry_store_redis.plugin import make_redis_store
from questfoundry_store_redis.store import RedisStore

from questfoundry.kit import BackendContext, Capability, ConfigError
from questfoundry.testing.app import Config, PluginManager, Runtime, get_plugin_manager, load_config
from questfoundry.testing.redis import RedisServer, client

PASSWORD = "hunter22-Secret"


@pytest.fixture(scope="module")
def manager() -> PluginManager:
    return get_plugin_manager(env={"QUESTFOUNDRY_LOAD_PLUGINS": "store-redis"})


def load(tmp_path: Path, manager: PluginManager, text: str, **env: str) -> Config:
    """``text`` as the project's config.yml, loaded and validated with the redis store installed."""
    folder = tmp_path / "lighthouse" / ".questfoundry"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yml").write_text(text, encoding="utf-8")
    return load_config(folder / "config.yml", env=env, manager=manager)


def config_error(tmp_path: Path, manager: PluginManager, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, manager, text)
    return str(caught.value)


def test_the_entry_point_registers_the_store_with_its_capabilities(manager: PluginManager) -> None:
    registration = manager.get("state store", "redis")
    assert registration.distribution == "questfoundry-store-redis"
    assert registration.capabilities == {
        Capability.TTL,
        Capability.ATOMIC,
        Capability.SHARED,
        Capability.PERSISTENT,
        Capability.LEASES,
    }
    assert registration.capabilities == RedisStore.capabilities


@pytest.mark.redis
def test_a_config_naming_the_redis_store_builds_it_through_the_runtime(
    tmp_path: Path, manager: PluginManager, redis_url: str, redis_prefix: str
) -> None:
    config = load(
        tmp_path,
        manager,
        f"state:\n  backend: redis\n  redis_url: {redis_url}\n  key_prefix: '{redis_prefix}'\n",
    )
    with Runtime(config, manager) as runtime:
        store = runtime.state
        assert isinstance(store, RedisStore)
        store.set("book/title", {"title": "The Lighthouse"})
        assert store.get("book/title") == {"title": "The Lighthouse"}
    raw = client(redis_url)
    try:  # under the key prefix, then the project's namespace (its folder's name)
        assert (
            raw.get(f"{redis_prefix}lighthouse:state:book/title") == b'{"title": "The Lighthouse"}'
        )
    finally:
        raw.close()


@pytest.mark.slow
@pytest.mark.redis
def test_a_password_from_the_environment_reaches_redis_and_nothing_printable(
    tmp_path: Path, manager: PluginManager, locked_server: RedisServer, redis_password: str
) -> None:
    url = f"redis://:${{QF_REDIS_PASSWORD}}@127.0.0.1:{locked_server.port}/0"
    text = f"state:\n  backend: redis\n  redis_url: {url}\n"
    config = load(tmp_path, manager, text, QF_REDIS_PASSWORD=redis_password)
    assert redis_password not in repr(config.redacted())
    with Runtime(config, manager) as runtime:
        runtime.state.set("doc", {"n": 1})
        assert runtime.state.get("doc") == {"n": 1}
        assert redis_password not in repr(runtime.state)


def test_a_tls_url_and_a_password_from_the_environment_are_accepted(
    tmp_path: Path, manager: PluginManager
) -> None:
    text = (
        "state:\n  backend: redis\n"
        "  redis_url: rediss://:${QF_REDIS_PASSWORD}@cache.example:6380/2\n"
        "  socket_timeout: 0.25\n  connect_timeout: 0.5\n  pool_size: 4\n"
    )
    config = load(tmp_path, manager, text, QF_REDIS_PASSWORD=PASSWORD)
    assert PASSWORD not in repr(config.redacted())
    store = make_redis_store(config.section("state"), BackendContext(tmp_path, "p"))
    try:  # building connects to nothing
        assert store.settings.address == "cache.example:6380/2"
        assert store.settings.password == PASSWORD
        assert (store.settings.socket_timeout, store.settings.connect_timeout) == (0.25, 0.5)
        assert store.pool_size == 4
        assert PASSWORD not in repr(store) + repr(store.settings)
    finally:
        store.close()


def test_an_unknown_key_is_a_config_error_naming_it(tmp_path: Path, manager: PluginManager) -> None:
    message = config_error(tmp_path, manager, "state:\n  backend: redis\n  redis_host: h\n")
    assert message.startswith("state.redis_host: unknown key")
    assert "redis_url" in message  # what it may have meant


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (f"redis_url: http://:{PASSWORD}@h/0", "state.redis_url:"),
        ("socket_timeout: 0", "state.socket_timeout:"),
        ("connect_timeout: -1", "state.connect_timeout:"),
        ("pool_size: 0", "state.pool_size:"),
        ("key_prefix: 3", "state.key_prefix:"),
    ],
)
def test_bad_settings_are_config_errors_that_never_show_the_password(
    tmp_path: Path, manager: PluginManager, line: str, problem: str
) -> None:
    message = config_error(tmp_path, manager, f"state:\n  backend: redis\n  {line}\n")
    assert message.startswith(problem)
    assert PASSWORD not in message


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"redis_url": f"redis://:{PASSWORD}@h:99999/0"}, "state.redis_url: is not a valid URL"),
        ({"redis_url": f"http://:{PASSWORD}@h/0"}, "state.redis_url: must be a redis"),
        ({"redis_url": f"unix://:{PASSWORD}@"}, "state.redis_url: names no socket"),
        ({"redis_url": "redis://h/zero"}, "state.redis_url: names no database number"),
        ({"socket_timeout": float("nan")}, "state.socket_timeout: must be a positive number"),
        ({"pool_size": True}, "state.pool_size: must be a whole number"),
    ],
)
def test_the_factory_refuses_what_validation_would(
    tmp_path: Path, settings: dict[str, Any], problem: str
) -> None:
    """Factories may be called without config.yml (tests, other tools): they check too."""
    with pytest.raises(ConfigError) as caught:
        make_redis_store(settings, BackendContext(tmp_path, "p"))
    assert str(caught.value).startswith(problem)
    assert PASSWORD not in str(caught.value)
