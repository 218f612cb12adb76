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
from collections.abc import Mapping
from typing import Any

from questfoundry.interfaces import ProviderRequest

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


def _normalise(value: Any) -> Any:
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, Mapping):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    return value


def canonical_fields(provider: str, request: ProviderRequest) -> dict[str, Any]:
    """The fields that make a request's key, normalised."""
    fields: dict[str, Any] = {"provider": provider, "model": request.model, "kind": request.kind}
    if request.messages:
        fields["messages"] = [[m.role, m.content] for m in request.messages]
    if request.prompt is not None:
        fields["prompt"] = request.prompt
    params = {k: v for k, v in request.params.items() if k not in NON_SEMANTIC and v is not None}
    if params:
        fields["params"] = _normalise(params)
    return fields


def canonical_json(fields: Mapping[str, Any]) -> str:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def cache_key(namespace: str, provider: str, request: ProviderRequest) -> str:
    """``<namespace>:v<KEY_VERSION>:<sha256 hex>`` for ``request`` sent to ``provider``."""
    digest = hashlib.sha256(
        canonical_json(canonical_fields(provider, request)).encode()
    ).hexdigest()
    return f"{namespace}:v{KEY_VERSION}:{digest}"
