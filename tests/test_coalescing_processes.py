"""Cross-process coalescing, for real: processes asking the same new prompt at once make one call.

Eight worker processes share one cache folder (or one Redis) and one fake OpenAI server that takes
a while to answer; they start together behind a barrier, each through its own runtime and the real
``openai`` SDK. The server counts the chat completions it was asked for.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from questfoundry.config import Config, validate
from questfoundry.contracts.records import Request
from questfoundry.registry import get_plugin_manager
from questfoundry.runtime import Runtime
from questfoundry.testing.fakes import FakeOpenAI

WORKERS = 8
PROMPT = "Open on a lighthouse nobody has lit for years."


def config(server_url: str, root: Path, caching: dict[str, Any]) -> Config:
    data: dict[str, Any] = {
        "providers": {
            "text": {
                "default": "openai",
                "openai": {"model": "gpt-4o-mini", "api_key": "sk-test", "base_url": server_url},
            }
        },
        "caching": caching,
    }
    validate(data, manager=get_plugin_manager())
    return Config(
        data=data, path=None, project_dir=root / ".questfoundry", secret_paths=frozenset()
    )


def ask_once(cfg: Config, barrier: Any, results: Any) -> None:
    with Runtime(cfg, get_plugin_manager()) as runtime:
        gateway = runtime.gateway
        gateway.plan(Request(prompt=PROMPT))  # resolve and build before the start line
        runtime.cache  # noqa: B018  (opened before the race, as a long-running worker has it)
        barrier.wait(10)
        reply = gateway.generate(Request(messages=[{"role": "user", "content": PROMPT}]))
        results.put((reply.text, reply.cache_hit))


def race(cfg: Config) -> list[tuple[str, bool]]:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(WORKERS)
    results = context.Queue()
    workers = [
        context.Process(target=ask_once, args=(cfg, barrier, results)) for _ in range(WORKERS)
    ]
    for worker in workers:
        worker.start()
    answers = [results.get(timeout=30) for _ in workers]
    for worker in workers:
        worker.join(10)
        assert worker.exitcode == 0
    return answers


def caches(tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "file":
        return {"backend": "file", "cache_dir": str(tmp_path / "cache")}
    if importlib.util.find_spec("questfoundry_cache_redis") is None:
        pytest.fail("questfoundry-cache-redis is not installed")
    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    return {"backend": "redis", "redis_url": url, "key_prefix": prefix}


@pytest.fixture(params=["file", pytest.param("redis", marks=pytest.mark.redis)])
def caching(tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    return caches(tmp_path, request)


@pytest.mark.slow
def test_eight_processes_asking_one_new_prompt_make_one_call(
    tmp_path: Path, caching: dict[str, Any]
) -> None:
    with FakeOpenAI(latency=0.5) as server:
        answers = race(config(server.url + "/v1", tmp_path, caching))
        calls = [r for r in server.requests if r.path.endswith("/chat/completions")]
    assert len(calls) == 1
    assert len({text for text, _ in answers}) == 1  # every process got the one answer
    assert sum(not hit for _, hit in answers) == 1  # the caller, the others read the cache
