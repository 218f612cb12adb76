"""Both faces of the gateway behind one interface, so every behaviour test runs through each.

``SYNC`` calls :meth:`Gateway.generate` / :meth:`Gateway.stream`; ``ASYNC`` runs
:meth:`Gateway.agenerate` / :meth:`Gateway.astream` in a fresh event loop for each call (so a test
also checks that one gateway serves successive loops). The ``gateway_face`` fixture of
:mod:`questfoundry.testing.pytest_plugin` is parametrized over both.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from questfoundry.contracts.records import Reply, Request
    from questfoundry.gateway import Gateway


@dataclass
class Streamed:
    """What a test saw of a stream: the pieces it read and the reply once it ended."""

    pieces: list[str] = field(default_factory=list)
    reply: Reply | None = None


class Face:
    """One way of calling the gateway."""

    name = ""

    def generate(self, gateway: Gateway, request: Request) -> Reply:
        raise NotImplementedError

    def stream(
        self, gateway: Gateway, request: Request, *, stop_after: int | None = None
    ) -> Streamed:
        """Read the stream, stopping (abandoning it) after ``stop_after`` pieces when given."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.name


class SyncFace(Face):
    name = "sync"

    def generate(self, gateway: Gateway, request: Request) -> Reply:
        return gateway.generate(request)

    def stream(
        self, gateway: Gateway, request: Request, *, stop_after: int | None = None
    ) -> Streamed:
        seen = Streamed()
        stream = gateway.stream(request)
        pieces = iter(stream)
        for piece in pieces:
            seen.pieces.append(piece)
            if stop_after is not None and len(seen.pieces) >= stop_after:
                pieces.close()  # type: ignore[attr-defined]
                break
        seen.reply = stream.reply
        return seen


class AsyncFace(Face):
    name = "async"

    def generate(self, gateway: Gateway, request: Request) -> Reply:
        return asyncio.run(gateway.agenerate(request))

    def stream(
        self, gateway: Gateway, request: Request, *, stop_after: int | None = None
    ) -> Streamed:
        async def read() -> Streamed:
            seen = Streamed()
            stream = gateway.astream(request)
            pieces = aiter(stream)
            async for piece in pieces:
                seen.pieces.append(piece)
                if stop_after is not None and len(seen.pieces) >= stop_after:
                    await pieces.aclose()  # type: ignore[attr-defined]
                    break
            seen.reply = stream.reply
            return seen

        return asyncio.run(read())


SYNC = SyncFace()
ASYNC = AsyncFace()
FACES = (SYNC, ASYNC)
