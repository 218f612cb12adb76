"""What the pipeline asks its driver to do, and the two drivers that do it.

The pipeline (:mod:`questfoundry.gateway.pipeline`) is a generator that makes every decision of a
call and yields an *effect* whenever it needs the world: run a blocking backend call, sleep, call
the provider, wait for another request's flight. The sync driver performs each effect in place; the
async driver awaits it, moving blocking backend I/O to a worker thread so it never runs on the
event loop. The result (or exception) is sent back into the generator. Everything else — planning,
bookkeeping, observers — runs in the generator itself, so on the caller's thread or task in both
faces. (The shape is h11's: decisions in one place, I/O at the edges.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from questfoundry.contracts.backends import Clock
from questfoundry.contracts.protocols import Capability, Provider
from questfoundry.contracts.records import Chunk, ProviderRequest
from questfoundry.gateway.offload import offload

T = TypeVar("T")

#: what a pipeline generator is: it yields effects, is sent their results, returns ``T``
Steps = Generator["Effect", Any, T]

#: sent back by :class:`NextChunk` when a stream has ended
DONE: Any = object()


class Effect:
    """One thing the pipeline needs done; each driver knows how."""

    def run(self) -> Any:
        raise NotImplementedError

    async def arun(self) -> Any:
        raise NotImplementedError


@dataclass(slots=True)
class Blocking(Effect):
    """A backend call that may block on I/O; ``quick`` ones run in place even under asyncio."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    quick: bool = False

    def run(self) -> Any:
        return self.fn(*self.args)

    async def arun(self) -> Any:
        if self.quick:
            return self.fn(*self.args)
        return await offload(self.fn, *self.args)


@dataclass(slots=True)
class Twin(Effect):
    """A backend call with an async twin: the sync face runs ``fn``, the async face awaits
    ``afn`` (same arguments, same answer) on its own loop."""

    fn: Callable[..., Any]
    afn: Callable[..., Awaitable[Any]]
    args: tuple[Any, ...] = ()

    def run(self) -> Any:
        return self.fn(*self.args)

    async def arun(self) -> Any:
        return await self.afn(*self.args)


def blocking(backend: object, fn: Callable[..., Any], *args: Any) -> Blocking:
    """A :class:`Blocking` call of ``backend``; quick when it declares ``non_blocking``."""
    quick = Capability.NON_BLOCKING in getattr(backend, "capabilities", ())
    return Blocking(fn, args, quick)


@dataclass(slots=True)
class Sleep(Effect):
    seconds: float
    clock: Clock

    def run(self) -> None:
        self.clock.sleep(self.seconds)

    async def arun(self) -> None:
        await self.clock.asleep(self.seconds)


@dataclass(slots=True)
class Call(Effect):
    """One provider attempt."""

    provider: Provider
    request: ProviderRequest

    def run(self) -> Any:
        return self.provider.generate(self.request)

    async def arun(self) -> Any:
        return await self.provider.agenerate(self.request)


@dataclass(slots=True)
class OpenStream(Effect):
    """Start a streamed attempt; the result is the chunk iterator and its first chunk."""

    provider: Provider
    request: ProviderRequest

    def run(self) -> tuple[Iterator[Chunk], Chunk | None]:
        chunks = iter(self.provider.stream(self.request))
        return chunks, next(chunks, None)

    async def arun(self) -> tuple[AsyncIterator[Chunk], Chunk | None]:
        chunks = aiter(self.provider.astream(self.request))
        return chunks, await anext(chunks, None)


@dataclass(slots=True)
class NextChunk(Effect):
    """The next chunk of an open stream, or :data:`DONE`."""

    chunks: Any

    def run(self) -> Any:
        return next(self.chunks, DONE)

    async def arun(self) -> Any:
        return await anext(self.chunks, DONE)


@dataclass(slots=True)
class Join(Effect):
    """Wait for the identical request in flight to land."""

    flight: Future[Any]

    def run(self) -> Any:
        return self.flight.result()

    async def arun(self) -> Any:
        return await asyncio.wrap_future(self.flight)


@dataclass(slots=True)
class Emit(Effect):
    """A piece of streamed text for the caller (handled by the stream drivers)."""

    text: str


def drive(steps: Steps[T], error: BaseException | None = None) -> T:
    """Run a pipeline generator to its end on this thread (first throwing ``error`` into it)."""
    value: Any = None
    while True:
        try:
            effect = steps.throw(error) if error is not None else steps.send(value)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        value, error = None, None
        try:
            value = effect.run()
        except BaseException as exc:
            error = exc


async def adrive(steps: Steps[T], error: BaseException | None = None) -> T:
    """Run a pipeline generator to its end in this task (first throwing ``error`` into it)."""
    value: Any = None
    while True:
        try:
            effect = steps.throw(error) if error is not None else steps.send(value)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        value, error = None, None
        try:
            value = await effect.arun()
        except BaseException as exc:
            error = exc
