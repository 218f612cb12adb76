"""One resource per event loop, closed on its own loop as it ends (:mod:`questfoundry.kit.aio`)."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

from questfoundry.kit.aio import PerLoop


@dataclass
class Resource:
    loop: asyncio.AbstractEventLoop
    closed_on: list[asyncio.AbstractEventLoop] = field(default_factory=list)


def holder() -> tuple[PerLoop[Resource], list[Resource]]:
    made: list[Resource] = []

    def create() -> Resource:
        made.append(Resource(asyncio.get_running_loop()))
        return made[-1]

    async def close(resource: Resource) -> None:
        resource.closed_on.append(asyncio.get_running_loop())

    return PerLoop(create, close), made


def test_each_loop_gets_its_own_resource_closed_on_that_loop_as_it_ends() -> None:
    resources, made = holder()

    async def use_twice() -> Resource:
        first = await resources.get()
        assert await resources.get() is first, "one resource per loop"
        return first

    first = asyncio.run(use_twice())
    second = asyncio.run(use_twice())
    assert first is not second
    assert [r.closed_on for r in made] == [[first.loop], [second.loop]]


def test_loops_on_several_threads_each_close_their_own() -> None:
    resources, made = holder()

    def run() -> None:
        asyncio.run(resources.get())

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 3
    assert all(r.closed_on == [r.loop] for r in made)


def test_aclose_closes_the_running_loops_resource_at_once_and_a_later_use_makes_a_new_one() -> None:
    resources, made = holder()

    async def main() -> None:
        first = await resources.get()
        await resources.aclose()
        assert first.closed_on == [first.loop]
        assert await resources.get() is not first

    asyncio.run(main())
    assert [len(r.closed_on) for r in made] == [1, 1]


def test_close_from_sync_code_closes_an_idle_loops_resource_on_that_loop() -> None:
    resources, made = holder()
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(resources.get())
        resources.close()
        assert made[0].closed_on == [loop]
    finally:
        loop.close()
