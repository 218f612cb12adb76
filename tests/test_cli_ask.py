"""``questfoundry ask`` as a user runs it: a temporary project, a fake OpenAI, real HTTP.

The runs that are about processes — the first asks, a cache shared by two commands, an exit
status, the warning lines, four processes sharing a limit — are ``python -m questfoundry --config
PATH ...`` in a subprocess, so the command is tested with its real entry point, plugin discovery,
config loading and SDK, over real HTTP to :class:`~questfoundry.testing.fakes.FakeOpenAI` on
127.0.0.1. The others run the same command line in this process (``Project.invoke``), which
costs no interpreter start. The API key reaches the config through an environment variable, as
in a real project.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from textwrap import dedent

import genai_prices
import pytest

from questfoundry.kit.money import usd
from questfoundry.registry import get_plugin_manager
from questfoundry.testing.fakes import FakeOpenAI, reply_text

KEY_VAR = "QF_CLI_TEST_OPENAI_KEY"
SECRET_KEY = "sk-qf-cli-secret-5e2b77a1"
MODEL = "gpt-4o-mini"
PROMPT = "Where does the secret passage lead?"
#: the line ``ask`` writes to stderr after the reply
STATUS = re.compile(
    r"\[(?P<provider>\S+) (?P<model>\S+) · (?P<status>cached|not cached) · "
    r"(?P<input>\d+) in / (?P<output>\d+) out tokens · \$(?P<cost>[0-9.]+) · (?P<ms>\d+) ms\]"
)

FILE_CACHE = "file" in get_plugin_manager(env={}).backends("cache backend")
needs_file_cache = pytest.mark.skipif(
    not FILE_CACHE, reason="questfoundry-cache-file not installed"
)


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def status(self) -> re.Match[str]:
        """The one status line on stderr, parsed."""
        lines = self.stderr.splitlines()
        assert len(lines) == 1, self.stderr
        match = STATUS.fullmatch(lines[0])
        assert match is not None, lines[0]
        return match


@dataclass(frozen=True)
class Project:
    """A temporary project whose config points at a running fake server."""

    root: Path
    config: Path
    server: FakeOpenAI

    def run(self, *args: str) -> Run:
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith("QUESTFOUNDRY_") and name != "OPENAI_API_KEY"
        }
        env[KEY_VAR] = SECRET_KEY
        done = subprocess.run(
            [sys.executable, "-m", "questfoundry", "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            cwd=self.root,
            env=env,
            timeout=60,
            check=False,
        )
        assert SECRET_KEY not in done.stdout + done.stderr
        return Run(done.returncode, done.stdout, done.stderr)

    def invoke(self, *args: str) -> Run:
        """:meth:`run`'s command line, in this process (click's runner)."""
        from click.testing import CliRunner

        from questfoundry.cli import cli

        env = {KEY_VAR: SECRET_KEY, "QUESTFOUNDRY_CONFIG": None, "OPENAI_API_KEY": None}
        result = CliRunner(env=env).invoke(cli, ["--config", str(self.config), *args])
        assert SECRET_KEY not in result.stdout + result.stderr
        return Run(result.exit_code, result.stdout, result.stderr)


def make_project(root: Path, server: FakeOpenAI) -> Project:
    """config.yml with OpenAI at ``server``, a role of its own, and retries that wait milliseconds.

    A subprocess cannot be handed a fake clock, so the retry delays are made tiny instead.
    """
    folder = root / ".questfoundry"
    folder.mkdir(parents=True)
    config = folder / "config.yml"
    config.write_text(
        dedent(f"""\
            providers:
              text:
                default: openai
                openai:
                  api_key: ${{{KEY_VAR}}}
                  base_url: {server.base_url}
                  model: {MODEL}
            roles:
              plotwright:
                provider: openai
                model: gpt-4o
                temperature: 0.3
            caching:
              backend: {"file" if FILE_CACHE else "memory"}
            retry:
              initial_delay_ms: 1
              max_delay_ms: 5
            """),
        encoding="utf-8",
    )
    return Project(root, config, server)


def genai_price(model: str, input_tokens: int, output_tokens: int) -> Decimal:
    usage = genai_prices.Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    return genai_prices.calc_price(usage, model_ref=model, provider_id="openai").total_price


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    with FakeOpenAI() as server:
        yield make_project(tmp_path, server)


@dataclass(frozen=True)
class AskedTwice:
    project: Project
    first: Run
    second: Run
    requests_after_first: int


@pytest.fixture(scope="module")
def asked_twice(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AskedTwice]:
    """One project where the same prompt was asked twice; tests only read from it."""
    with FakeOpenAI() as server:
        project = make_project(tmp_path_factory.mktemp("asked"), server)
        first = project.run("ask", PROMPT)
        requests_after_first = len(server.requests)
        second = project.run("ask", PROMPT)
        yield AskedTwice(project, first, second, requests_after_first)


# ---------------------------------------------------------------------- ask


@pytest.mark.slow
def test_ask_prints_the_reply_then_one_line_about_the_call(asked_twice: AskedTwice) -> None:
    first = asked_twice.first

    assert first.returncode == 0, first.stderr
    assert first.stdout == reply_text(PROMPT, MODEL) + "\n"
    status = first.status
    assert [status["provider"], status["model"], status["status"]] == [
        "openai",
        MODEL,
        "not cached",
    ]
    price = genai_price(MODEL, int(status["input"]), int(status["output"]))
    assert price > 0 and "$" + status["cost"] == usd(price)
    assert asked_twice.requests_after_first == 1


def test_second_ask_of_the_same_prompt_is_answered_from_the_cache(asked_twice: AskedTwice) -> None:
    first, second = asked_twice.first, asked_twice.second

    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert second.status["status"] == "cached"
    assert second.status["cost"] == "0.00"
    assert (second.status["input"], second.status["output"]) == (
        first.status["input"],
        first.status["output"],
    )
    assert len(asked_twice.project.server.requests) == asked_twice.requests_after_first


def test_ask_with_a_role_uses_the_roles_model_and_parameters(project: Project) -> None:
    run = project.invoke("ask", "--role", "plotwright", "Outline act two.")

    assert run.returncode == 0, run.stderr
    assert run.stdout == reply_text("Outline act two.", "gpt-4o") + "\n"
    assert run.status["model"] == "gpt-4o"
    [sent] = project.server.requests
    assert (sent.body["model"], sent.body["temperature"]) == ("gpt-4o", 0.3)


def test_ask_with_provider_and_model_overrides_the_default(project: Project) -> None:
    run = project.invoke("ask", "--provider", "openai", "--model", "gpt-4.1-mini", "Name the inn.")

    assert run.returncode == 0, run.stderr
    assert (run.status["provider"], run.status["model"]) == ("openai", "gpt-4.1-mini")
    [sent] = project.server.requests
    assert sent.body["model"] == "gpt-4.1-mini"


@pytest.mark.slow
def test_ask_with_the_provider_down_prints_one_error_line_and_exits_1(project: Project) -> None:
    project.server.stop()

    run = project.run("ask", "Is anyone there?")

    assert run.returncode == 1
    assert run.stdout == ""
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), run.stderr
    assert "openai" in lines[0]
    assert "Traceback" not in run.stderr


# ---------------------------------------------------------------------- what the asks left behind


def test_cost_report_shows_the_call_and_the_hit(asked_twice: AskedTwice) -> None:
    run = asked_twice.project.invoke("cost", "report", "--json")

    assert run.returncode == 0, run.stderr
    [row] = json.loads(run.stdout)
    status = asked_twice.first.status
    price = genai_price(MODEL, int(status["input"]), int(status["output"]))
    assert (row["key"], row["calls"], row["hits"], row["hit_rate"]) == ("openai", 2, 1, 0.5)
    assert (row["input_tokens"], row["output_tokens"]) == (
        int(status["input"]),
        int(status["output"]),
    )
    assert Decimal(row["cost"]) == price
    assert Decimal(row["saved"]) == price
    assert row["unknown_cost_calls"] == 0


@needs_file_cache
def test_cache_stats_counts_the_stored_reply(asked_twice: AskedTwice) -> None:
    run = asked_twice.project.invoke("cache", "stats", "--json")

    assert run.returncode == 0, run.stderr
    stats = json.loads(run.stdout)
    assert (stats["backend"], stats["entries"]) == ("file", 1)
    assert stats["bytes"] > 0


# ---------------------------------------------------------------------- shared by every process


@pytest.mark.slow
def test_ask_twice_with_the_default_cache_hits_the_second_time(tmp_path: Path) -> None:
    with FakeOpenAI() as server:
        project = make_project(tmp_path, server)
        text = project.config.read_text().replace(
            f"caching:\n  backend: {'file' if FILE_CACHE else 'memory'}\n", ""
        )
        project.config.write_text(text)
        assert "caching" not in text
        first = project.run("ask", PROMPT)
        second = project.run("ask", PROMPT)
    assert first.status["status"] == "not cached"
    assert second.status["status"] == ("cached" if FILE_CACHE else "not cached")
    assert len(server.requests) == (1 if FILE_CACHE else 2)


#: one worker process that runs ``questfoundry ask`` five times, as five commands would
ASK_FIVE_TIMES = """
import sys
from questfoundry.cli import main
for n in range(5):
    try:
        main(["--config", sys.argv[1], "ask", f"question {sys.argv[2]}.{n}"])
    except SystemExit as exit:
        print("exit", exit.code, file=sys.stderr)
"""


@pytest.mark.soak  # four real questfoundry processes
def test_four_processes_asking_five_times_share_one_limit_of_ten_a_minute(
    tmp_path: Path,
) -> None:
    with FakeOpenAI() as server:
        project = make_project(tmp_path, server)
        with project.config.open("a", encoding="utf-8") as config:
            config.write("rate_limiting:\n  max_wait_seconds: 1\n")
            config.write("  global:\n    requests_per_minute: 10\n")
        env = {**os.environ, KEY_VAR: SECRET_KEY}
        started = time.monotonic()
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", ASK_FIVE_TIMES, str(project.config), str(worker)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for worker in range(4)
        ]
        errors = "".join(worker.communicate(timeout=120)[1] for worker in workers)
        elapsed = time.monotonic() - started
        sent = len(server.requests)
    # ten at once, then one more every six seconds the run lasted (20 if each process had its own)
    allowed = 10 + int(elapsed / 6)
    assert sent <= allowed, f"the provider saw {sent} requests in {elapsed:.1f}s; {allowed} allowed"
    assert errors.count("exit 0") == sent >= 10
    assert errors.count("rate limit reached") == 20 - sent
    assert "Traceback" not in errors


@pytest.mark.slow
def test_a_broken_file_cache_costs_one_warning_line_and_the_ask_still_answers(
    project: Project,
) -> None:
    if not FILE_CACHE:
        pytest.skip("questfoundry-cache-file not installed")
    (project.root / "not-a-folder").write_text("", encoding="utf-8")
    text = project.config.read_text(encoding="utf-8")
    text = text.replace("backend: file\n", "backend: file\n  cache_dir: not-a-folder\n")
    project.config.write_text(text, encoding="utf-8")
    run = project.run("ask", PROMPT)
    assert run.returncode == 0 and run.stdout == reply_text(PROMPT, MODEL) + "\n"
    warning, status = run.stderr.splitlines()
    assert warning.startswith("Warning: file cache ") and "not a folder" in warning
    assert STATUS.fullmatch(status)
