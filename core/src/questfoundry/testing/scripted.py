"""A provider that answers from a script, for testing the gateway and code built on it.

Register it like any plugin::

    provider = ScriptedProvider([ProviderReply("m", text="hi"), RetriableProviderError("boom")])
    manager = get_plugin_manager(entry_points=False, plugins=[scripted_plugin(provider)])

Without a script it echoes the last message, so identical requests get identical answers; a
structured-output request (``params["response_schema"]``) gets JSON text of an arbitrary valid
instance of its schema instead, chosen by the request, as the fake servers answer.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Any

from questfoundry.contracts.backends import BackendContext
from questfoundry.contracts.hookspecs import hookimpl
from questfoundry.contracts.protocols import Capability
from questfoundry.contracts.records import Chunk, ProviderReply, ProviderRequest, Usage
from questfoundry.contracts.structured import RESPONSE_SCHEMA
from questfoundry.testing.schema_instance import instance_text

Step = ProviderReply | BaseException
#: what an image request gets when the script says nothing: a real 1x1 PNG
IMAGE = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


class ScriptedProvider:
    """Plays ``script`` in order, then echoes; records every request it receives.

    ``gate``, when given, holds every call until it is set, so tests can line up concurrent calls.
    """

    name = "scripted"
    capabilities = frozenset({Capability.STREAMING, Capability.IMAGES})

    def __init__(
        self,
        script: Iterable[Step] = (),
        *,
        usage: Usage = Usage(12, 30),
        gate: threading.Event | None = None,
    ) -> None:
        self.script: deque[Step] = deque(script)
        self.usage = usage
        self.gate = gate
        self.requests: list[ProviderRequest] = []
        self.closed = False
        self._lock = threading.Lock()

    @property
    def calls(self) -> int:
        return len(self.requests)

    def _next(self, request: ProviderRequest) -> ProviderReply:
        if self.gate is not None:
            self.gate.wait(10)
        with self._lock:
            self.requests.append(request)
            step = self.script.popleft() if self.script else None
        if isinstance(step, BaseException):
            raise step
        if step is not None:
            return step
        if request.kind == "image":
            return ProviderReply(request.model, image=IMAGE, usage=self.usage)
        asked = request.params.get(RESPONSE_SCHEMA)
        if isinstance(asked, Mapping):
            messages = [(m.role, m.content) for m in request.messages]
            text = instance_text(asked["schema"], request.model, messages, request.prompt)
            return ProviderReply(request.model, text=text, usage=self.usage)
        last = request.messages[-1].content if request.messages else request.prompt or ""
        return ProviderReply(request.model, text=f"echo: {last}", usage=self.usage)

    def generate(self, request: ProviderRequest) -> ProviderReply:
        return self._next(request)

    async def agenerate(self, request: ProviderRequest) -> ProviderReply:
        await asyncio.sleep(0)  # a real provider waits on the network: let other tasks run
        return self._next(request)

    def stream(self, request: ProviderRequest) -> Iterator[Chunk]:
        reply = self._next(request)
        text = reply.text or ""
        for start in range(0, len(text), 5):
            yield Chunk(text[start : start + 5])
        yield Chunk(usage=reply.usage)

    async def astream(self, request: ProviderRequest) -> AsyncIterator[Chunk]:
        for chunk in self.stream(request):
            await asyncio.sleep(0)
            yield chunk

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


class _ScriptedPlugin:
    def __init__(self, provider: ScriptedProvider, name: str) -> None:
        self.provider = provider
        self.name = name

    @hookimpl
    def providers(self) -> dict[str, Any]:
        def factory(settings: Mapping[str, Any], context: BackendContext) -> ScriptedProvider:
            return self.provider

        return {self.name: factory}


def scripted_plugin(provider: ScriptedProvider, name: str = "scripted") -> tuple[str, object]:
    """A ``(plugin name, plugin)`` pair registering ``provider`` as provider ``name``."""
    return f"test-{name}", _ScriptedPlugin(provider, name)
