"""How many calls a run keeps in flight is the user's to set (issue 21, item 1):
``studio.concurrency`` in config.yml, ``run --concurrency N`` for one run; the provider sees no
more than that at once.

The fake OpenAI server here counts the requests it is answering at the same moment, each held a
few milliseconds, so the count is what a real provider would have seen.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from questfoundry.cli import cli
from questfoundry.testing.fakes import FakeOpenAI
from questfoundry.testing.fakes.base import Handler, RecordedRequest, Response

KEY = "sk-concurrency-test"
SECTIONS = "6"


class Counting(FakeOpenAI):
    """The fake OpenAI server, noting the most chat requests it was ever answering at once."""

    def __init__(self) -> None:
        super().__init__()
        self.answering = 0
        self.most = 0
        self._count = threading.Lock()

    def routes(self) -> dict[tuple[str, str], Handler]:
        routes = super().routes()
        chat = ("POST", r"/v1/chat/completions")
        answer = routes[chat]

        def counted(request: RecordedRequest) -> Response:
            with self._count:
                self.answering += 1
                self.most = max(self.most, self.answering)
            time.sleep(0.02)  # long enough for every call the studio lets out to arrive
            try:
                return answer(request)
            finally:
                with self._count:
                    self.answering -= 1

        return {**routes, chat: counted}


@pytest.fixture
def server() -> Iterator[Counting]:
    with Counting() as fake:
        yield fake


def project(folder: Path, server: FakeOpenAI, **extra: Any) -> Path:
    text = {"api_key": KEY, "base_url": server.base_url, "model": "gpt-4o-mini"}
    config = {"providers": {"text": {"default": "openai", "openai": text}}, **extra}
    path = folder / ".questfoundry" / "config.yml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(config))
    return path


def run(config: Path, *flags: str) -> Any:
    args = ["--config", str(config), "run", "story_spark", "--sections", SECTIONS, *flags]
    args += ["--premise", "A keeper, a storm, a lamp.", "--json"]
    return CliRunner(env={"OPENAI_API_KEY": KEY}).invoke(cli, args)


@pytest.mark.slow
def test_config_sets_how_many_calls_a_run_keeps_in_flight_and_the_flag_overrides_it(
    tmp_path: Path, server: Counting
) -> None:
    configured = project(tmp_path / "configured", server, studio={"concurrency": 4})
    assert run(configured).exit_code == 0
    assert server.most == 4  # six sections, four at a time
    server.most = 0
    flagged = project(tmp_path / "flagged", server, studio={"concurrency": 4})
    assert run(flagged, "--concurrency", "2").exit_code == 0
    assert server.most == 2


def test_a_concurrency_out_of_range_is_refused_in_one_line(
    tmp_path: Path, server: Counting
) -> None:
    config = project(tmp_path, server)
    refused = run(config, "--concurrency", "0")
    assert refused.exit_code == 2 and "--concurrency" in refused.output
    assert "0 is not in the range 1<=x<=1024" in refused.output
    bad = project(tmp_path / "bad", server, studio={"concurrency": 0})
    error = run(bad).stderr.strip()
    assert error.startswith("Error:") and "studio.concurrency" in error and "\n" not in error
    assert server.requests == []
