"""Structured output: a JSON Schema sent with the request, the reply parsed and validated.

The schema travels as ``params["response_schema"] = {"name": ..., "schema": ...}``
(:data:`RESPONSE_SCHEMA`); each provider maps it onto its own API (:func:`response_schema` reads it
there). The reply's text must be JSON valid against the schema, which :func:`parse_reply` checks
with jsonschema.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from typing import Any

from questfoundry.contracts.bounded import Bounds, TooBig, Unreadable, load_json

#: the generation parameter asking for structured output: ``{"name": str, "schema": JSON Schema}``.
#: A provider maps it onto its API (OpenAI ``response_format`` json_schema, Ollama ``format``,
#: Gemini ``response_schema``) and replies with JSON text of an instance of that schema. Being a
#: parameter, it is part of the cache key.
RESPONSE_SCHEMA = "response_schema"
#: what a structured reply may be: 1 MiB of text (no model writes more in one reply: 128k tokens
#: are about 512 KB), 64 levels deep
REPLY_BOUNDS = Bounds(1024 * 1024, 64)
#: the longest :class:`ShapeError` message: it is quoted in a retry's prompt and in the step's error
MAX_MESSAGE = 300
#: how many (schema, reply) pairs found valid are remembered, so a reply read again (a run
#: answered by the cache) is not validated again
REMEMBERED_VALID = 4096


def response_schema(params: Mapping[str, Any], provider: str) -> tuple[str, dict[str, Any]] | None:
    """The ``(name, JSON Schema)`` of the structured output ``params`` ask for, or None.

    A malformed :data:`RESPONSE_SCHEMA` parameter raises
    :class:`~questfoundry.contracts.errors.NonRetriableProviderError` for ``provider``: nothing is
    sent.
    """
    asked = params.get(RESPONSE_SCHEMA)
    if asked is None:
        return None
    if not (
        isinstance(asked, Mapping)
        and isinstance(asked.get("name"), str)
        and isinstance(asked.get("schema"), Mapping)
    ):
        from questfoundry.contracts.errors import NonRetriableProviderError

        raise NonRetriableProviderError(
            f'{RESPONSE_SCHEMA} must be {{"name": <identifier>, "schema": <JSON Schema object>}}',
            provider=provider,
        )
    return asked["name"], dict(asked["schema"])


class ShapeError(ValueError):
    """A reply that is not JSON, or not valid against its schema; the message says where."""


def schema_params(name: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """The generation parameters asking for an instance of ``schema``."""
    return {RESPONSE_SCHEMA: {"name": name, "schema": dict(schema)}}


def parse_reply(text: str | None, schema: Mapping[str, Any]) -> Any:
    """The instance in ``text``, or :class:`ShapeError` saying why it is not one, in one line of
    at most :data:`MAX_MESSAGE` characters: a reply is read within :data:`REPLY_BOUNDS`, so one
    nested 200,000 levels deep, or far larger than any answer, is refused before it is built."""
    import jsonschema

    if not text or not text.strip():
        raise ShapeError("the reply is empty, not JSON")
    try:
        value = load_json(_unfenced(text), REPLY_BOUNDS)
    except TooBig as exc:
        raise ShapeError(f"the reply is refused unread: {exc}") from None
    except Unreadable as exc:
        raise ShapeError(_short(f"the reply is not JSON ({exc})")) from None
    pair = _pair(text, schema)
    if pair in _valid:
        return value
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(value)
    )
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "the top level"
        raise ShapeError(
            _short(f"the reply does not match the schema at {where}: {_problem(error)}")
        )
    with _remembering:
        _valid[pair] = None
        if len(_valid) > REMEMBERED_VALID:
            del _valid[next(iter(_valid))]
    return value


#: digests of (schema, reply text) pairs found valid, oldest first
_valid: dict[bytes, None] = {}
_remembering = threading.Lock()


def _pair(text: str, schema: Mapping[str, Any]) -> bytes:
    digest = hashlib.sha256(json.dumps(schema, sort_keys=True, default=str).encode())
    digest.update(b"\0")
    digest.update(text.encode())
    return digest.digest()


def _problem(error: Any) -> str:
    """What is wrong; jsonschema's own message unless it quotes a large instance whole."""
    message: str = error.message
    if len(message) <= MAX_MESSAGE // 2:
        return message
    instance = error.instance
    if isinstance(instance, list):
        what = f"a list of {len(instance)} items"
    elif isinstance(instance, dict):
        what = f"an object of {len(instance)} keys"
    elif isinstance(instance, str):
        what = f"a string of {len(instance)} characters"
    else:
        what = f"a {type(instance).__name__}"
    return f"{what} breaks {error.validator} {json.dumps(error.validator_value)[:80]}"


def _short(message: str) -> str:
    """``message`` on one line of at most :data:`MAX_MESSAGE` characters."""
    line = " ".join(message.split())
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 1] + "…"


def _unfenced(text: str) -> str:
    """``text`` without a Markdown code fence around it, as some models add one."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```"):
        body = stripped[3:-3]
        return body.split("\n", 1)[1] if "\n" in body else body
    return stripped


#: a string property; no length bounds, which strict providers refuse (checks and repairs judge
#: lengths instead)
TEXT: dict[str, Any] = {"type": "string"}


def object_schema(**properties: Mapping[str, Any]) -> dict[str, Any]:
    """An object with every property required and no others: the subset every provider's strict
    mode accepts (no optional property, no length or numeric bound; ``minItems``/``maxItems``
    and ``enum`` are fine)."""
    return {
        "type": "object",
        "properties": dict(properties),
        "required": list(properties),
        "additionalProperties": False,
    }
