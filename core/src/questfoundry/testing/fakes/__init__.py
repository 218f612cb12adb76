"""Fake provider servers on 127.0.0.1 that speak each provider's documented wire format.

The real SDKs talk to them over real HTTP, so tests exercise what production runs. Each fake
records its requests (with the model, temperature and response schema each asked for), counts what
it served and injects faults on demand (see :class:`Fault`). A structured-output request gets JSON
text of an arbitrary valid instance of its schema (:mod:`questfoundry.testing.schema_instance`).
Standard library only (jsonschema, a core dependency, loads with the first structured reply);
provider fakes load on first use. ``python -m questfoundry.testing.fakes openai|ollama|gemini``
runs one as a stand-in server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from questfoundry.lazy import lazy_exports
from questfoundry.testing.fakes.base import (
    FakeServer,
    Fault,
    RecordedRequest,
    Response,
    estimate_tokens,
    fake_server_fixture,
    ndjson_line,
    split_text,
    sse_event,
)
from questfoundry.testing.fakes.placeholder import reply_text, tiny_png

_PROVIDER_FAKES = {
    "FakeOpenAI": "questfoundry.testing.fakes.openai",
    "FakeOllama": "questfoundry.testing.fakes.ollama",
    "FakeGemini": "questfoundry.testing.fakes.gemini",
}

__all__ = [
    "FakeGemini",
    "FakeOllama",
    "FakeOpenAI",
    "FakeServer",
    "Fault",
    "RecordedRequest",
    "Response",
    "estimate_tokens",
    "fake_server_fixture",
    "ndjson_line",
    "reply_text",
    "split_text",
    "sse_event",
    "tiny_png",
]

if TYPE_CHECKING:
    from questfoundry.testing.fakes.gemini import FakeGemini
    from questfoundry.testing.fakes.ollama import FakeOllama
    from questfoundry.testing.fakes.openai import FakeOpenAI


__getattr__ = lazy_exports(__name__, _PROVIDER_FAKES)
