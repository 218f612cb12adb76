"""The shipped JSON Schema, the seed's example, and the messages validation gives."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from questfoundry.builtins import memory_cache
from questfoundry.config import load_config, load_schema, validate
from questfoundry.config.schema import core_schema
from questfoundry.contracts.errors import ConfigError
from questfoundry.gateway import plan
from questfoundry.gateway.retry import RetryPolicy
from questfoundry.registry import get_plugin_manager

REPO = Path(__file__).resolve().parents[2]
SEED = Path(__file__).parent / "configs" / "seed.yml"
SECTIONS = {
    "project",
    "providers",
    "roles",
    "caching",
    "rate_limiting",
    "pricing",
    "state",
    "retry",
    "studio",
}


def deref(schema: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str):
        target: Any = schema
        for piece in ref.removeprefix("#/").split("/"):
            target = target[piece]
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def keyed_subschemas(
    schema: Mapping[str, Any], node: Mapping[str, Any], where: str
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every schema that describes a config key (fixed or free-named), with where it sits."""
    node = deref(schema, node)
    for name, sub in node.get("properties", {}).items():
        yield f"{where}.{name}", deref(schema, sub)
        yield from keyed_subschemas(schema, sub, f"{where}.{name}")
    extra = node.get("additionalProperties")
    if isinstance(extra, Mapping):
        yield f"{where}.<name>", deref(schema, extra)
        yield from keyed_subschemas(schema, extra, f"{where}.<name>")


def defaults_of(schema: Mapping[str, Any], node: Mapping[str, Any]) -> dict[str, Any]:
    """A config holding every documented default."""
    out: dict[str, Any] = {}
    for name, raw in deref(schema, node).get("properties", {}).items():
        sub = deref(schema, raw)
        if "default" in sub:
            out[name] = sub["default"]
        elif sub.get("properties"):
            nested = defaults_of(schema, sub)
            if nested:
                out[name] = nested
    return out


def message_of(data: Mapping[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        validate(data)
    return caught.value


# ----------------------------------------------------------------------------- the schema


@pytest.mark.slow
def test_schema_is_valid_json_schema_2020_12() -> None:
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_schema_covers_every_section_of_the_design() -> None:
    assert set(load_schema()["properties"]) == SECTIONS


def test_every_key_has_a_description() -> None:
    schema = load_schema()
    undocumented = [
        where
        for where, sub in keyed_subschemas(schema, schema, "")
        if not str(sub.get("description", "")).strip()
    ]
    assert not undocumented


def test_every_mapping_refuses_unknown_keys() -> None:
    schema = load_schema()
    open_ended = [
        where
        for where, sub in keyed_subschemas(schema, schema, "")
        if sub.get("type") == "object"
        and "additionalProperties" not in sub
        and "unevaluatedProperties" not in sub
        and not where.endswith(("text.<name>", "image.<name>"))  # uninstalled: its plugin decides
    ]
    assert not open_ended


def test_free_names_are_constrained_wherever_a_mapping_takes_any_key() -> None:
    schema = load_schema()
    for where, sub in keyed_subschemas(schema, schema, ""):
        if isinstance(sub.get("additionalProperties"), Mapping):
            names = deref(schema, sub["propertyNames"])
            assert names["pattern"] == "^[a-z][a-z0-9_-]*$", where
            assert names["title"], where


def test_repository_schema_is_a_relative_link_to_the_shipped_one() -> None:
    link = REPO / "schemas" / "config.schema.json"
    assert link.is_symlink()
    assert not Path(os.readlink(link)).is_absolute()
    assert json.loads(link.read_text()) == core_schema()


def test_load_schema_returns_a_fresh_copy() -> None:
    load_schema()["properties"].clear()
    assert load_schema()["properties"]


def test_documented_defaults_are_themselves_valid() -> None:
    schema = load_schema()
    validate(defaults_of(schema, schema))


def test_documented_defaults_match_what_the_code_uses() -> None:
    schema = load_schema()
    defaults = defaults_of(schema, schema)
    assert RetryPolicy.from_settings(defaults["retry"]) == RetryPolicy.from_settings({})
    assert defaults["caching"]["ttl_seconds"] == plan.DEFAULT_TTL
    memory = defaults_of(schema, schema["$defs"]["memory_cache"])
    assert memory["max_entries"] == memory_cache.DEFAULT_MAX_ENTRIES
    assert memory["max_cache_size_mb"] == memory_cache.DEFAULT_MAX_CACHE_SIZE_MB


# ----------------------------------------------------------------------------- valid configs


def test_empty_config_is_valid() -> None:
    validate({})


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_each_empty_section_is_valid(section: str) -> None:
    validate({section: {}})


def test_seed_example_validates_unchanged_with_its_variable_set() -> None:
    config = load_config(SEED, env={"OPENAI_API_KEY": "sk-test-not-real"})
    assert config.get("providers.text.openai.api_key") == "sk-test-not-real"
    assert config.get("caching.per_provider.openai.ttl_seconds") == 172800
    assert config.get("rate_limiting.providers.ollama.cost_per_output_token") == 0.0
    assert "providers.text.openai.api_key" in config.secret_paths


def test_seed_example_without_its_variable_names_it_and_the_path_when_read() -> None:
    config = load_config(SEED, env={})
    assert config.get("caching.backend") == "file"
    with pytest.raises(ConfigError) as caught:
        config.get("providers.text.openai")
    assert caught.value.path == "providers.text.openai.api_key"
    assert "OPENAI_API_KEY" in str(caught.value)


def test_a_full_config_touching_every_key_is_valid() -> None:
    """Every key of the core schema at once; the backends named are ones no plugin registers
    here (only the built-ins are loaded), so their own keys are not checked."""
    limits = {
        "requests_per_minute": 60,
        "tokens_per_hour": 1e6,
        "cost_per_day": 5,
        "cost_per_month": 100.0,
    }
    prices = {
        "cost_per_input_token": 1e-6,
        "cost_per_output_token": 2e-6,
        "cost_per_cached_input_token": 0,
    }
    provider = {
        "api_key": "k",
        "base_url": "https://api.example.com/v1",
        "organization": "org",
        "model": "m",
        "timeout_seconds": 30,
        "temperature": 0.7,
        "max_tokens": 100,
        "top_p": 1,
        "size": "1024x1024",
        "quality": "hd",
    }
    validate(
        {
            "project": {"name": "my-book.v2"},
            "providers": {
                "text": {"default": "openai", "openai": provider},
                "image": {"default": "openai", "openai": provider},
            },
            "roles": {
                "illustrator": {"provider": "openai", "model": "gpt-image-1", "kind": "image"},
                "scene_smith": {"temperature": 2, "top_p": 0, "stop": ["END"], "seed": 7},
                "gatekeeper": {"stop": "END", "max_tokens": 1, "size": "s", "quality": "q"},
            },
            "caching": {
                "enabled": False,
                "backend": "redis",
                "cache_dir": "c",
                "ttl_seconds": None,
                "coalesce_seconds": 0,
                "max_cache_size_mb": 0.5,
                "max_entries": 1,
                "redis_url": "rediss://user:pw@host:6380/2",
                "key_prefix": "qf",
                "per_provider": {"openai": {"enabled": True, "ttl_seconds": 0}},
            },
            "rate_limiting": {
                "enabled": True,
                "backend": "redis",
                "on_limit": "raise",
                "max_wait_seconds": 0,
                "on_backend_error": "fail_open",
                "timezone": "Europe/Paris",
                "redis_url": "unix:///tmp/redis.sock",
                "key_prefix": "qf",
                "global": limits,
                "providers": {"openai": {**limits, **prices}},
            },
            "pricing": {
                "ledger_path": "/var/lib/qf/ledger.sqlite",
                "providers": {"openai": {"cost_model": "openai", **prices}},
            },
            "state": {
                "backend": "redis",
                "path": "s",
                "redis_url": "redis://h",
                "key_prefix": "x",
                "backups": {"keep": 3, "path": "b"},
            },
            "retry": {
                "enabled": True,
                "max_retries": 0,
                "initial_delay_ms": 0,
                "max_delay_ms": 0,
                "respect_retry_after": False,
            },
            "studio": {"context_tokens": 0},
        },
        manager=get_plugin_manager(entry_points=False),
    )


# ----------------------------------------------------------------------------- messages


def test_every_error_is_reported_sorted_by_path_on_one_line() -> None:
    error = message_of(
        {
            "retry": {"max_retries": -1},
            "caching": {"ttl_secnds": 5, "enabled": "yes"},
            "roles": {"gatekeeper": {"temperature": 3.5}},
        }
    )
    assert error.path == "caching.enabled"
    assert str(error) == (
        "caching.enabled: expected true or false, got the string 'yes'; "
        "caching.ttl_secnds: unknown key; did you mean 'ttl_seconds'?; "
        "retry.max_retries: -1 is less than the minimum of 0; "
        "roles.gatekeeper.temperature: 3.5 is greater than the maximum of 2"
    )


def test_source_is_named_at_the_end() -> None:
    with pytest.raises(ConfigError, match=r"\(in project/config\.yml\)$"):
        validate({"retry": {"enabled": 1}}, source="project/config.yml")


def test_each_unknown_key_gets_its_own_error() -> None:
    error = message_of({"state": {"bakend": "file", "pth": "x"}})
    assert "state.bakend: unknown key; did you mean 'backend'?" in str(error)
    assert "state.pth: unknown key; did you mean 'path'?" in str(error)


def test_unknown_key_without_a_close_match_lists_the_allowed_keys() -> None:
    error = message_of({"state": {"colour": "blue"}})
    assert str(error) == ("state.colour: unknown key (expected one of: backend, backups, path)")


def test_invalid_free_name_says_what_kind_of_name() -> None:
    error = message_of({"caching": {"per_provider": {"OpenAI": {"enabled": True}}}})
    assert error.path == "caching.per_provider.OpenAI"
    assert "'OpenAI' is not a valid provider name" in str(error)


def test_misspelt_fixed_key_among_free_names_gets_a_suggestion() -> None:
    error = message_of({"providers": {"text": {"defualt": "openai"}}})
    assert str(error).endswith("did you mean 'default'?")


def test_enum_error_suggests_the_closest_choice() -> None:
    error = message_of({"roles": {"illustrator": {"kind": "imag"}}})
    assert str(error) == (
        "roles.illustrator.kind: 'imag' is not one of 'text', 'image'; did you mean 'image'?"
    )


def test_pattern_error_shows_an_example_of_the_expected_form() -> None:
    error = message_of({"providers": {"text": {"ollama": {"base_url": "localhost:11434"}}}})
    assert "expected something like 'http://localhost:11434'" in str(error)


def test_secret_values_never_appear_in_messages() -> None:
    error = message_of(
        {
            "providers": {"text": {"openai": {"api_key": 123456789}}},
            "state": {"redis_url": "http://:hunter2@host"},
        }
    )
    assert "providers.text.openai.api_key: expected a string, got an integer" in str(error)
    assert "123456789" not in str(error)
    assert "hunter2" not in str(error)


def test_unknown_time_zone_is_refused_with_a_suggestion() -> None:
    error = message_of({"rate_limiting": {"timezone": "Europe/Pari"}})
    assert str(error) == (
        "rate_limiting.timezone: unknown time zone 'Europe/Pari'; did you mean 'Europe/Paris'?"
    )


def test_first_retry_delay_cannot_exceed_the_longest() -> None:
    error = message_of({"retry": {"initial_delay_ms": 5000, "max_delay_ms": 1000}})
    assert str(error) == "retry.initial_delay_ms: 5000 is greater than retry.max_delay_ms (1000)"


def test_long_values_are_shortened_in_messages() -> None:
    error = message_of({"rate_limiting": {"on_limit": "x" * 500}})
    assert len(str(error)) < 200
