"""``caching.eviction_policy``: which replies the ``file`` backend drops when it is full."""

from __future__ import annotations

from pathlib import Path

import pytest
from questfoundry_cache_file.plugin import make_file_cache

from questfoundry.kit import BackendContext, ConfigError
from questfoundry.testing.app import Config, effective, get_plugin_manager

ENTRY = b"x" * 10_000
#: about twenty entries: the cache evicts long before sixty are stored
SMALL_MB = 0.2


def first_survives(context: BackendContext, **settings: object) -> bool:
    """Store one entry, then sixty more, reading the first before each: is it still there?"""
    cache = make_file_cache({"max_cache_size_mb": SMALL_MB, **settings}, context)
    try:
        cache.set("first", ENTRY)
        for number in range(60):
            cache.get("first")
            cache.set(f"later-{number}", ENTRY)
        return cache.get("first") is not None
    finally:
        cache.close()


def test_by_default_the_least_recently_stored_reply_goes_first_however_often_read(
    backend_context: BackendContext,
) -> None:
    assert not first_survives(backend_context)
    assert not first_survives(backend_context, eviction_policy="least-recently-stored")


@pytest.mark.parametrize("policy", ["least-recently-used", "least-frequently-used"])
def test_a_policy_that_counts_reads_keeps_the_reply_read_most(
    backend_context: BackendContext, policy: str
) -> None:
    assert first_survives(backend_context, eviction_policy=policy)


def test_an_unknown_policy_is_refused_naming_the_setting(backend_context: BackendContext) -> None:
    with pytest.raises(ConfigError) as refused:
        make_file_cache({"eviction_policy": "random"}, backend_context)
    assert refused.value.path == "caching.eviction_policy"
    assert "least-recently-used" in str(refused.value)


def test_config_show_says_which_policy_is_in_effect(tmp_path: Path) -> None:
    manager = get_plugin_manager(env={})
    config = Config({"caching": {"backend": "file"}}, None, tmp_path / ".questfoundry", frozenset())
    shown, sources = effective(config, manager)
    assert shown["caching"]["eviction_policy"] == "least-recently-stored"
    assert sources["caching.eviction_policy"].endswith("default")
