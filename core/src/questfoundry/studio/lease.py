"""One run at a time per project: the lease a run holds on the project's state.

Two runs writing one project interleave their requests, and the last topology written wins while
the other's sections are left orphaned. So a run takes the project's lease before it reads or
writes anything, and gives it back when it ends, however it ends. A second run is refused at once
with one line naming the holder (its run id, loop, pid and host), or with ``wait`` waits for it.

The lease is the state store's (:class:`~questfoundry.contracts.protocols.Leasing`, declared by
``Capability.LEASES``): the file store holds an ``flock`` the system drops when its holder dies;
the Redis store a key that expires unless renewed, which this module renews every third of its
``lease_seconds``. A run whose lease is lost all the same (Redis unreachable for longer than
that) is stopped rather than left writing beside another. A store without the capability (an
in-memory one, a third party's) runs without a lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from dataclasses import replace
from types import TracebackType

from questfoundry.contracts.backends import Clock
from questfoundry.contracts.errors import StateError
from questfoundry.contracts.protocols import Capability, LeaseHolder, Leasing, StateStore

log = logging.getLogger("questfoundry.studio")

#: seconds between two tries while waiting for another run's lease
POLL_SECONDS = 0.2
#: how long a refused run waits for a holder that has just taken the lease to name its run
NAMING_SECONDS = 1.0


class ProjectLease:
    """``async with ProjectLease(state, loop):`` holds the project for one run of ``loop``."""

    def __init__(self, state: StateStore, loop: str, *, wait: bool = False, clock: Clock) -> None:
        self.wait = wait
        self.holder = LeaseHolder(
            token=uuid.uuid4().hex,
            run_id="",
            loop=loop,
            pid=os.getpid(),
            host=socket.gethostname(),
            started=clock.time(),
        )
        self._store: Leasing | None = (
            state if Capability.LEASES in state.capabilities else None  # type: ignore[assignment]
        )
        self._held = False
        self._lost = False
        self._renewer: asyncio.Task[None] | None = None
        self._run: asyncio.Task[object] | None = None

    async def __aenter__(self) -> ProjectLease:
        store = self._store
        if store is None:
            return self
        waited = False
        naming = time.monotonic() + NAMING_SECONDS
        while (other := await asyncio.to_thread(store.take_lease, self.holder)) is not None:
            if not other.run_id and time.monotonic() < naming:
                await asyncio.sleep(POLL_SECONDS / 10)  # it is about to say which run it is
                continue
            if not self.wait:
                raise StateError(
                    f"another run holds this project: {other.describe()}; wait for it with "
                    "`questfoundry run --wait`, or stop it first"
                )
            if not waited:
                log.warning("waiting for %s to end", other.describe())
                waited = True
            await asyncio.sleep(POLL_SECONDS)
        self._held = True
        if store.lease_seconds is not None:
            self._run = asyncio.current_task()
            self._renewer = asyncio.ensure_future(self._renew(store, store.lease_seconds / 3))
        return self

    async def name(self, run_id: str) -> None:
        """Say which run holds the lease, once the run knows its id (it may resume an old one)."""
        self.holder = replace(self.holder, run_id=run_id)
        if self._store is not None and self._held:
            await asyncio.to_thread(self._store.renew_lease, self.holder)

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        if self._store is not None and self._held:
            self._held = False
            await asyncio.to_thread(self._store.release_lease, self.holder)
        if self._lost and isinstance(error, asyncio.CancelledError):
            raise StateError(
                f"run {self.holder.run_id or '?'} lost its lease on the project (the state store "
                "did not answer for too long) and stopped, so as not to write beside another run; "
                "run it again to continue"
            ) from None

    async def _renew(self, store: Leasing, every: float) -> None:
        """Renew the lease while the run lasts; stop the run if it was lost."""
        while True:
            await asyncio.sleep(every)
            try:
                kept = await asyncio.to_thread(store.renew_lease, self.holder)
            except StateError as exc:
                log.warning("the project's lease could not be renewed: %s", exc)
                continue  # it may yet be renewed before it runs out
            if not kept:
                self._lost = True
                if self._run is not None:
                    self._run.cancel()
                return
