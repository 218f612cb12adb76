"""A run's state operations, carried to a worker thread in batches, in the order they were asked.

A step fanning out over a thousand sections reads and saves a few documents for each; sent to a
worker thread one by one (``asyncio.to_thread``), each pays a trip across threads that costs more
than reading a small file. Here they go through one :class:`~questfoundry.gateway.offload.Lane`:
the operations the run's tasks ask for while a trip is out wait, and the next trip takes them
all; under fan-out, one trip carries dozens of them; alone, an operation leaves at once.

The operations run one after the other, in the order asked, so a task reads what an earlier one
saved. A store that never blocks (``Capability.NON_BLOCKING``) is called in place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from questfoundry.contracts.protocols import Capability, StateStore
from questfoundry.gateway.offload import Lane

T = TypeVar("T")


class StateQueue:
    """Calls on one run's state store: ``await queue.call(store.get, key)``."""

    def __init__(self, state: StateStore) -> None:
        self.state = state
        self._in_place = Capability.NON_BLOCKING in state.capabilities
        self._lane = Lane()

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)``, after every operation asked before it; its result or error."""
        if self._in_place:
            return function(*args)
        return await self._lane.call(function, *args)
