"""Numbers that agree: ``cache stats`` counts calls as the cost report does, money reads the
same in every report, and a per-provider TTL really expires that provider's replies."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from questfoundry.cli import cli
from questfoundry.config import Config, load_config
from questfoundry.contracts.records import Request
from questfoundry.kit.money import usd
from questfoundry.registry import get_plugin_manager
from questfoundry.runtime import open_gateway
from questfoundry.studio.report import RoleUsage, RunReport
from questfoundry.testing.clock import FakeClock
from questfoundry.testing.scripted import ScriptedProvider, scripted_plugin

CONFIG = """\
providers:
  text:
    default: scripted
    scripted:
      model: m1
caching:
  backend: {backend}
rate_limiting:
  max_output_tokens: 100
  global:
    cost_per_day: 5
  providers:
    scripted:
      cost_per_input_token: 0.001
      cost_per_output_token: 0.002
"""


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def spend(project: Path, *prompts: str) -> None:
    """Calls through a gateway on the project's config, to a scripted provider (each $0.072)."""
    manager = get_plugin_manager(plugins=[scripted_plugin(ScriptedProvider())])
    with open_gateway(load_config(project), manager) as gateway:
        for prompt in prompts:
            gateway.generate(Request(messages=[{"role": "user", "content": prompt}]))


@pytest.mark.slow
def test_cache_stats_counts_calls_not_lookups(in_project: Callable[[str], Path]) -> None:
    project = in_project(CONFIG.format(backend="file"))
    spend(project, "a", "a", "b", "b", "c")  # 5 calls: 3 reach the provider, 2 are hits
    result = run("cache", "stats", "--json")
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert (stats["calls"], stats["hits"], stats["misses"]) == (5, 2, 3)
    assert stats["lookups"] >= stats["calls"]  # a miss may look twice (after taking its lock)
    report = json.loads(run("cost", "report", "--json").output)
    assert (sum(r["calls"] for r in report), sum(r["hits"] for r in report)) == (5, 2)
    table = run("cache", "stats").output
    assert "calls" in table and "lookups" in table


def test_calls_of_a_provider_whose_replies_are_not_cached_are_left_out(
    in_project: Callable[[str], Path],
) -> None:
    uncached = "  backend: file\n  per_provider:\n    scripted:\n      enabled: false\n"
    project = in_project(CONFIG.format(backend="file").replace("  backend: file\n", uncached))
    spend(project, "a", "a")
    stats = json.loads(run("cache", "stats", "--json").output)
    assert (stats["calls"], stats["hits"], stats["misses"]) == (0, 0, 0)


@pytest.mark.slow
def test_money_reads_the_same_in_every_report(in_project: Callable[[str], Path]) -> None:
    project = in_project(CONFIG.format(backend="memory"))
    spend(project, "a", "b")  # $0.144 in all
    shown = usd(Decimal("0.144"))
    assert shown == "$0.144"
    assert shown in run("cost", "report").output
    assert shown in run("limits").output
    usage = RoleUsage("scene_smith", "scripted", "m1", calls=2, cost=Decimal("0.144"))
    (row,) = RunReport("r", "loop", 1, "done", False, [usage]).rows()[:1]
    assert row[RunReport.COLUMNS.index("cost")] == shown


@pytest.mark.parametrize(
    ("amount", "shown"),
    [("0", "$0.00"), ("5", "$5.00"), ("0.144", "$0.144"), ("0.000012", "$0.000012")],
)
def test_the_one_money_format(amount: str, shown: str) -> None:
    assert usd(Decimal(amount)) == shown


def test_a_per_provider_ttl_expires_that_provider_s_replies_only(tmp_path: Path) -> None:
    first, second = ScriptedProvider(), ScriptedProvider()
    data = {
        "providers": {
            "text": {"default": "first", "first": {"model": "m"}, "second": {"model": "m"}}
        },
        "caching": {
            "backend": "memory",
            "ttl_seconds": 3600,
            "per_provider": {"first": {"ttl_seconds": 60}},
        },
    }
    plugins = [scripted_plugin(first, "first"), scripted_plugin(second, "second")]
    clock = FakeClock()
    config = Config(data, None, tmp_path / ".questfoundry", frozenset())
    with open_gateway(
        config, get_plugin_manager(entry_points=False, plugins=plugins), clock=clock
    ) as gateway:

        def ask(provider: str) -> bool:
            return gateway.generate(Request(prompt="same", provider=provider)).cache_hit

        assert not ask("first") and not ask("second")
        clock.advance(59)
        assert ask("first") and ask("second")
        clock.advance(2)  # 61 s: past the first's 60 s, well within the global hour
        assert not ask("first")
        assert ask("second")
    assert (first.calls, second.calls) == (2, 1)
