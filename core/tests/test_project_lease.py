"""ProjectLease: a run renews a lease that would run out, and stops when it loses it."""

from __future__ import annotations

import asyncio
import threading

import pytest

from questfoundry.contracts.backends import Clock
from questfoundry.contracts.errors import StateError
from questfoundry.contracts.protocols import Capability, LeaseHolder
from questfoundry.studio.lease import ProjectLease


class Expiring:
    """A store whose lease runs out ``lease_seconds`` after it was taken or last renewed."""

    capabilities = frozenset({Capability.LEASES})
    lease_seconds = 0.06

    def __init__(self) -> None:
        self.holder: LeaseHolder | None = None
        self.renewals = 0
        self.lose = threading.Event()

    def take_lease(self, holder: LeaseHolder) -> LeaseHolder | None:
        if self.holder is not None:
            return self.holder
        self.holder = holder
        return None

    def renew_lease(self, holder: LeaseHolder) -> bool:
        if self.lose.is_set() or self.holder is None or self.holder.token != holder.token:
            return False
        self.holder, self.renewals = holder, self.renewals + 1
        return True

    def release_lease(self, holder: LeaseHolder) -> None:
        if self.holder is not None and self.holder.token == holder.token:
            self.holder = None


def test_a_run_renews_its_lease_while_it_lasts_and_gives_it_back() -> None:
    store = Expiring()

    async def run() -> None:
        async with ProjectLease(store, "story_spark", clock=Clock()) as lease:  # type: ignore[arg-type]
            await lease.name("run-1")
            await asyncio.sleep(0.2)
            assert store.holder is not None and store.holder.run_id == "run-1"

    asyncio.run(run())
    assert store.renewals >= 4  # every 20 ms over 200 ms, and the naming
    assert store.holder is None


def test_a_run_that_loses_its_lease_stops_in_one_line() -> None:
    store = Expiring()

    async def run() -> None:
        async with ProjectLease(store, "story_spark", clock=Clock()) as lease:  # type: ignore[arg-type]
            await lease.name("run-2")
            store.lose.set()
            await asyncio.sleep(5)  # the run goes on writing, until it is stopped

    with pytest.raises(StateError, match=r"^run run-2 lost its lease on the project") as stopped:
        asyncio.run(run())
    assert "\n" not in str(stopped.value)
