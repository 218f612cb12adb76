"""How many calls a run keeps in flight is the user's to set (issue 21, item 1):
``studio.concurrency`` in config.yml, ``run --concurrency N`` for one run; the provider sees no
more than that at once.

The fake OpenAI server here counts the requests it is answering at the same moment, each held a
moment, so the count is what a real provider would have seen.
"""

from __future__ import annotations

import threading
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
    """The fake OpenAI server, noting the most chat requests it was ever answering at once.

    Each request is held until :attr:`expect` are in (or a quarter of a second has passed), so
    on a busy machine every call the studio lets out has arrived before any is answered.
    """

    def __init__(self) -> None:
        super().__init__()
        self.answering = 0
        self.most = 0
        self.expect = 1
        self._arrived = threading.Condition()

    def routes(self) -> dict[tuple[str, str], Handler]:
        routes = super().routes()
        chat = ("POST", r"/v1/chat/completions")
        answer = routes[chat]

        def counted(request: RecordedRequest) -> Response:
            with self._arrived:
                self.answering += 1
                self.most = max(self.most, self.answering)
                self._arrived.notify_all()
                self._arrived.wait_for(lambda: self.answering >= self.expect, timeout=0.25)
            try:
                return answer(request)
            finally:
                with self._arrived:
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
    server.expect = 4
    assert run(configured).exit_code == 0
    assert server.most == 4  # six sections, four at a time
    server.most, server.expect = 0, 2
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
