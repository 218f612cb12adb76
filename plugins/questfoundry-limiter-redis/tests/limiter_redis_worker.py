"""Worker processes for the multi-process tests: each calls through a real gateway of its own on
the ``redis`` limiter and keeper, against a provider that records when each call was admitted.

:func:`run_workers` forks one process per spec (a fork starts in milliseconds, with everything
already imported), lets them all set up, starts them at one instant and returns what each
recorded. A spec: ``project`` (folder holding ``.questfoundry``), ``config`` (config.yml's data),
``sizes`` (each call's ``max_tokens``: one call each), ``seconds`` (no call starts later than
this after the start; optional), ``scale`` (every limit's period is divided by it, so a test of
``requests_per_minute`` runs in seconds), ``skew`` (seconds this worker's ``time.time`` is off).
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from threading import BrokenBarrierError
from typing import Any

from questfoundry_limiter_redis import plugin as redis_plugin
from questfoundry_limiter_redis.plugin import make_redis_limiter

from questfoundry.kit import (
    BackendContext,
    CostLimitExceededError,
    ProviderReply,
    ProviderRequest,
    Rate,
    Request,
    hookimpl,
)
from questfoundry.testing.app import Config, estimate_usage, get_plugin_manager, open_gateway

SETUP_SECONDS = 60


class Recorder:
    """A provider answering at once, recording each call's admission and its tokens. It reports
    the tokens the gateway estimated as used, so the limiter's reconciliation changes nothing."""

    name = "recorder"
    capabilities: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.admitted: list[tuple[float, int]] = []

    def generate(self, request: ProviderRequest) -> ProviderReply:
        usage = estimate_usage(request.messages, request.prompt, request.params)
        self.admitted.append((time.monotonic(), usage.total_tokens))
        return ProviderReply(request.model, text="ok", usage=usage)

    async def agenerate(self, request: ProviderRequest) -> ProviderReply:
        return self.generate(request)

    def stream(self, request: ProviderRequest) -> Any:
        raise NotImplementedError

    def astream(self, request: ProviderRequest) -> Any:
        raise NotImplementedError

    def close(self) -> None: ...

    async def aclose(self) -> None: ...


class Plugin:
    """The recorder, and the ``redis`` limiter on periods divided by ``scale``."""

    def __init__(self, recorder: Recorder, scale: float) -> None:
        self.recorder = recorder
        self.scale = scale

    @hookimpl
    def providers(self) -> dict[str, Any]:
        return {"recorder": lambda settings, context: self.recorder}

    @hookimpl
    def limiter_strategies(self) -> dict[str, Any]:
        def scaled(settings: Mapping[str, Any], context: BackendContext) -> Any:
            rates = [Rate(r.key, r.limit, r.period / self.scale) for r in settings["rates"]]
            return make_redis_limiter({**settings, "rates": rates}, context)

        return {"redis-scaled": scaled}


def work(spec: Mapping[str, Any], start: Any, out: Connection) -> None:
    """One worker: set up, wait at ``start`` for the others, call, send what it recorded."""
    if spec.get("skew"):
        real = time.time
        time.time = lambda: real() + spec["skew"]  # this worker's clock is off
    recorder = Recorder()
    plugins = [("limiter-redis", redis_plugin), ("worker", Plugin(recorder, spec.get("scale", 1)))]
    manager = get_plugin_manager(entry_points=False, plugins=plugins)
    config = Config(spec["config"], project_dir=Path(spec["project"]) / ".questfoundry")
    refused = 0
    with open_gateway(config, manager) as gateway:
        runtime = gateway.runtime  # build the backends now, so the race starts at once
        runtime.limiter, runtime.budgets, runtime.provider("recorder")
        start.wait(SETUP_SECONDS)
        until = time.monotonic() + spec.get("seconds", float("inf"))
        for index, size in enumerate(spec["sizes"]):
            if time.monotonic() > until:
                break
            request = Request(
                messages=[{"role": "user", "content": f"{id(recorder)} {index}"}],
                params={"max_tokens": size},
            )
            try:
                gateway.generate(request)
            except CostLimitExceededError:
                refused += 1
                break
    out.send({"admitted": recorder.admitted, "refused": refused})


def run_workers(specs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Fork one worker per spec, start them together, return what each recorded."""
    get_plugin_manager(entry_points=False)  # import the built-ins once, before the workers fork
    fork = multiprocessing.get_context("fork")
    start = fork.Barrier(len(specs) + 1)
    pipes = [fork.Pipe(duplex=False) for _ in specs]
    workers = [
        fork.Process(target=work, args=(spec, start, sending))
        for spec, (_, sending) in zip(specs, pipes, strict=True)
    ]
    for worker in workers:
        worker.start()
    try:
        start.wait(SETUP_SECONDS)
        results = [receiving.recv() for receiving, _ in pipes]
    except (BrokenBarrierError, EOFError):
        results = []
    finally:
        for worker in workers:
            worker.join(10)
            if worker.is_alive():
                worker.kill()
                worker.join()
    assert [worker.exitcode for worker in workers] == [0] * len(workers), "a worker failed"
    return results
