"""A fake Ollama server on 127.0.0.1, speaking the wire format the ``ollama`` client uses::

    POST /api/chat     a chat reply: one JSON object, or NDJSON lines when streaming
    GET  /api/tags     the models the server has
    GET  /             "Ollama is running" (what a health probe sees)

As in Ollama's API, ``stream`` defaults to true: a request that leaves it out gets NDJSON lines,
each ``{"message": {"role": "assistant", "content": piece}, "done": false}``, then a last line with
``"done": true``, ``done_reason`` and the statistics (``prompt_eval_count``, ``eval_count``,
``total_duration``, … in nanoseconds). Replies are deterministic placeholder prose: the same
messages always get the same text. ``options.num_predict`` cuts the reply (``done_reason:
"length"``) and ``options.stop`` ends it early, as a model would. A ``format`` (a JSON Schema, or
``"json"``) asks for structured output: the reply is JSON text of an arbitrary valid instance of the
schema, chosen by the request. Errors use Ollama's shape, ``{"error": "message"}``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

from questfoundry.testing.fakes.base import (
    FakeServer,
    Handler,
    RecordedRequest,
    Response,
    estimate_tokens,
    field_at,
    limit_reply,
    ndjson_line,
    split_text,
)
from questfoundry.testing.fakes.placeholder import reply_text
from questfoundry.testing.schema_instance import SchemaInstanceError, instance_text

#: tokens a chat template adds around each message (role markers, separators)
TEMPLATE_TOKENS_PER_MESSAGE = 4
#: simulated speeds, so the durations in the statistics look like a real run's
PROMPT_NS_PER_TOKEN = 2_000_000
EVAL_NS_PER_TOKEN = 20_000_000
LOAD_NS = 5_000_000
NDJSON = "application/x-ndjson"


class FakeOllama(FakeServer):
    """Fake ``/api/chat`` of an Ollama server.

    ``models``: the models the server has; a request for another is Ollama's 404 "not found, try
    pulling it first". None (the default) serves any model name.
    ``stream_pieces``: how many NDJSON lines carry a streamed reply's text.
    Other keyword arguments (``latency``, ``slow_seconds``, …) are :class:`FakeServer`'s.
    """

    def __init__(
        self,
        *,
        models: Sequence[str] | None = None,
        stream_pieces: int = 4,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.models = None if models is None else [_full_name(m) for m in models]
        self.stream_pieces = stream_pieces

    def routes(self) -> dict[tuple[str, str], Handler]:
        return {
            ("POST", "/api/chat"): self._chat,
            ("GET", "/api/tags"): self._tags,
            ("GET", "/"): self._root,
        }

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"error": message}

    def describe(self, request: RecordedRequest) -> None:
        body = request.body
        temperature = field_at(body, "options", "temperature")
        request.note(field_at(body, "model"), temperature, field_at(body, "format"))

    # ------------------------------------------------------------------ routes

    def _root(self, request: RecordedRequest) -> Response:
        return Response(body=b"Ollama is running", content_type="text/plain; charset=utf-8")

    def _tags(self, request: RecordedRequest) -> Response:
        return Response(json={"models": [_tag(name) for name in self.models or ()]})

    def _chat(self, request: RecordedRequest) -> Response:
        body = request.body
        if not isinstance(body, dict):
            return self.error_response(400, "invalid request: the body is not a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return self.error_response(400, "model is required")
        if self.models is not None and _full_name(model) not in self.models:
            return self.error_response(404, f'model "{model}" not found, try pulling it first')
        messages = body.get("messages") or []
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            return self.error_response(400, "invalid request: messages must be a list of objects")
        options = body.get("options") or {}
        if not isinstance(options, dict):
            return self.error_response(400, "invalid request: options must be an object")
        schema = _requested_schema(body.get("format"))
        if isinstance(schema, str):
            return self.error_response(400, schema)
        try:
            answer = _answer(model, messages, options, schema)
        except SchemaInstanceError as error:
            return self.error_response(400, f"invalid JSON schema in format: {error}")
        if body.get("stream", True):
            return Response(stream=answer.lines(self.stream_pieces), content_type=NDJSON)
        return Response(json=answer.whole())


class _Answer:
    """One generated reply, rendered as a single object or as NDJSON lines."""

    def __init__(self, model: str, text: str, done_reason: str, prompt_tokens: int) -> None:
        self.model = model
        self.text = text
        self.done_reason = done_reason
        self.prompt_tokens = prompt_tokens
        self.eval_tokens = estimate_tokens(text) if text else 0

    def whole(self) -> dict[str, Any]:
        return {**self._message(self.text), "done_reason": self.done_reason, **self._stats()}

    def lines(self, pieces: int) -> Iterator[bytes]:
        for piece in split_text(self.text, pieces):
            yield ndjson_line({**self._message(piece), "done": False})
        yield ndjson_line(self.whole() | self._message(""))

    def _message(self, content: str) -> dict[str, Any]:
        return {
            "model": self.model,
            "created_at": _now(),
            "message": {"role": "assistant", "content": content},
            "done": True,
        }

    def _stats(self) -> dict[str, Any]:
        prompt_ns = self.prompt_tokens * PROMPT_NS_PER_TOKEN
        eval_ns = self.eval_tokens * EVAL_NS_PER_TOKEN
        return {
            "total_duration": LOAD_NS + prompt_ns + eval_ns,
            "load_duration": LOAD_NS,
            "prompt_eval_count": self.prompt_tokens,
            "prompt_eval_duration": prompt_ns,
            "eval_count": self.eval_tokens,
            "eval_duration": eval_ns,
        }


def _requested_schema(fmt: Any) -> dict[str, Any] | str | None:
    """The JSON Schema ``format`` asks for (None for free text), or Ollama's complaint (a str)."""
    if fmt in (None, ""):
        return None
    if fmt == "json":
        return {"type": "object"}
    if isinstance(fmt, dict):
        return fmt
    return f'invalid format: {fmt!r}; expected "json" or a JSON schema'


def _answer(
    model: str,
    messages: list[dict[str, Any]],
    options: dict[str, Any],
    schema: dict[str, Any] | None,
) -> _Answer:
    contents = [str(m.get("content") or "") for m in messages]
    turns = [c for m, c in zip(messages, contents, strict=True) if m.get("role") != "system"]
    if schema is not None:
        reply = instance_text(schema, model, contents)
    else:
        system = [c for m, c in zip(messages, contents, strict=True) if m.get("role") == "system"]
        reply = reply_text("\n".join(turns), model, "\n".join(system))
    text, done_reason = _shape(reply, options)
    prompt_tokens = sum(estimate_tokens(c) + TEMPLATE_TOKENS_PER_MESSAGE for c in contents)
    return _Answer(model, text, done_reason, max(1, prompt_tokens))


def _shape(text: str, options: dict[str, Any]) -> tuple[str, str]:
    """Apply ``stop`` and ``num_predict`` the way the model would; give the ``done_reason``."""
    text, cut = limit_reply(text, options.get("stop"), options.get("num_predict"))
    return text, "length" if cut else "stop"


def _full_name(model: str) -> str:
    """Ollama's canonical model name: a name without a tag means ``:latest``."""
    return model if ":" in model else f"{model}:latest"


def _tag(name: str) -> dict[str, Any]:
    family = name.split(":", 1)[0]
    return {
        "name": name,
        "model": name,
        "modified_at": "2025-01-01T00:00:00Z",
        "size": 2_019_393_189,
        "digest": hashlib.sha256(name.encode()).hexdigest(),
        "details": {"format": "gguf", "family": family, "parameter_size": "3.2B"},
    }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
