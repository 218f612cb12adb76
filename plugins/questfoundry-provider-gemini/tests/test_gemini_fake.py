"""The fake Gemini server speaks the wire format Google documents, checked with plain HTTP.

The provider tests drive it through the SDK; these pin down the wire details the SDK hides:
the SSE framing, the array answer without ``alt=sse``, Google's error JSON and the key checks.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from questfoundry.testing.fakes import Fault, reply_text
from questfoundry.testing.fakes.gemini import FakeGemini

KEY = "fake-key"
PATH = "/v1beta/models/gemini-2.5-flash"


@pytest.fixture
def fake() -> Iterator[FakeGemini]:
    with FakeGemini(api_key=KEY) as server:
        yield server


def post(
    server: FakeGemini, path: str, body: Any, key: str | None = KEY
) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["x-goog-api-key"] = key
    request = urllib.request.Request(
        server.url + path, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def user(text: str) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}]}


def sse_payloads(raw: bytes) -> list[dict[str, Any]]:
    events = [event for event in raw.decode().split("\n\n") if event.strip()]
    assert all(event.startswith("data: ") for event in events)
    return [json.loads(event[len("data: ") :]) for event in events]


def test_generate_content_answers_with_a_candidate_and_usage(fake: FakeGemini) -> None:
    status, _, raw = post(fake, PATH + ":generateContent", user("Name a lighthouse."))
    body = json.loads(raw)
    assert status == 200
    candidate = body["candidates"][0]
    assert candidate["content"]["role"] == "model"
    said = candidate["content"]["parts"][0]["text"]
    assert said == reply_text("Name a lighthouse.", "gemini-2.5-flash")  # placeholder prose
    assert candidate["finishReason"] == "STOP"
    usage = body["usageMetadata"]
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]
    assert "cachedContentTokenCount" not in usage
    assert fake.served == 1


def test_the_stream_is_sse_whose_texts_join_into_the_whole_reply(fake: FakeGemini) -> None:
    _, _, whole = post(fake, PATH + ":generateContent", user("Tell a tale."))
    status, headers, raw = post(fake, PATH + ":streamGenerateContent?alt=sse", user("Tell a tale."))
    events = sse_payloads(raw)
    expected = json.loads(whole)
    assert status == 200 and headers["Content-Type"] == "text/event-stream"
    assert len(events) > 1
    text = "".join(event["candidates"][0]["content"]["parts"][0]["text"] for event in events)
    assert text == expected["candidates"][0]["content"]["parts"][0]["text"]
    running = [event["usageMetadata"]["candidatesTokenCount"] for event in events]
    assert running == sorted(running)
    assert events[-1]["usageMetadata"] == expected["usageMetadata"]
    assert [("finishReason" in event["candidates"][0]) for event in events][-2:] == [False, True]


def test_without_alt_sse_the_stream_is_one_json_array(fake: FakeGemini) -> None:
    status, _, raw = post(fake, PATH + ":streamGenerateContent", user("Tell a tale."))
    events = json.loads(raw)
    assert status == 200 and isinstance(events, list) and len(events) > 1


def test_the_v1_path_is_answered_too(fake: FakeGemini) -> None:
    status, _, _ = post(fake, "/v1/models/gemini-2.5-flash:generateContent", user("Hi"))
    assert status == 200


def test_a_request_without_a_key_is_refused_like_google_does(fake: FakeGemini) -> None:
    status, _, raw = post(fake, PATH + ":generateContent", user("Hi"), key=None)
    assert status == 403
    assert json.loads(raw)["error"]["status"] == "PERMISSION_DENIED"
    assert fake.served == 0


def test_a_wrong_key_is_a_400_invalid_argument(fake: FakeGemini) -> None:
    status, _, raw = post(fake, PATH + ":generateContent", user("Hi"), key="other")
    error = json.loads(raw)["error"]
    assert (status, error["code"], error["status"]) == (400, 400, "INVALID_ARGUMENT")
    assert error["message"] == "API key not valid. Please pass a valid API key."


def test_a_request_without_contents_is_invalid(fake: FakeGemini) -> None:
    status, _, raw = post(fake, PATH + ":generateContent", {"contents": []})
    assert status == 400
    assert "contents is not specified" in json.loads(raw)["error"]["message"]


def test_an_injected_rate_limit_carries_retry_after_and_retry_info(fake: FakeGemini) -> None:
    fake.retry_after = 2.5
    fake.fail_next(Fault.RATE_LIMIT)
    status, headers, raw = post(fake, PATH + ":generateContent", user("Hi"))
    error = json.loads(raw)["error"]
    assert status == 429 and headers["Retry-After"] == "2.5"
    assert error["status"] == "RESOURCE_EXHAUSTED"
    assert error["details"] == [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2.5s"}
    ]


def test_stop_sequences_cut_the_reply(fake: FakeGemini) -> None:
    _, _, raw = post(fake, PATH + ":generateContent", user("Once upon a time"))
    whole = json.loads(raw)["candidates"][0]["content"]["parts"][0]["text"]
    word = whole.split()[3]  # a word the reply holds, wherever it comes first
    body = {**user("Once upon a time"), "generationConfig": {"stopSequences": [word]}}
    _, _, raw = post(fake, PATH + ":generateContent", body)
    candidate = json.loads(raw)["candidates"][0]
    assert candidate["content"]["parts"][0]["text"] == whole[: whole.index(word)]
    assert candidate["finishReason"] == "STOP"


def test_a_repeated_long_prefix_is_reported_as_cached_until_reset() -> None:
    preamble = "The keeper's log. " * 40
    with FakeGemini(cache_min_tokens=100) as server:
        post(server, PATH + ":generateContent", user(preamble + "Day one."))
        _, _, raw = post(server, PATH + ":generateContent", user(preamble + "Day two."))
        cached = json.loads(raw)["usageMetadata"]["cachedContentTokenCount"]
        server.reset()
        _, _, after_reset = post(server, PATH + ":generateContent", user(preamble + "Day two."))
    assert cached == len(preamble + "Day ") // 4
    assert "cachedContentTokenCount" not in json.loads(after_reset)["usageMetadata"]


def test_the_cached_prefix_is_the_longest_shared_with_any_earlier_prompt() -> None:
    logs = {name: f"The {name} log. " * 40 for name in ("keeper's", "lamp's", "boat's")}
    with FakeGemini(cache_min_tokens=100) as server:
        for preamble in logs.values():
            post(server, PATH + ":generateContent", user(preamble + "Day one."))
        _, _, raw = post(server, PATH + ":generateContent", user(logs["lamp's"] + "Day two."))
    cached = json.loads(raw)["usageMetadata"]["cachedContentTokenCount"]
    assert cached == len(logs["lamp's"] + "Day ") // 4


def test_the_system_instruction_counts_as_prompt_tokens(fake: FakeGemini) -> None:
    _, _, plain = post(fake, PATH + ":generateContent", user("Hi"))
    system = {"systemInstruction": {"parts": [{"text": "You are a very verbose narrator."}]}}
    _, _, with_system = post(fake, PATH + ":generateContent", {**user("Hi"), **system})
    prompt = [json.loads(raw)["usageMetadata"]["promptTokenCount"] for raw in (plain, with_system)]
    assert prompt[1] > prompt[0]
    assert json.loads(plain)["candidates"] == json.loads(with_system)["candidates"]
