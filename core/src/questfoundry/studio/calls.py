"""Where a run's calls go: through the gateway (:class:`Direct`), under a run's spending cap
(:mod:`.spending`), or nowhere at all, forecast (:mod:`.forecast`).

A step never knows which: it asks its :class:`~questfoundry.studio.context.StepContext`, which
hands every call to its run's :class:`Calls`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from questfoundry.contracts.errors import QuestFoundryError
from questfoundry.contracts.records import Reply

if TYPE_CHECKING:
    from questfoundry.contracts.protocols import CacheBackend
    from questfoundry.runtime import Runtime
    from questfoundry.studio.role import Role


class Calls(Protocol):
    """Answers a run's calls."""

    async def ask(
        self,
        role: Role,
        prompt: str,
        instructions: str,
        params: Mapping[str, Any],
        words: int | None,
    ) -> Reply:
        """The reply to ``prompt`` from ``role``; ``words`` is how long the step expects the
        answer to run (a forecast counts on it; a real call ignores it)."""

    async def forget(self, reply: Reply) -> None:
        """Drop an unusable reply from the cache, so asking again asks afresh."""


class Direct:
    """Every call through the gateway: cache, limits, budgets, retries and the ledger."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def ask(
        self,
        role: Role,
        prompt: str,
        instructions: str,
        params: Mapping[str, Any],
        words: int | None,
    ) -> Reply:
        return await role.agenerate(prompt, instructions=instructions, params=params)

    async def forget(self, reply: Reply) -> None:
        cache = self.runtime.cache
        if cache is not None and reply.key:
            await asyncio.to_thread(self._forget, cache, reply.key)

    def _forget(self, cache: CacheBackend, key: str) -> None:
        """Delete ``key`` once the gateway's deferred work is done: the reply's own cache set
        is queued there, and a delete that ran first would leave it cached after all."""
        self.runtime.deferred.drain()
        with contextlib.suppress(QuestFoundryError):
            cache.delete(key)
