"""A fake OpenAI API: chat completions (plain and streamed) and image generation.

It follows the documented wire format the official SDK parses (``ChatCompletion``,
``ChatCompletionChunk``, ``ImagesResponse``, the ``{"error": {...}}`` envelope), so the real
``openai`` client talks to it unchanged: point ``base_url`` at :attr:`FakeOpenAI.base_url`.

Replies are deterministic — placeholder prose answering the last user message, as long as it asks
(:mod:`~questfoundry.testing.fakes.placeholder`), or for a ``response_format`` of type
``json_schema`` an arbitrary valid instance of the schema as JSON text (with ``strict``, the schema
must follow OpenAI's strict rules: every object ``additionalProperties: false`` and every property
required) — and usage is realistic: about four
characters a token, OpenAI's per-message overhead, ``max_tokens`` and ``stop`` honoured, and
prompt caching as OpenAI does it (a prompt of 1024 tokens or more seen before reports its
leading 128-token blocks as ``cached_tokens``). The demo serves it when no API key is set.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from questfoundry.testing.fakes.base import (
    FakeServer,
    Handler,
    RecordedRequest,
    Response,
    estimate_tokens,
    field_at,
    limit_reply,
    split_text,
    sse_event,
)
from questfoundry.testing.fakes.placeholder import reply_text, tiny_png
from questfoundry.testing.schema_instance import SchemaInstanceError, instance_text

#: tokens OpenAI adds for each message's framing, and once to prime the reply
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3
#: prompt caching: prompts of at least this many tokens are cached, in blocks of this many
CACHE_MIN_TOKENS = 1024
CACHE_BLOCK_TOKENS = 128

_ERROR_TYPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}

MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "dall-e-3", "gpt-image-1")
#: what OpenAI accepts as a ``json_schema`` response format's name
_SCHEMA_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class _Answer:
    text: str
    finish_reason: str
    usage: dict[str, Any]


class FakeOpenAI(FakeServer):
    """OpenAI's ``/v1/chat/completions``, ``/v1/images/generations`` and ``/v1/models``.

    ``api_key``, when set, is the only key accepted; any bearer token is accepted otherwise, and a
    request without one is refused with 401, as the real API does. ``reply_tokens``, when set,
    makes every prose reply about that many tokens long (before ``max_tokens`` cuts it),
    whatever length the prompt asks for.
    """

    def __init__(
        self, *, api_key: str | None = None, reply_tokens: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.api_key = api_key
        self.reply_tokens = reply_tokens
        self._seen_prompts: set[str] = set()
        self._seen_lock = threading.Lock()
        self._ids = 0

    @property
    def base_url(self) -> str:
        """What to give the SDK (and the ``openai`` provider's settings) as ``base_url``."""
        return f"{self.url}/v1"

    def reset(self) -> None:
        super().reset()
        with self._seen_lock:
            self._seen_prompts.clear()

    def routes(self) -> dict[tuple[str, str], Handler]:
        return {
            ("POST", r"/v1/chat/completions"): self._authorised(self.chat_completions),
            ("POST", r"/v1/images/generations"): self._authorised(self.images_generations),
            ("GET", r"/v1/models"): self._authorised(self.list_models),
        }

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        kind, code = _ERROR_TYPES.get(status, ("server_error", None))
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}

    def describe(self, request: RecordedRequest) -> None:
        body = request.body
        schema = field_at(body, "response_format", "json_schema", "schema")
        request.note(field_at(body, "model"), field_at(body, "temperature"), schema)

    def error_response(
        self, status: int, message: str, headers: dict[str, str] | None = None
    ) -> Response:
        """OpenAI's error, with the ``x-request-id`` it sends on every response."""
        response = super().error_response(status, message, headers)
        response.headers.setdefault("x-request-id", f"req_{self._next_id('error')}")
        return response

    # ------------------------------------------------------------------ routes

    def chat_completions(self, request: RecordedRequest) -> Response:
        body = request.body
        problem = _missing(body, "model", "messages")
        if problem:
            return self.error_response(400, problem)
        try:
            answer = self._answer(body, _requested_schema(body.get("response_format")))
        except _InvalidFormat as error:
            return self.error_response(400, str(error))
        ident = self._next_id("chatcmpl")
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            stream = self._chunks(ident, body["model"], answer, include_usage)
            return Response(stream=stream, content_type="text/event-stream; charset=utf-8")
        return Response(
            json={
                "id": ident,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "system_fingerprint": "fp_questfoundry",
                "service_tier": "default",
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": answer.text,
                            "refusal": None,
                            "annotations": [],
                        },
                        "logprobs": None,
                        "finish_reason": answer.finish_reason,
                    }
                ],
                "usage": answer.usage,
            },
            headers={"x-request-id": f"req_{ident}"},
        )

    def images_generations(self, request: RecordedRequest) -> Response:
        body = request.body
        problem = _missing(body, "prompt")
        if problem:
            return self.error_response(400, problem)
        model = str(body.get("model") or "dall-e-2")
        gpt_image = model.startswith("gpt-image")
        response_format = body.get("response_format")
        if gpt_image and response_format is not None:
            return self.error_response(400, "Unknown parameter: 'response_format'.")
        png = tiny_png(str(body["prompt"]))
        count = int(body.get("n") or 1)
        if response_format == "url":
            item: dict[str, Any] = {"url": f"{self.url}/images/{hashlib.sha256(png).hexdigest()}"}
        else:
            item = {"b64_json": base64.b64encode(png).decode()}
        if not gpt_image:
            item["revised_prompt"] = str(body["prompt"])
        reply: dict[str, Any] = {"created": int(time.time()), "data": [item] * count}
        if gpt_image:
            prompt_tokens = estimate_tokens(str(body["prompt"]))
            reply.update(
                size=body.get("size") or "1024x1024",
                quality=body.get("quality") or "medium",
                output_format="png",
                usage={
                    "input_tokens": prompt_tokens,
                    "input_tokens_details": {"text_tokens": prompt_tokens, "image_tokens": 0},
                    "output_tokens": 1056 * count,
                    "total_tokens": prompt_tokens + 1056 * count,
                },
            )
        return Response(json=reply)

    def list_models(self, request: RecordedRequest) -> Response:
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "system"} for m in MODELS]
        return Response(json={"object": "list", "data": data})

    # ------------------------------------------------------------------ pieces

    def _authorised(self, handler: Handler) -> Handler:
        def check(request: RecordedRequest) -> Response:
            auth = request.headers.get("authorization", "")
            if not auth.startswith("Bearer ") or not auth[7:].strip():
                return self.error_response(
                    401, "You didn't provide an API key. Provide it in the Authorization header."
                )
            if self.api_key is not None and auth[7:] != self.api_key:
                return self.error_response(401, "Incorrect API key provided.")
            return handler(request)

        return check

    def _next_id(self, prefix: str) -> str:
        with self._seen_lock:
            self._ids += 1
            return f"{prefix}-fake{self._ids:06d}"

    def _answer(self, body: dict[str, Any], schema: Any) -> _Answer:
        """The reply: placeholder prose, or JSON text of an instance of ``schema`` when one is
        asked for."""
        messages = [m for m in body["messages"] if isinstance(m, dict)]
        contents = [_content_text(m.get("content")) for m in messages]
        users = [c for m, c in zip(messages, contents, strict=True) if m.get("role") == "user"]
        if schema is not None:
            try:
                text = instance_text(schema, body["model"], contents)
            except SchemaInstanceError as error:
                raise _InvalidFormat(f"Invalid schema for response_format: {error}") from None
        else:
            system = [c for m, c in zip(messages, contents, strict=True) if m.get("role") != "user"]
            words = self.reply_tokens * 3 // 4 if self.reply_tokens else None
            prompt, instructions = users[-1] if users else "", "\n".join(system)
            text = reply_text(prompt, str(body["model"]), instructions, words=words)
        text, finish = _apply_limits(text, body)
        prompt_tokens = TOKENS_PER_REPLY + sum(
            TOKENS_PER_MESSAGE + estimate_tokens(c) for c in contents
        )
        cached = self._cached_tokens("\x00".join(contents), prompt_tokens)
        completion_tokens = estimate_tokens(text) if text else 0
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        return _Answer(text, finish, usage)

    def _cached_tokens(self, prompt: str, prompt_tokens: int) -> int:
        """OpenAI's prompt caching: a long prompt seen before is cached in 128-token blocks."""
        if prompt_tokens < CACHE_MIN_TOKENS:
            return 0
        digest = hashlib.sha256(prompt.encode()).hexdigest()
        with self._seen_lock:
            seen = digest in self._seen_prompts
            self._seen_prompts.add(digest)
        return (prompt_tokens // CACHE_BLOCK_TOKENS) * CACHE_BLOCK_TOKENS if seen else 0

    def _chunks(
        self, ident: str, model: str, answer: _Answer, include_usage: bool
    ) -> Iterator[bytes]:
        created = int(time.time())

        def chunk(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
            data: dict[str, Any] = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_questfoundry",
                "choices": choices,
            }
            if include_usage:
                data["usage"] = usage
            return sse_event(data)

        def choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
            return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

        yield chunk(choice({"role": "assistant", "content": "", "refusal": None}))
        for piece in split_text(answer.text):
            yield chunk(choice({"content": piece}))
        yield chunk(choice({}, answer.finish_reason))
        if include_usage:
            yield chunk([], answer.usage)
        yield sse_event("[DONE]")


class _InvalidFormat(ValueError):
    """A ``response_format`` OpenAI would refuse with 400; the message is OpenAI's wording."""


def _requested_schema(response_format: Any) -> Any:
    """The JSON Schema ``response_format`` asks the reply to follow, None for plain text."""
    if response_format is None:
        return None
    if not isinstance(response_format, dict):
        raise _InvalidFormat("Invalid type for 'response_format': expected an object.")
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind != "json_schema":
        raise _InvalidFormat(
            f"Invalid value: {kind!r}. Supported values are: 'json_object', 'json_schema', "
            "and 'text'."
        )
    spec = response_format.get("json_schema")
    if not isinstance(spec, dict) or "name" not in spec:
        raise _InvalidFormat("Missing required parameter: 'response_format.json_schema.name'.")
    name = spec["name"]
    if not isinstance(name, str) or not _SCHEMA_NAME.fullmatch(name):
        raise _InvalidFormat(
            f"Invalid 'response_format.json_schema.name': string does not match pattern. "
            f"Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$' (got {name!r})."
        )
    schema = spec.get("schema", {})
    if not isinstance(schema, dict):
        raise _InvalidFormat("Invalid type for 'response_format.json_schema.schema'.")
    if spec.get("strict"):
        problem = _strict_problem(schema, ())
        if problem:
            raise _InvalidFormat(f"Invalid schema for response_format {name!r}: {problem}")
    return schema


def _strict_problem(schema: Any, context: tuple[str, ...]) -> str | None:
    """What breaks OpenAI's strict-mode rules in ``schema`` (the first thing found), or None.

    Strict mode wants the root to be an object, and every object to forbid additional properties
    and to list every property as required (an optional one is a union with ``null``).
    """
    if not isinstance(schema, dict):
        return None
    where = f"In context={context!r}, "
    if not context and schema.get("type") != "object":
        kind = schema.get("type")
        return f"{where}schema must be a JSON Schema of 'type: \"object\"', got {kind!r}."
    is_object = schema.get("type") == "object" or (
        isinstance(schema.get("type"), list) and "object" in schema["type"]
    )
    if is_object or "properties" in schema:
        if schema.get("additionalProperties") is not False:
            return f"{where}'additionalProperties' is required to be supplied and to be false."
        properties = schema.get("properties") or {}
        missing = [name for name in properties if name not in (schema.get("required") or ())]
        if missing:
            return (
                f"{where}'required' is required to be supplied and to be an array including "
                f"every key in properties. Missing {missing[0]!r}."
            )
    for key in ("properties", "$defs", "definitions"):
        for name, sub in (schema.get(key) or {}).items():
            problem = _strict_problem(sub, (*context, key, name))
            if problem:
                return problem
    for key in ("anyOf", "prefixItems"):
        for index, sub in enumerate(schema.get(key) or ()):
            problem = _strict_problem(sub, (*context, key, str(index)))
            if problem:
                return problem
    return _strict_problem(schema.get("items"), (*context, "items"))


def _missing(body: Any, *names: str) -> str | None:
    if not isinstance(body, dict):
        return "We could not parse the JSON body of your request."
    for name in names:
        if name not in body:
            return f"Missing required parameter: '{name}'."
    return None


def _content_text(content: Any) -> str:
    """A message's text, whether ``content`` is a string or a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _apply_limits(text: str, body: dict[str, Any]) -> tuple[str, str]:
    """Cut ``text`` at a stop sequence or at ``max_tokens``, as the real API does."""
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    text, cut = limit_reply(text, body.get("stop"), limit)
    return text, "length" if cut else "stop"
