"""A fake Gemini API (``generativelanguage.googleapis.com``) on 127.0.0.1.

It speaks the REST wire format the ``google-genai`` SDK uses::

    POST /v1beta/models/{model}:generateContent
    POST /v1beta/models/{model}:streamGenerateContent?alt=sse   (server-sent events)

(``v1`` and ``v1alpha`` paths are answered the same way.) Replies are deterministic placeholder
prose: the same ``contents`` always get the same text. ``usageMetadata`` is realistic:
``promptTokenCount`` (system instruction included), ``candidatesTokenCount``, ``totalTokenCount``
and, like Gemini's implicit caching, ``cachedContentTokenCount`` when a prompt repeats a prefix of
at least ``cache_min_tokens`` tokens that an earlier request of the same model sent. Errors use
Google's shape ``{"error": {"code", "message", "status"}}``; a 429 also carries a ``RetryInfo``
detail.

Structured output: a ``generationConfig`` with ``responseMimeType: "application/json"`` and a
``responseJsonSchema`` (JSON Schema) or ``responseSchema`` (Gemini's OpenAPI-style ``Schema``) is
answered with JSON text of an arbitrary valid instance of the schema, chosen by the request.

Images, as Gemini's image models make them: a ``generationConfig`` whose ``responseModalities``
include ``"IMAGE"`` is answered with one ``inlineData`` part, a small PNG picture chosen by the
prompt (the same prompt, the same bytes), billed as :data:`IMAGE_TOKENS` output tokens of modality
``IMAGE``.

The server checks the API key the way Google does: no key is 403, a key other than ``api_key``
(when one is set) is 400 "API key not valid".
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import re
import threading
from collections.abc import Iterator
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
from questfoundry.testing.schema_instance import instance_text

#: Google's canonical status names for the HTTP codes the fake answers with
GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_MODEL_PATH = r"/(?P<version>v1|v1beta|v1alpha)/models/(?P<model>[^/:]+)"
_MODEL_IN_PATH = re.compile(r"/(?:v1|v1beta|v1alpha)/models/([^/:]+)")
#: ``Schema`` fields whose int64 values the JSON mapping may send as strings
_COUNTS = ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties")
_JSON = "application/json"
#: output tokens Gemini bills for one generated image (up to 1024x1024)
IMAGE_TOKENS = 1290


class FakeGemini(FakeServer):
    """Fake ``generateContent`` / ``streamGenerateContent`` endpoints of the Gemini API.

    ``api_key``: when set, the only key accepted (others get Google's 400 "API key not valid").
    ``cache_min_tokens``: the shortest repeated prompt prefix reported as cached input.
    ``stream_pieces``: how many SSE events a streamed reply is cut into.
    Other keyword arguments (``latency``, ``slow_seconds``, …) are :class:`FakeServer`'s.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        cache_min_tokens: int = 1024,
        stream_pieces: int = 4,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.api_key = api_key
        self.cache_min_tokens = cache_min_tokens
        self.stream_pieces = stream_pieces
        self._seen_prompts: dict[str, list[str]] = {}  # per model, sorted
        self._seen_lock = threading.Lock()

    def routes(self) -> dict[tuple[str, str], Handler]:
        return {
            ("POST", _MODEL_PATH + ":generateContent"): self._generate,
            ("POST", _MODEL_PATH + ":streamGenerateContent"): self._stream,
        }

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        error: dict[str, Any] = {
            "code": status,
            "message": message,
            "status": GOOGLE_STATUS.get(status, "UNKNOWN"),
        }
        if status == 429:
            error["details"] = [{"@type": _RETRY_INFO, "retryDelay": f"{self.retry_after:g}s"}]
        return {"error": error}

    def describe(self, request: RecordedRequest) -> None:
        found = _MODEL_IN_PATH.match(request.path)
        config = field_at(request.body, "generationConfig")
        schema = field_at(config, "responseJsonSchema") or field_at(config, "responseSchema")
        request.note(found.group(1) if found else None, field_at(config, "temperature"), schema)

    def reset(self) -> None:
        """Forget requests, counts, pending faults and the prompts remembered for caching."""
        super().reset()
        with self._seen_lock:
            self._seen_prompts.clear()

    # ------------------------------------------------------------------ routes

    def _generate(self, request: RecordedRequest) -> Response:
        answer = self._checked_answer(request)
        if isinstance(answer, Response):
            return answer
        return Response(json=answer.whole())

    def _stream(self, request: RecordedRequest) -> Response:
        answer = self._checked_answer(request)
        if isinstance(answer, Response):
            return answer
        events = answer.events(self.stream_pieces)
        if request.query.get("alt") != "sse":  # without alt=sse Google streams one JSON array
            return Response(json=events)
        return Response(stream=_sse(events), content_type="text/event-stream")

    def _check(self, request: RecordedRequest) -> Response | None:
        """Google's answer to a request it refuses before generating anything, or None."""
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            return self.error_response(
                403, "Method doesn't allow unregistered callers. Please use an API key."
            )
        if self.api_key is not None and key != self.api_key:
            return self.error_response(400, "API key not valid. Please pass a valid API key.")
        body = request.body
        if not isinstance(body, dict):
            return self.error_response(400, "Invalid JSON payload received.")
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            return self.error_response(
                400, "* GenerateContentRequest.contents: contents is not specified"
            )
        return None

    def _checked_answer(self, request: RecordedRequest) -> _Answer | Response:
        """The answer to ``request``, or Google's refusal of it."""
        rejected = self._check(request)
        if rejected is not None:
            return rejected
        config = request.body.get("generationConfig") or {}
        try:
            schema = _requested_schema(config)
            return self._answer(request, config, schema)
        except ValueError as error:  # an unsatisfiable schema, or a config Google refuses
            return self.error_response(400, str(error))

    def _answer(
        self, request: RecordedRequest, config: dict[str, Any], schema: dict[str, Any] | None
    ) -> _Answer:
        body: dict[str, Any] = request.body
        model = request.params["model"]
        system = _text_of(body.get("systemInstruction"))
        turns = [_text_of(content) for content in body["contents"]]
        image = None
        if _wants_image(config):
            reply, image = "", tiny_png("\n".join(turns))
        elif schema is not None:
            reply = instance_text(schema, model, system, turns)
        else:
            reply = reply_text("\n".join(turns), model, system)
        text, finish = _shape(reply, config)
        prompt = "\n".join([system, *turns]) if system else "\n".join(turns)
        return _Answer(
            model=model,
            text=text,
            image=image,
            finish_reason=finish,
            prompt_tokens=estimate_tokens(prompt),
            cached_tokens=self._cached_tokens(model, prompt),
            response_id=hashlib.sha256(request.raw).hexdigest()[:22],
        )

    def _cached_tokens(self, model: str, prompt: str) -> int:
        """Tokens of the longest prefix this prompt shares with an earlier one (implicit cache)."""
        with self._seen_lock:
            seen = self._seen_prompts.setdefault(model, [])
            at = bisect.bisect_left(seen, prompt)
            # the earlier prompt sharing the longest prefix sorts right beside this one
            longest = max(
                (_shared_prefix(prompt, old) for old in seen[max(at - 1, 0) : at + 1]), default=0
            )
            seen.insert(at, prompt)
        tokens = longest // 4
        return tokens if tokens >= self.cache_min_tokens else 0


class _Answer:
    """One generated reply, rendered whole or as stream events."""

    def __init__(
        self,
        *,
        model: str,
        text: str,
        image: bytes | None = None,
        finish_reason: str,
        prompt_tokens: int,
        cached_tokens: int,
        response_id: str,
    ) -> None:
        self.model = model
        self.text = text
        self.image = image
        self.finish_reason = finish_reason
        self.prompt_tokens = prompt_tokens
        self.cached_tokens = cached_tokens
        self.response_id = response_id

    def whole(self) -> dict[str, Any]:
        if self.image is not None:
            data = base64.b64encode(self.image).decode()
            part = {"inlineData": {"mimeType": "image/png", "data": data}}
            return self._payload(part, IMAGE_TOKENS, final=True, modality="IMAGE")
        return self._payload({"text": self.text}, estimate_tokens(self.text), final=True)

    def events(self, pieces: int) -> list[dict[str, Any]]:
        """Chunks whose texts concatenate to the reply; each carries the running usage.

        An image comes whole, in one event.
        """
        if self.image is not None:
            return [self.whole()]
        parts = split_text(self.text, pieces) or [""]
        events, sent = [], ""
        for index, part in enumerate(parts):
            sent += part
            final = index == len(parts) - 1
            events.append(self._payload({"text": part}, estimate_tokens(sent), final=final))
        return events

    def _payload(
        self, part: dict[str, Any], output_tokens: int, *, final: bool, modality: str = "TEXT"
    ) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": [part], "role": "model"}, "index": 0}
        if final:
            candidate["finishReason"] = self.finish_reason
        return {
            "candidates": [candidate],
            "usageMetadata": self._usage(output_tokens, modality),
            "modelVersion": self.model,
            "responseId": self.response_id,
        }

    def _usage(self, output_tokens: int, modality: str) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "promptTokenCount": self.prompt_tokens,
            "candidatesTokenCount": output_tokens,
            "totalTokenCount": self.prompt_tokens + output_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": self.prompt_tokens}],
            "candidatesTokensDetails": [{"modality": modality, "tokenCount": output_tokens}],
        }
        if self.cached_tokens:
            usage["cachedContentTokenCount"] = self.cached_tokens
            usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": self.cached_tokens}]
        return usage


def _wants_image(config: dict[str, Any]) -> bool:
    """Whether ``responseModalities`` ask for an image."""
    modalities = config.get("responseModalities") or ()
    return isinstance(modalities, list) and any(str(m).upper() == "IMAGE" for m in modalities)


class _InvalidConfig(ValueError):
    """A ``generationConfig`` Google refuses with 400 INVALID_ARGUMENT."""


def _requested_schema(config: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON Schema ``config`` asks the reply to follow; None for free text."""
    json_schema, schema = config.get("responseJsonSchema"), config.get("responseSchema")
    mime = config.get("responseMimeType")
    if json_schema is not None and schema is not None:
        raise _InvalidConfig(
            "* GenerateContentRequest.generation_config: response_schema and "
            "response_json_schema cannot both be set"
        )
    if json_schema is None and schema is None:
        return {"type": "object"} if mime == _JSON else None
    if mime != _JSON:
        raise _InvalidConfig(
            "* GenerateContentRequest.generation_config.response_mime_type: a response schema "
            f"needs response_mime_type {_JSON!r}, got {mime!r}"
        )
    if json_schema is not None:
        if not isinstance(json_schema, dict):
            raise _InvalidConfig("* generation_config.response_json_schema: must be an object")
        return json_schema
    return _from_gemini_schema(schema)


def _from_gemini_schema(schema: Any) -> dict[str, Any]:
    """Gemini's OpenAPI-style ``Schema`` (``type: "OBJECT"``, ``nullable``, …) as JSON Schema."""
    if not isinstance(schema, dict):
        raise _InvalidConfig("* generation_config.response_schema: must be an object")
    result: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            result["type"] = value.lower()
        elif key == "properties" and isinstance(value, dict):
            result[key] = {name: _from_gemini_schema(sub) for name, sub in value.items()}
        elif key == "items":
            result[key] = _from_gemini_schema(value)
        elif key == "anyOf" and isinstance(value, list):
            result[key] = [_from_gemini_schema(sub) for sub in value]
        elif key in _COUNTS:
            result[key] = int(value)
        elif key in ("required", "enum", "format", "minimum", "maximum"):
            result[key] = value
    if schema.get("nullable") and "type" in result:
        result["type"] = [result["type"], "null"]
    return result


def _text_of(content: Any) -> str:
    """The text parts of one ``Content`` object joined, ignoring anything that is not text."""
    if not isinstance(content, dict):
        return ""
    parts = content.get("parts")
    if not isinstance(parts, list):
        return ""
    texts = (part.get("text") for part in parts if isinstance(part, dict))
    return "".join(text for text in texts if isinstance(text, str))


def _shared_prefix(first: str, second: str) -> int:
    """How many leading characters two prompts have in common (found by halving)."""
    low, high = 0, min(len(first), len(second))
    while low < high:  # the first ``low`` characters are shared; more than ``high`` are not
        middle = (low + high + 1) // 2
        if first[low:middle] == second[low:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def _shape(text: str, config: dict[str, Any]) -> tuple[str, str]:
    """Apply ``stopSequences`` and ``maxOutputTokens`` the way the model would; give the reason."""
    text, cut = limit_reply(text, config.get("stopSequences"), config.get("maxOutputTokens"))
    return text, "MAX_TOKENS" if cut else "STOP"


def _sse(events: list[dict[str, Any]]) -> Iterator[bytes]:
    for event in events:
        yield sse_event(json.dumps(event, separators=(",", ":")))
