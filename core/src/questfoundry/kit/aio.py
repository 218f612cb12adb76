"""Resources that belong to one event loop: made in the running loop, closed on it as it ends.

An async HTTP client's pooled connections are bound to the loop that opened them. Shared across
successive ``asyncio.run`` calls, one client outlives its first loop and is later finalised
against a closed one ("Task exception was never retrieved ... Event loop is closed"). A
:class:`PerLoop` keeps one resource per running loop instead, and closes each on its own loop.

How it learns that a loop ends: on first use in a loop it starts a small async generator that
waits at ``yield`` and closes the resource in its ``finally``. The loop tracks every async
generator started in it, and ``loop.shutdown_asyncgens()`` — which ``asyncio.run`` and
``asyncio.Runner`` call before closing the loop, as pytest-asyncio does — closes each one, while
the loop still runs. A loop closed without that call leaks the resource to the garbage collector,
as it would any other.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["PerLoop"]

T = TypeVar("T")


class PerLoop(Generic[T]):
    """One ``T`` per running event loop, from ``create()``, closed with ``close(resource)``.

    Safe from several threads, each running its own loop.
    """

    def __init__(self, create: Callable[[], T], close: Callable[[T], Awaitable[None]]) -> None:
        self._create = create
        self._close = close
        self._lock = threading.Lock()
        self._entries: dict[asyncio.AbstractEventLoop, tuple[T, AsyncGenerator[None, None]]] = {}

    async def get(self) -> T:
        """The running loop's resource, made on first use."""
        loop = asyncio.get_running_loop()
        with self._lock:
            self._forget_closed_loops()
            entry = self._entries.get(loop)
            if entry is not None:
                return entry[0]
            resource = self._create()
            keeper = self._keep(loop, resource)
            self._entries[loop] = (resource, keeper)
        await keeper.asend(None)  # runs to its ``yield`` at once: the loop now tracks it
        return resource

    async def aclose(self) -> None:
        """Close the running loop's resource now, and ask other running loops to close theirs."""
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        with self._lock:
            entries = list(self._entries.items())
        for loop, (_, keeper) in entries:
            if loop is current:
                await keeper.aclose()
            else:
                self._close_elsewhere(loop, keeper)

    def close(self) -> None:
        """From sync code: close every loop's resource, on its loop.

        A running loop is asked to; an idle one (made, not running, not closed) is run until its
        resource is closed; a loop that has ended closed its own already (module docstring).
        """
        with self._lock:
            entries = list(self._entries.items())
        for loop, (_, keeper) in entries:
            if loop.is_running() or loop.is_closed():
                self._close_elsewhere(loop, keeper)
                continue
            closing = keeper.aclose()
            try:
                loop.run_until_complete(closing)
            except RuntimeError:  # another loop runs in this thread: leave it to its own end
                closing.close()

    async def _keep(
        self, loop: asyncio.AbstractEventLoop, resource: T
    ) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            with self._lock:
                entry = self._entries.get(loop)
                if entry is not None and entry[0] is resource:
                    del self._entries[loop]
            await self._close(resource)

    @staticmethod
    def _close_elsewhere(
        loop: asyncio.AbstractEventLoop, keeper: AsyncGenerator[None, None]
    ) -> None:
        if loop.is_running():
            closing = keeper.aclose()
            try:
                asyncio.run_coroutine_threadsafe(closing, loop)
            except RuntimeError:  # the loop closed meanwhile, and closed the resource itself
                closing.close()

    def _forget_closed_loops(self) -> None:
        for loop in [loop for loop in self._entries if loop.is_closed()]:
            del self._entries[loop]
