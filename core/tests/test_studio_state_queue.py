"""A run's state operations: carried to a worker thread in batches, in order, each error to its
own caller; and the record saying a step is done saved only once what the step saved is synced."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from questfoundry.builtins.file_store import FileStore
from questfoundry.config import Config
from questfoundry.contracts.brief import Brief
from questfoundry.contracts.errors import StateError
from questfoundry.contracts.protocols import Capability
from questfoundry.contracts.studio import LoopSpec, Step, StepContext
from questfoundry.registry import get_plugin_manager
from questfoundry.studio import Showrunner
from questfoundry.studio.engine import LoopRun
from questfoundry.studio.state_queue import StateQueue
from questfoundry.testing.clock import FakeClock
from questfoundry.testing.scripted import ScriptedProvider, scripted_plugin


async def test_concurrent_operations_share_trips_and_each_reads_what_it_saved(
    tmp_path: Path, trips: list[int]
) -> None:
    store = FileStore(tmp_path)
    queue = StateQueue(store)

    async def one(n: int) -> dict[str, Any] | None:
        await queue.call(store.set, f"items/{n}", {"n": n})
        return await queue.call(store.get, f"items/{n}")

    assert await asyncio.gather(*(one(n) for n in range(50))) == [{"n": n} for n in range(50)]
    assert trips == [50, 50]  # the saves in one trip, then the reads: not 100 trips
    assert await queue.call(store.list_keys, "items/") == sorted(f"items/{n}" for n in range(50))


async def test_an_error_reaches_only_the_operation_that_raised_it(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    queue = StateQueue(store)
    results = await asyncio.gather(
        queue.call(store.set, "fine", {"n": 1}),
        queue.call(store.set, "bad/../key", {"n": 2}),
        queue.call(store.get, "fine"),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] == {"n": 1}
    assert isinstance(results[1], StateError)


async def test_a_store_that_never_blocks_is_called_in_place(trips: list[int]) -> None:
    class Memory:
        capabilities = frozenset({Capability.NON_BLOCKING})

        def get(self, key: str) -> int:
            return threading.get_ident()

    queue = StateQueue(Memory())  # type: ignore[arg-type]
    assert await queue.call(Memory().get, "k") == threading.get_ident()
    assert trips == []


# ----------------------------------------------------------------------------- checkpoints


class Recording(FileStore):
    """A file store noting every document saved and every sync, in order."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.events: list[str] = []

    def set(self, key: str, document: Mapping[str, Any], ttl: float | None = None) -> None:
        super().set(key, document, ttl)
        done = ",".join(sorted(k for k, v in document.get("steps", {}).items() if v == "done"))
        if not key.startswith("runs/latest/"):  # the loop's pointer to its latest run
            self.events.append(f"record {done or '-'}" if key.startswith("runs/") else key)

    def sync(self) -> None:
        super().sync()
        self.events.append("sync")


async def pages(context: StepContext) -> None:
    async def one(n: int) -> None:
        await context.save(f"pages/{n}", {"text": await context.text(f"page {n}")})

    await context.each([1, 2, 3], one)


async def cover(context: StepContext) -> None:
    await context.save("cover", {"text": await context.text("the cover")})


@pytest.fixture
def showrunner(tmp_path: Path) -> Iterator[Showrunner]:
    data = {"providers": {"text": {"default": "scripted", "scripted": {"model": "m1"}}}}
    config = Config(data, None, tmp_path / ".questfoundry", frozenset())
    manager = get_plugin_manager(entry_points=False, plugins=[scripted_plugin(ScriptedProvider())])
    with Showrunner.from_config(config, manager, clock=FakeClock()) as built:
        yield built


async def test_a_step_is_recorded_done_only_after_what_it_saved_is_synced(
    tmp_path: Path, showrunner: Showrunner
) -> None:
    store = Recording(tmp_path / "state")
    steps = (
        Step("pages", "scene_smith", "", pages, writes=("pages",)),
        Step("cover", "scene_smith", "", cover, reads=("pages",), writes=("cover",)),
    )
    loop = LoopSpec("book", ("scene_smith",), steps=steps)
    await LoopRun(showrunner, loop, 3, None, brief=Brief(), state=store).execute()
    events = store.events
    records = [e for e in events if e.startswith("record")]
    assert records == ["record -", "record pages", "record cover,pages", "record cover,pages"]
    for step, documents in (("pages", ("pages/1", "pages/2", "pages/3")), ("cover", ("cover",))):
        recorded = next(i for i, e in enumerate(events) if e.startswith("record") and step in e)
        last_saved = max(events.index(document) for document in documents)
        assert "sync" in events[last_saved:recorded], f"{step} recorded done before a sync"
    assert events[-2:] == ["record cover,pages", "sync"]  # the final record reaches the disk too
