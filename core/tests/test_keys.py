"""Cache keys: stable under spelling and order, different whenever the answer could differ."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from questfoundry.contracts.records import Message, ProviderRequest
from questfoundry.gateway.keys import (
    KEY_VERSION,
    NON_SEMANTIC,
    cache_key,
    canonical_json,
    request_fields,
)

scalars = st.one_of(
    st.integers(-1000, 1000),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.booleans(),
)
param_maps = st.dictionaries(
    st.text(min_size=1, max_size=8).filter(lambda k: k not in NON_SEMANTIC), scalars, max_size=6
)
messages = st.lists(
    st.builds(Message, st.sampled_from(["system", "user", "assistant"]), st.text(max_size=30)),
    min_size=1,
    max_size=4,
).map(tuple)


def key(params: dict[str, Any], msgs: tuple[Message, ...] = (Message("user", "hi"),)) -> str:
    return cache_key("ns", "openai", ProviderRequest("gpt-4o", msgs, params=params))


@pytest.mark.slow
@given(param_maps)
def test_dict_order_never_changes_a_key(params: dict[str, Any]) -> None:
    assert key(params) == key(dict(reversed(list(params.items()))))


@pytest.mark.slow
@given(param_maps, st.text(min_size=1, max_size=8).filter(lambda k: k not in NON_SEMANTIC), scalars)
def test_changing_a_parameter_always_changes_the_key(
    params: dict[str, Any], name: str, value: Any
) -> None:
    changed = {**params, name: value}
    fields = [
        canonical_json(request_fields("p", ProviderRequest("m", params=p)))
        for p in (params, changed)
    ]
    assume(fields[0] != fields[1])  # 1.0 → 1 is the same value, not a change
    assert key(changed) != key(params)


@pytest.mark.slow
@given(messages, messages)
def test_different_messages_make_different_keys(
    first: tuple[Message, ...], second: tuple[Message, ...]
) -> None:
    assert (key({}, first) == key({}, second)) is (first == second)


@given(st.sampled_from(["provider", "model", "kind", "prompt", "namespace"]))
def test_every_semantic_field_is_in_the_key(field: str) -> None:
    base = {"namespace": "ns", "provider": "openai"}
    request = {"model": "gpt-4o", "kind": "text", "prompt": "hi"}
    changed_base = dict(base)
    changed_request: dict[str, Any] = dict(request)
    if field in base:
        changed_base[field] = "other"
    else:
        changed_request[field] = "image" if field == "kind" else "other"
    assert cache_key(base["namespace"], base["provider"], ProviderRequest(**request)) != cache_key(
        changed_base["namespace"], changed_base["provider"], ProviderRequest(**changed_request)
    )


def test_equal_floats_spelt_differently_are_one_key() -> None:
    assert key({"temperature": 0.7}) == key({"temperature": 0.70})
    assert key({"temperature": 1}) == key({"temperature": 1.0})


def test_secrets_timeouts_and_transport_options_never_enter_the_key() -> None:
    plain = key({"temperature": 0.2})
    noisy = {
        "temperature": 0.2,
        "api_key": "sk-secret",
        "timeout": 3,
        "user": "u-1",
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert key(noisy) == plain
    assert "sk-secret" not in str(request_fields("openai", ProviderRequest("m", params=noisy)))


def test_keys_carry_the_namespace_and_format_version() -> None:
    request = ProviderRequest("m", prompt="hi")
    first, second = cache_key("alpha", "p", request), cache_key("beta", "p", request)
    assert first.startswith(f"alpha:v{KEY_VERSION}:") and second.startswith("beta:")
    assert first.split(":")[-1] == second.split(":")[-1]
