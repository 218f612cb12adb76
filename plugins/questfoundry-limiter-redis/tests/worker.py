"""One worker process of the multi-process tests: calls through a real gateway on the ``redis``
limiter and keeper, against a provider that records when each call was admitted.

    python worker.py '<spec as JSON>'

The spec: ``project`` (folder holding ``.questfoundry``), ``config`` (config.yml's data),
``sizes`` (each call's ``max_tokens``: one call each), ``seconds`` (no call starts later than
this after the start; optional), ``scale`` (every limit's period is divided by it, so a test of
``requests_per_minute`` runs in seconds), ``skew`` (seconds this worker's ``time.time`` is off).
Prints ``ready``, waits for a line on stdin, then runs and prints one JSON line: the admissions
as ``[monotonic time, tokens]`` and how many calls a budget refused.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

spec = json.loads(sys.argv[1])
if spec.get("skew"):
    _real_time = time.time
    time.time = lambda: _real_time() + spec["skew"]  # this worker's clock is off

from questfoundry_limiter_redis.plugin import make_redis_limiter  # noqa: E402

from questfoundry.calls import Request  # noqa: E402
from questfoundry.config import Config  # noqa: E402
from questfoundry.errors import CostLimitExceededError  # noqa: E402
from questfoundry.gateway import Gateway  # noqa: E402
from questfoundry.hookspecs import hookimpl  # noqa: E402
from questfoundry.interfaces import BackendContext, ProviderReply, ProviderRequest, Rate  # noqa: E402
from questfoundry.limits import estimate_usage  # noqa: E402
from questfoundry.plugins import get_plugin_manager  # noqa: E402


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


def main() -> None:
    recorder = Recorder()
    manager = get_plugin_manager(plugins=[("worker", Plugin(recorder, spec.get("scale", 1)))])
    config = Config(spec["config"], project_dir=Path(spec["project"]) / ".questfoundry")
    refused = 0
    with Gateway.from_config(config, manager) as gateway:
        name = f"{id(recorder)}"
        runtime = gateway.runtime  # build the backends now, so the race starts at "go"
        runtime.limiter, runtime.budgets, runtime.provider("recorder")
        print("ready", flush=True)
        sys.stdin.readline()
        until = time.monotonic() + spec.get("seconds", float("inf"))
        for index, size in enumerate(spec["sizes"]):
            if time.monotonic() > until:
                break
            request = Request(
                messages=[{"role": "user", "content": f"{name} {index}"}],
                params={"max_tokens": size},
            )
            try:
                gateway.generate(request)
            except CostLimitExceededError:
                refused += 1
                break
    print(json.dumps({"admitted": recorder.admitted, "refused": refused}))


if __name__ == "__main__":
    main()
