"""Cache keys: a SHA-256 of the canonical JSON of exactly what changes a provider's answer.

In the key: provider, model, kind, messages or prompt, and generation parameters. Never in it:
secrets, timeouts, user ids, stream flags and other transport options (:data:`NON_SEMANTIC`), so
the same question asked with another key or timeout is the same entry, and no secret can be
recovered from a cache. Floats are normalised (``1.0`` and ``1`` are one value) and mappings are
sorted, so neither spelling nor dict order changes a key. Every key is prefixed by the namespace
(the project) and :data:`KEY_VERSION`, so projects sharing one Redis never see each other's answers
and a change of this format never reads old entries.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from questfoundry.contracts.records import Message, ProviderRequest

KEY_VERSION = 1

#: request parameters that never change the answer
NON_SEMANTIC = frozenset(
    {
        "api_key",
        "timeout",
        "timeout_seconds",
        "request_timeout",
        "user",
        "user_id",
        "stream",
        "stream_options",
        "extra_headers",
        "headers",
        "metadata",
        "organization",
        "base_url",
        "max_retries",
    }
)


_SCALARS = (str, int, bool, type(None))


def _normalise(value: Any) -> Any:
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, Mapping):
        return {str(k): v if type(v) in _SCALARS else _normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [v if type(v) in _SCALARS else _normalise(v) for v in value]
    return value


def _message(message: Message | Mapping[str, str]) -> list[str]:
    if isinstance(message, Message):
        return [message.role, message.content]
    return [message["role"], message["content"]]


def canonical_fields(
    provider: str,
    model: str,
    kind: str = "text",
    messages: Sequence[Message | Mapping[str, str]] = (),
    prompt: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The fields that make a request's key, normalised."""
    fields: dict[str, Any] = {"provider": provider, "model": model, "kind": kind}
    if messages:
        fields["messages"] = [
            [m["role"], m["content"]] if type(m) is dict else _message(m) for m in messages
        ]
    if prompt is not None:
        fields["prompt"] = prompt
    if params:
        semantic = {k: v for k, v in params.items() if k not in NON_SEMANTIC and v is not None}
        if semantic:
            fields["params"] = _normalise(semantic)
    return fields


def request_fields(provider: str, request: ProviderRequest) -> dict[str, Any]:
    """:func:`canonical_fields` of a provider request."""
    return canonical_fields(
        provider, request.model, request.kind, request.messages, request.prompt, request.params
    )


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def canonical_json(fields: Mapping[str, Any]) -> str:
    """Sorted keys, no spaces, ASCII only: one spelling for one value."""
    return _ENCODER.encode(fields)


def key_of(namespace: str, fields: Mapping[str, Any]) -> str:
    """``<namespace>:v<KEY_VERSION>:<sha256 hex>`` of canonical ``fields``."""
    digest = hashlib.sha256(canonical_json(fields).encode()).hexdigest()
    return f"{namespace}:v{KEY_VERSION}:{digest}"


def cache_key(namespace: str, provider: str, request: ProviderRequest) -> str:
    """The key of ``request`` sent to ``provider``."""
    return key_of(namespace, request_fields(provider, request))
