"""The kit's Redis settings: one URL check, address, password rule and key layout for every
Redis plugin (``questfoundry.kit.RedisSettings``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from questfoundry.kit import ConfigError, RedisSettings, redact, redis_scan_pattern, redis_schema

SECRET = "s3cret-Pass-word"


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("redis://localhost", "localhost:6379/0"),
        (f"redis://user:{SECRET}@10.0.0.5:7000/3", "10.0.0.5:7000/3"),
        ("redis://[::1]:6390?db=4", "[::1]:6390/4"),
        ("redis://h:6390/2?db=5", "h:6390/5"),  # the query wins, as in redis-py
        ("rediss://redis.example", "redis.example:6379/0"),
        (f"unix://:{SECRET}@/run/redis.sock?db=2", "unix:/run/redis.sock/2"),
        ("unix:///run/redis.sock", "unix:/run/redis.sock/0"),
    ],
)
def test_the_address_is_host_port_and_database_never_the_password(url: str, address: str) -> None:
    settings = RedisSettings(url=url)
    assert settings.address == address
    assert SECRET not in repr(settings) + settings.address


@pytest.mark.parametrize(
    ("url", "password"),
    [
        ("redis://:first-Secret-42@h:6379/0", "first-Secret-42"),
        ("redis://h:6379/0?password=second-Secret-42", "second-Secret-42"),
    ],
    ids=["in-the-url", "in-the-query"],
)
def test_reading_the_password_registers_it_for_redaction(url: str, password: str) -> None:
    assert RedisSettings(url=url).password == password
    assert redact(f"AUTH {password} refused") == "AUTH *** refused"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (f"http://:{SECRET}@h/0", "must be a redis://, rediss:// or unix:// URL"),
        (f"redis:{SECRET}@h", "must be a redis://, rediss:// or unix:// URL"),
        (f"redis://:{SECRET}@h:99999/0", "is not a valid URL (check the port)"),
        (f"redis://:{SECRET}@h/zero", "names no database number"),
        (f"redis://:{SECRET}@/0", "names no host"),
        (f"unix://:{SECRET}@", "names no socket"),
        (42, "must be a redis://, rediss:// or unix:// URL, not int"),
    ],
)
def test_a_bad_url_is_one_config_error_at_its_key_that_never_quotes_it(
    url: Any, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        RedisSettings.read({"redis_url": url}, "caching")
    assert caught.value.path == "caching.redis_url"
    assert str(caught.value).startswith(f"caching.redis_url: {problem}")
    assert SECRET not in str(caught.value)


def test_a_required_url_that_is_missing_says_so() -> None:
    with pytest.raises(ConfigError, match=r"^rate_limiting\.redis_url: is missing"):
        RedisSettings.read({}, "rate_limiting", url=None)


@pytest.mark.parametrize(
    ("settings", "path"),
    [
        ({"socket_timeout": 0}, "state.socket_timeout"),
        ({"connect_timeout": -1}, "state.connect_timeout"),
        ({"socket_timeout": float("nan")}, "state.socket_timeout"),
        ({"connect_timeout": True}, "state.connect_timeout"),
        ({"socket_timeout": "fast"}, "state.socket_timeout"),
        ({"key_prefix": 3}, "state.key_prefix"),
    ],
)
def test_bad_settings_are_config_errors_naming_the_key(settings: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RedisSettings.read(settings, "state")
    assert caught.value.path == path


def test_missing_settings_take_the_plugins_defaults_and_become_client_options() -> None:
    settings = RedisSettings.read(
        {"connect_timeout": 0.5}, "caching", url="redis://cache:6380/1", key_prefix="qf:"
    )
    assert (settings.address, settings.key_prefix) == ("cache:6380/1", "qf:")
    assert settings.client_options() == {
        "socket_timeout": 0.1,
        "socket_connect_timeout": 0.5,
        "retry_on_timeout": False,
        "health_check_interval": 0,
    }


def test_a_prefix_puts_the_namespace_between_key_prefix_and_area() -> None:
    settings = RedisSettings(key_prefix="qf:")
    assert settings.prefix("The Lighthouse", "state") == "qf:The Lighthouse:state:"
    assert settings.prefix("a:b{c}%", "cache") == "qf:a%3Ab%7Bc%7D%25:cache:"
    assert settings.prefix("a:b", hash_tag=True) == "qf:{qf:a%3Ab}:"


NAMESPACES = st.text(alphabet=st.sampled_from("ab:%{}3A*é "), min_size=1, max_size=8)


@given(one=NAMESPACES, other=NAMESPACES, hash_tag=st.booleans())
def test_no_projects_keys_begin_like_anothers(one: str, other: str, hash_tag: bool) -> None:
    settings = RedisSettings(key_prefix="qf:")
    mine = settings.prefix(one, "cache", hash_tag=hash_tag)
    theirs = settings.prefix(other, "cache", hash_tag=hash_tag)
    if one != other:
        assert not mine.startswith(theirs)
        assert not theirs.startswith(mine)


@given(namespace=NAMESPACES)
def test_a_hash_tag_holds_the_whole_namespace(namespace: str) -> None:
    key = RedisSettings().prefix(namespace, hash_tag=True) + "rate:x"
    tag = key[key.index("{") + 1 : key.index("}")]  # what Redis Cluster hashes
    assert tag.startswith("qf:")
    assert unquote(tag.removeprefix("qf:")) == namespace  # all of it, and nothing else


@pytest.mark.redis
def test_a_scan_pattern_matches_its_prefix_literally(redis_client: Any, redis_prefix: str) -> None:
    prefix = f"{redis_prefix}a*b?[c]\\d:"
    for name in (prefix + "1", prefix + "2", f"{redis_prefix}aXb?[c]\\d:3", f"{redis_prefix}a*"):
        redis_client.set(name, b"v")
    found = redis_client.scan_iter(match=redis_scan_pattern(prefix), count=1000)
    assert sorted(k.decode() for k in found) == [prefix + "1", prefix + "2"]


def test_the_schema_takes_what_the_settings_take_in_the_plugins_words() -> None:
    properties = redis_schema(
        url="where", key_prefix="before", socket_timeout="answer", connect_timeout="connect"
    )
    assert {name: p["description"] for name, p in properties.items()} == {
        "redis_url": "where",
        "key_prefix": "before",
        "socket_timeout": "answer",
        "connect_timeout": "connect",
    }
    validator = Draft202012Validator({"type": "object", "properties": properties})
    for url in ("redis://h/0", "rediss://h", "unix:///run/redis.sock"):
        assert validator.is_valid({"redis_url": url})
        RedisSettings(url=url)  # and the settings take it too
    for bad in ({"redis_url": "http://h"}, {"socket_timeout": 0}, {"key_prefix": 3}):
        assert not validator.is_valid(bad)
    required = redis_schema(
        url="", key_prefix="", socket_timeout="", connect_timeout="", default_url=None
    )
    assert "default" not in required["redis_url"]
    assert "default" not in required["key_prefix"]
