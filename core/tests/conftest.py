"""Fixtures the core's gateway tests share: a fake clock, a scripted provider, gateways on both."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lore_studio import answers, sparked, studio  # noqa: F401 - the lore loops' studio

from questfoundry.config import Config
from questfoundry.gateway import Gateway
from questfoundry.gateway import offload as offloading
from questfoundry.registry import get_plugin_manager
from questfoundry.runtime import open_gateway
from questfoundry.testing.clock import FakeClock
from questfoundry.testing.scripted import ScriptedProvider, scripted_plugin

PRICED = {"cost_per_input_token": 0.001, "cost_per_output_token": 0.002}
BASE: dict[str, Any] = {
    "providers": {"text": {"default": "scripted", "scripted": {"model": "m1"}}},
    "rate_limiting": {"providers": {"scripted": dict(PRICED)}},
}


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and key in out else value
    return out


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many calls each trip to a worker thread carried (:mod:`questfoundry.gateway.offload`).

    A trip leaves only once the event loop has run the callbacks that were ready when it was
    sent, so the calls a loop asks in one go share one trip, however fast the worker thread is
    (in a run the worker may take the first of them alone: how many trips is then timing's).
    """
    carried: list[int] = []
    carry = offloading._Trips._carry
    pool = offloading._executor()

    def counted(self: offloading._Trips, calls: list[Any]) -> None:
        carried.append(len(calls))
        carry(self, calls)

    class AfterTheLoopsTurn:
        def submit(self, trip: Callable[[], None]) -> None:
            asyncio.get_running_loop().call_soon(pool.submit, trip)

    monkeypatch.setattr(offloading._Trips, "_carry", counted)
    monkeypatch.setattr(offloading, "_executor", AfterTheLoopsTurn)
    return carried


@pytest.fixture
def in_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Path]:
    """``in_project(text)``: ``tmp_path`` as the working directory of a project whose
    ``.questfoundry/config.yml`` holds ``text`` (``QUESTFOUNDRY_CONFIG`` unset); the file's path."""

    def make(text: str) -> Path:
        path = tmp_path / ".questfoundry" / "config.yml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("QUESTFOUNDRY_CONFIG", raising=False)
        return path

    return make


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def provider() -> ScriptedProvider:
    return ScriptedProvider()


@pytest.fixture
def make_gateway(
    tmp_path: Path, clock: FakeClock, provider: ScriptedProvider
) -> Iterator[Callable[..., Gateway]]:
    """``make_gateway(extra, *plugins)``: a gateway on ``BASE`` deep-merged with ``extra``."""
    made: list[Gateway] = []

    def make(extra: dict[str, Any] | None = None, *plugins: tuple[str, object]) -> Gateway:
        config = Config(
            data=merge(BASE, extra or {}),
            path=None,
            project_dir=tmp_path / ".questfoundry",
            secret_paths=frozenset(),
        )
        manager = get_plugin_manager(
            entry_points=False, plugins=[scripted_plugin(provider), *plugins]
        )
        gateway = open_gateway(config, manager, clock=clock)
        made.append(gateway)
        return gateway

    yield make
    for gateway in made:
        gateway.close()
