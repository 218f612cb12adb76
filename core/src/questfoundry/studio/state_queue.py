"""A run's state operations, carried to a worker thread in batches, in the order they were asked.

A step fanning out over a thousand sections reads and saves a few documents for each; sent to a
worker thread one by one (``asyncio.to_thread``), each pays a trip across threads that costs more
than reading a small file. Here the operations the run's tasks ask for while the worker is busy
wait in one queue, and the worker takes the whole queue in one trip: under fan-out, one trip
carries dozens of them; alone, an operation leaves at once, as before.

One worker runs the operations one after the other, in the order asked, so a task reads what an
earlier one saved. A store that never blocks (``Capability.NON_BLOCKING``) is called in place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from questfoundry.contracts.protocols import Capability, StateStore

T = TypeVar("T")
#: an operation, and the future its caller awaits
_Queued = tuple[Callable[[], Any], "asyncio.Future[Any]"]


class StateQueue:
    """Calls on one run's state store: ``await queue.call(store.get, key)``."""

    def __init__(self, state: StateStore) -> None:
        self.state = state
        self._in_place = Capability.NON_BLOCKING in state.capabilities
        self._queued: list[_Queued] = []
        self._worker: asyncio.Task[None] | None = None

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)``, after every operation asked before it; its result or error."""
        if self._in_place:
            return function(*args)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queued.append((lambda: function(*args), future))
        if self._worker is None:
            self._worker = asyncio.ensure_future(self._work())
        return await future

    async def _work(self) -> None:
        """Carry what is queued to a thread, batch after batch, until nothing is left."""
        batch: list[_Queued] = []
        try:
            while self._queued:
                batch, self._queued = self._queued, []
                outcomes = await asyncio.to_thread(_run, [operation for operation, _ in batch])
                for (_, future), (value, error) in zip(batch, outcomes, strict=True):
                    if future.done():  # its caller was cancelled: the operation ran all the same
                        continue
                    if error is None:
                        future.set_result(value)
                    else:
                        future.set_exception(error)
        finally:
            self._worker = None
            for _, future in batch + self._queued:  # the loop is closing: no caller waits forever
                future.cancel()


def _run(operations: list[Callable[[], Any]]) -> list[tuple[Any, Exception | None]]:
    """Each operation's result, or the exception it raised, in order (one failing stops none)."""
    outcomes: list[tuple[Any, Exception | None]] = []
    for operation in operations:
        try:
            outcomes.append((operation(), None))
        except Exception as exc:  # handed to its own caller
            outcomes.append((None, exc))
    return outcomes
