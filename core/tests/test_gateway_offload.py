"""Blocking calls off the event loop: the calls of one moment share a trip to a worker thread,
a slow trip holds up no later call, and each caller gets its own value, error and context."""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
from collections.abc import Callable
from typing import Any

import pytest

from questfoundry.gateway import offload as offloading
from questfoundry.gateway.offload import offload

WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


async def test_each_caller_gets_its_value_its_error_and_its_context_off_the_loop() -> None:
    loop_thread = threading.get_ident()

    def where(name: str) -> tuple[str, str, bool]:
        if name == "broken":
            raise KeyError(name)
        return name, WHO.get(), threading.get_ident() != loop_thread

    async def ask(name: str) -> tuple[str, str, bool]:
        WHO.set(f"caller {name}")
        return await offload(where, name)

    done = await asyncio.gather(*(ask(n) for n in ("a", "b", "broken")), return_exceptions=True)

    assert done[:2] == [("a", "caller a", True), ("b", "caller b", True)]
    assert isinstance(done[2], KeyError)


def gated(gate: threading.Event) -> tuple[Callable[[], bool], threading.Event]:
    """A call that says it has started, then waits at ``gate``; and the event it sets."""
    started = threading.Event()

    def wait() -> bool:
        started.set()
        return gate.wait(10)

    return wait, started


async def until(event: threading.Event) -> None:
    while not event.is_set():
        await asyncio.sleep(0.005)


async def test_calls_asked_while_a_trip_waits_to_leave_share_it(trips: list[int]) -> None:
    gate = threading.Event()
    wait, started = gated(gate)
    first = asyncio.ensure_future(offload(wait))
    await until(started)  # the first trip has left and is held at the gate

    # asked in one go by the loop: none of their trip can leave before the loop yields
    values = asyncio.gather(*(offload(pow, n, 2) for n in range(50)))
    await asyncio.sleep(0)
    gate.set()

    assert await values == [n * n for n in range(50)]
    assert await first is True
    assert trips == [1, 50]


async def test_a_slow_trip_holds_up_no_call_asked_after_it_left() -> None:
    gate = threading.Event()
    wait, started = gated(gate)
    slow = asyncio.ensure_future(offload(wait))
    await until(started)

    assert await asyncio.wait_for(offload(sum, [1, 2, 3]), 5) == 6
    assert not slow.done()
    gate.set()
    assert await slow is True


async def test_a_cancelled_caller_leaves_the_call_to_finish_and_the_others_their_answers() -> None:
    gate, finished = threading.Event(), threading.Event()

    def held() -> str:
        gate.wait(10)
        finished.set()
        return "done"

    cancelled = asyncio.ensure_future(offload(held))
    kept = asyncio.ensure_future(offload(str.upper, "kept"))
    await asyncio.sleep(0.05)
    cancelled.cancel()
    gate.set()

    assert await kept == "KEPT"
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert finished.wait(5)


def test_answers_for_a_loop_that_has_closed_are_dropped() -> None:
    loop = asyncio.new_event_loop()
    future = loop.create_future()
    trips = offloading._Trips(loop)
    loop.close()

    # the call runs; handing its answer to the closed loop raises nothing
    trips._carry([(contextvars.copy_context(), sum, ([1, 2],), future)])

    assert not future.done()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_a_forked_child_starts_its_own_worker_threads() -> None:
    assert asyncio.run(offload(sum, [1, 1])) == 2  # the parent's pool exists
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            answer = asyncio.run(asyncio.wait_for(offload(sum, [20, 22]), 5))
            os.write(write, str(answer).encode())
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 16) == b"42"
    os.close(read)
    assert status == 0


async def test_a_pool_that_refuses_work_fails_the_call_and_leaves_the_next_one_free(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class ShutDown:
        def submit(self, *args: Any) -> None:
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")

    ran: list[str] = []
    pool = offloading._executor()
    monkeypatch.setattr(offloading, "_executor", ShutDown)
    with pytest.raises(RuntimeError, match="shutdown"):
        await offload(ran.append, "refused")
    monkeypatch.setattr(offloading, "_executor", lambda: pool)
    assert await asyncio.wait_for(offload(sum, [1, 2]), 5) == 3
    await offload(ran.append, "next")
    assert ran == ["next"]  # the refused call never runs: its caller was told it failed
