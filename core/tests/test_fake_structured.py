"""The fake servers (and ScriptedProvider) answer structured-output requests with instances of
the schema asked for.

Each fake is driven over HTTP in its provider's documented wire format (``http.client``: the
core's tests need no SDK); the provider plugins' contract runs drive them through the real SDKs.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest

from questfoundry.contracts.records import Message, ProviderReply, ProviderRequest
from questfoundry.contracts.structured import RESPONSE_SCHEMA
from questfoundry.testing.fakes import FakeGemini, FakeOllama, FakeOpenAI, FakeServer
from questfoundry.testing.provider_contract import STRUCTURED_SCHEMA
from questfoundry.testing.scripted import ScriptedProvider

SCHEMA = STRUCTURED_SCHEMA


def post(server: FakeServer, path: str, body: Any, headers: dict[str, str]) -> tuple[int, bytes]:
    address = urlsplit(server.url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)
    try:
        payload = json.dumps(body).encode()
        connection.request("POST", path, payload, {"Content-Type": "application/json", **headers})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# ---------------------------------------------------------------------- one shape per provider


def openai_body(prompt: str, schema: Any, *, stream: bool = False) -> dict[str, Any]:
    body = {
        "model": "gpt-4o-mini",
        "temperature": 0.3,
        "messages": [{"role": "system", "content": "Plot."}, {"role": "user", "content": prompt}],
        "stream": stream,
    }
    if schema is not None:
        spec = {"name": "topology", "schema": schema, "strict": True}
        body["response_format"] = {"type": "json_schema", "json_schema": spec}
    return body


def openai_text(server: FakeServer, body: dict[str, Any]) -> tuple[int, str]:
    status, raw = post(server, "/v1/chat/completions", body, {"Authorization": "Bearer sk-test"})
    if status != 200:
        return status, raw.decode()
    if not body.get("stream"):
        return status, json.loads(raw)["choices"][0]["message"]["content"]
    events = [line[6:] for line in raw.decode().splitlines() if line.startswith("data: ")]
    chunks = [json.loads(e) for e in events if e != "[DONE]"]
    return status, "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)


def ollama_body(prompt: str, schema: Any, *, stream: bool = False) -> dict[str, Any]:
    return {
        "model": "llama3.2",
        "messages": [{"role": "user", "content": prompt}],
        "format": schema,
        "options": {"temperature": 0.3},
        "stream": stream,
    }


def ollama_text(server: FakeServer, body: dict[str, Any]) -> tuple[int, str]:
    status, raw = post(server, "/api/chat", body, {})
    if status != 200:
        return status, raw.decode()
    lines = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
    return status, "".join(line["message"]["content"] for line in lines)


def gemini_body(prompt: str, schema: Any, *, stream: bool = False) -> dict[str, Any]:
    config: dict[str, Any] = {"temperature": 0.3}
    if schema is not None:
        config.update(responseMimeType="application/json", responseJsonSchema=schema)
    return {
        "contents": [{"role": "user", "parts": [{"text": prompt}]}],
        "generationConfig": config,
        "stream": stream,  # not Gemini's: read by gemini_text to pick the endpoint
    }


def gemini_text(server: FakeServer, body: dict[str, Any]) -> tuple[int, str]:
    stream = body.pop("stream")
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    path = f"/v1beta/models/gemini-2.5-flash:{method}"
    status, raw = post(server, path, body, {"x-goog-api-key": "key"})
    if status != 200:
        return status, raw.decode()
    if not stream:
        return status, json.loads(raw)["candidates"][0]["content"]["parts"][0]["text"]
    events = [json.loads(line[6:]) for line in raw.decode().splitlines() if line[:6] == "data: "]
    return status, "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in events)


Body = Callable[..., dict[str, Any]]
Text = Callable[[FakeServer, dict[str, Any]], tuple[int, str]]
PROVIDERS: dict[str, tuple[type[FakeServer], Body, Text, str]] = {
    "openai": (FakeOpenAI, openai_body, openai_text, "gpt-4o-mini"),
    "ollama": (FakeOllama, ollama_body, ollama_text, "llama3.2"),
    "gemini": (FakeGemini, gemini_body, gemini_text, "gemini-2.5-flash"),
}


@pytest.fixture(params=list(PROVIDERS))
def fake(request: pytest.FixtureRequest) -> Iterator[tuple[FakeServer, Body, Text, str]]:
    server_class, body, text, model = PROVIDERS[request.param]
    with server_class() as server:
        yield server, body, text, model


# ---------------------------------------------------------------------- every fake


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_schema_request_gets_json_valid_against_the_schema(
    fake: tuple[FakeServer, Body, Text, str], stream: bool
) -> None:
    server, body, text, _ = fake
    status, reply = text(server, body("Draft four sections.", SCHEMA, stream=stream))
    assert status == 200, reply
    jsonschema.validate(json.loads(reply), SCHEMA)


def test_the_same_request_gets_the_same_instance_and_other_prompts_others(
    fake: tuple[FakeServer, Body, Text, str],
) -> None:
    server, body, text, _ = fake
    first = text(server, body("Section one.", SCHEMA))[1]
    assert text(server, body("Section one.", SCHEMA))[1] == first
    assert text(server, body("Section one.", SCHEMA, stream=True))[1] == first
    others = {text(server, body(f"Section {n}.", SCHEMA))[1] for n in range(2, 6)}
    assert first not in others and len(others) == 4


def test_the_recorded_request_says_model_temperature_and_schema(
    fake: tuple[FakeServer, Body, Text, str],
) -> None:
    server, body, text, model = fake
    text(server, body("Anything.", SCHEMA))
    text(server, body("Plain.", None))
    asked, plain = server.requests
    assert (asked.model, asked.temperature, asked.response_schema) == (model, 0.3, SCHEMA)
    assert (plain.model, plain.temperature, plain.response_schema) == (model, 0.3, None)


def test_a_request_without_a_schema_still_gets_prose(
    fake: tuple[FakeServer, Body, Text, str],
) -> None:
    server, body, text, _ = fake
    status, reply = text(server, body("Tell a tale.", None))
    assert status == 200 and len(reply.split()) >= 100 and "tale" not in reply


def test_a_schema_no_instance_satisfies_is_the_providers_400(
    fake: tuple[FakeServer, Body, Text, str],
) -> None:
    server, body, text, _ = fake
    impossible = {
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 3, "maximum": 1}},
        "required": ["n"],
        "additionalProperties": False,
    }
    status, reply = text(server, body("x", impossible))
    assert status == 400 and "no integer lies in the range" in reply
    assert server.served == 0


# ---------------------------------------------------------------------- each provider's rules


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({"type": "array", "items": {"type": "string"}}, "must be a JSON Schema of 'type"),
        (
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            "'additionalProperties' is required to be supplied and to be false",
        ),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
                "required": ["a"],
                "additionalProperties": False,
            },
            "Missing 'b'",
        ),
        (
            {
                "type": "object",
                "properties": {"inner": {"type": "array", "items": {"type": "object"}}},
                "required": ["inner"],
                "additionalProperties": False,
            },
            "context=('properties', 'inner', 'items')",
        ),
    ],
)
def test_openai_strict_mode_refuses_schemas_breaking_its_rules(
    schema: dict[str, Any], problem: str
) -> None:
    with FakeOpenAI() as server:
        status, reply = openai_text(server, openai_body("x", schema))
    assert status == 400
    assert problem in json.loads(reply)["error"]["message"]


def test_openai_without_strict_accepts_any_schema_and_json_object_mode() -> None:
    loose = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    body = openai_body("x", loose)
    body["response_format"]["json_schema"]["strict"] = False
    with FakeOpenAI() as server:
        status, reply = openai_text(server, body)
        assert status == 200 and isinstance(json.loads(reply)["a"], int)
        body["response_format"] = {"type": "json_object"}
        status, reply = openai_text(server, body)
        assert status == 200 and isinstance(json.loads(reply), dict)
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "no spaces!"}}
        status, reply = openai_text(server, body)
        assert status == 400 and "does not match pattern" in reply


def test_ollama_format_json_gets_a_json_object_and_nonsense_formats_a_400() -> None:
    with FakeOllama() as server:
        status, reply = ollama_text(server, ollama_body("x", "json"))
        assert status == 200 and isinstance(json.loads(reply), dict)
        status, reply = ollama_text(server, ollama_body("x", 42))
        assert status == 400 and "invalid format" in reply


def test_gemini_openapi_style_response_schema_is_followed() -> None:
    openapi_schema = {
        "type": "OBJECT",
        "properties": {
            "names": {"type": "ARRAY", "items": {"type": "STRING"}, "minItems": "2"},
            "rank": {"type": "INTEGER", "nullable": True, "minimum": 1, "maximum": 3},
        },
        "required": ["names", "rank"],
    }
    body = gemini_body("x", None)
    body["generationConfig"] = {
        "responseMimeType": "application/json",
        "responseSchema": openapi_schema,
    }
    with FakeGemini() as server:
        status, reply = gemini_text(server, body)
        assert server.requests[0].response_schema == openapi_schema
    assert status == 200
    instance = json.loads(reply)
    assert len(instance["names"]) >= 2 and all(isinstance(n, str) for n in instance["names"])
    assert instance["rank"] is None or 1 <= instance["rank"] <= 3


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"responseJsonSchema": SCHEMA}, "needs response_mime_type 'application/json'"),
        (
            {"responseMimeType": "application/json", "responseJsonSchema": SCHEMA,
             "responseSchema": {"type": "OBJECT"}},
            "cannot both be set",
        ),
    ],
)  # fmt: skip
def test_gemini_refuses_schema_configs_google_refuses(config: dict[str, Any], problem: str) -> None:
    body = gemini_body("x", None)
    body["generationConfig"] = config
    with FakeGemini() as server:
        status, reply = gemini_text(server, body)
    assert status == 400
    error = json.loads(reply)["error"]
    assert error["status"] == "INVALID_ARGUMENT" and problem in error["message"]


@pytest.mark.parametrize(
    "body",
    [["not", "an", "object"], {"model": 7, "temperature": "hot", "options": [], "format": 1}],
    ids=["list", "wrong types"],
)
def test_a_malformed_request_is_recorded_with_nothing_asked(
    fake: tuple[FakeServer, Body, Text, str], body: Any
) -> None:
    server = fake[0]
    path = {"FakeOpenAI": "/v1/chat/completions", "FakeOllama": "/api/chat"}.get(
        type(server).__name__, "/v1beta/models/m:generateContent"
    )
    status, _ = post(server, path, body, {"Authorization": "Bearer k", "x-goog-api-key": "k"})
    assert status == 400
    (recorded,) = server.requests
    assert (recorded.temperature, recorded.response_schema) == (None, None)
    assert recorded.model in (None, "m")  # Gemini names the model in the path


# ---------------------------------------------------------------------- ScriptedProvider


def scripted_request(prompt: str) -> ProviderRequest:
    asked = {"name": "topology", "schema": SCHEMA}
    return ProviderRequest("m", (Message("user", prompt),), params={RESPONSE_SCHEMA: asked})


def test_scripted_provider_answers_a_schema_request_with_an_instance() -> None:
    provider = ScriptedProvider()
    first = provider.generate(scripted_request("one")).text
    jsonschema.validate(json.loads(first or ""), SCHEMA)
    assert provider.generate(scripted_request("one")).text == first
    assert "".join(chunk.text for chunk in provider.stream(scripted_request("one"))) == first
    assert provider.generate(scripted_request("two")).text != first
    assert provider.generate(ProviderRequest("m", prompt="plain")).text == "echo: plain"


def test_a_scripted_reply_wins_over_the_instance() -> None:
    provider = ScriptedProvider([ProviderReply("m", text="not json at all")])
    assert provider.generate(scripted_request("one")).text == "not json at all"
    jsonschema.validate(json.loads(provider.generate(scripted_request("one")).text or ""), SCHEMA)
