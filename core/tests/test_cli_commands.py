"""The maintenance commands: cache stats/clear/prune/explain, cost report, limits, plugins."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from questfoundry.cli import cli
from questfoundry.config import load_config
from questfoundry.contracts.records import Request, Usage
from questfoundry.ledger import Ledger
from questfoundry.registry import get_plugin_manager
from questfoundry.runtime import open_gateway
from questfoundry.testing.scripted import ScriptedProvider, scripted_plugin

CONFIG = """\
providers:
  text:
    default: scripted
    scripted:
      model: m1
roles:
  gatekeeper:
    model: m2
caching:
  backend: {backend}
rate_limiting:
  max_output_tokens: 100
  global:
    requests_per_minute: 100
    cost_per_day: 5
  providers:
    scripted:
      cost_per_input_token: 0.001
      cost_per_output_token: 0.002
"""


@pytest.fixture
def project(in_project: Callable[[str], Path]) -> Path:
    return in_project(CONFIG.format(backend="memory"))


def run(*args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def spend(project: Path, *prompts: str, role: str | None = None) -> None:
    """Make calls through a gateway on the project's config with a scripted provider."""
    manager = get_plugin_manager(plugins=[scripted_plugin(ScriptedProvider())])
    with open_gateway(load_config(project), manager) as gateway:
        for prompt in prompts:
            gateway.generate(Request(messages=[{"role": "user", "content": prompt}], role=role))


@pytest.mark.slow
def test_cost_report_groups_spend_and_savings(project: Path) -> None:
    spend(project, "a", "a", "b", role="gatekeeper")
    result = run("cost", "report", "--by", "role", "--json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    assert row["key"] == "gatekeeper" and row["calls"] == 3 and row["hits"] == 1
    assert row["cost"] == "0.144" and row["saved"] == "0.072"
    table = run("cost", "report", "--by", "day")
    assert table.exit_code == 0 and "Cost by day" in table.output


@pytest.mark.slow
def test_cost_report_shows_calls_a_crash_left_unconfirmed(project: Path) -> None:
    spend(project, "a")
    assert "unconfirmed" not in run("cost", "report").output
    ledger = Ledger(project.parent / "ledger.sqlite")
    ledger.intend("scripted", "m1", Usage(10, 100), Decimal("0.21"), role="gatekeeper")
    ledger.journal.close(remove=False)  # as a process killed mid-call leaves it

    table = run("cost", "report", "--by", "role")
    rows = json.loads(run("cost", "report", "--by", "role", "--json").output)

    assert "unconfirmed" in table.output
    (row,) = [row for row in rows if row["key"] == "gatekeeper"]
    assert (row["calls"], row["unconfirmed"], row["cost"]) == (1, 1, "0.21")


@pytest.mark.slow
def test_cost_report_since_a_future_date_is_empty(project: Path) -> None:
    spend(project, "a")
    result = run("cost", "report", "--since", "2999-01-01", "--json")
    assert json.loads(result.output) == []


@pytest.mark.slow
def test_limits_show_buckets_and_todays_spend(project: Path) -> None:
    spend(project, "a", "b")
    result = run("limits", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["limit"]: row for row in json.loads(result.output)}
    assert rows["global/requests per minute"]["of"] == 100
    assert rows["global/requests per minute"]["unit"] == "requests"
    budget = rows["global cost per day"]
    assert (budget["used"], budget["of"], budget["unit"]) == ("0.144", "5", "usd")
    table = run("limits")
    assert "$0.144" in table.output and "$5.00" in table.output


def test_limits_without_any_configured_says_so(project: Path) -> None:
    project.write_text("{}\n")
    result = run("limits")
    assert "No rate limits or budgets are configured" in result.output


def test_cache_explain_shows_the_fields_and_the_key(project: Path) -> None:
    result = run(
        "cache", "explain", "hello", "--role", "gatekeeper", "--param", "temperature=0.70", "--json"
    )
    assert result.exit_code == 0, result.output
    explained = json.loads(result.output)
    assert explained["fields"]["model"] == "m2"
    # the budget in CONFIG caps the output at rate_limiting.max_output_tokens, so it is sent
    assert explained["fields"]["params"] == {"temperature": 0.7, "max_tokens": 100}
    assert explained["key"].startswith(f"{project.parent.parent.name}:v1:")
    same = run("cache", "explain", "hello", "--role", "gatekeeper", "--param", "temperature=0.7")
    assert explained["key"] in same.output


def test_cache_explain_rejects_a_param_without_a_value(project: Path) -> None:
    result = CliRunner().invoke(cli, ["cache", "explain", "hi", "--param", "temperature"])
    assert result.exit_code != 0 and "KEY=VALUE" in result.output


@pytest.mark.slow
def test_cache_stats_clear_and_prune_on_the_file_cache(project: Path) -> None:
    pytest.importorskip("questfoundry_cache_file")
    project.write_text(
        CONFIG.format(backend="file").replace(
            "backend: file", "backend: file\n  cache_dir: .questfoundry/cache"
        )
    )
    spend(project, "a", "b", "b")
    stats = json.loads(run("cache", "stats", "--json").output)
    assert stats["backend"] == "file" and stats["entries"] == 2 and stats["bytes"] > 0
    assert "Pruned 0 items" in run("cache", "prune").output
    refused = run("cache", "clear", input="n\n")
    assert refused.exit_code == 1
    assert json.loads(run("cache", "stats", "--json").output)["entries"] == 2
    assert "Removed 2 entries" in run("cache", "clear", "--yes").output
    assert json.loads(run("cache", "stats", "--json").output)["entries"] == 0


def test_plugins_lists_the_builtins(project: Path) -> None:
    result = run("plugins", "--json")
    names = {info["name"]: info for info in json.loads(result.output)}
    assert names["builtin:memory_cache"]["registers"] == {"cache backend": ["memory"]}
    assert "token_bucket" in names["builtin:token_bucket"]["registers"]["limiter strategy"]


def test_an_unknown_backend_is_one_error_line(project: Path) -> None:
    project.write_text(CONFIG.format(backend="memroy"))
    result = CliRunner().invoke(cli, ["cache", "stats"])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1
    assert "did you mean 'memory'" in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_every_json_uses_one_set_of_types(project: Path) -> None:
    """Money as decimal strings, counts as numbers, limits as structured fields, everywhere."""
    spend(project, "a", "a", "b", role="gatekeeper")

    def data(*args: str) -> Any:
        result = run(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    (row,) = data("cost", "report", "--by", "role")
    assert all(isinstance(row[k], int) for k in ("calls", "hits", "input_tokens", "output_tokens"))
    assert all(isinstance(row[k], str) for k in ("cost", "saved")) and isinstance(
        row["hit_rate"], float
    )
    stats = data("cache", "stats")
    assert all(isinstance(stats[k], int) for k in ("entries", "bytes", "hits", "misses"))
    for limit in data("limits"):
        assert {"scope", "period", "unit"} <= set(limit) and limit["scope"] == "global"
        money = limit["unit"] == "usd"
        for key in ("used", "of", "available"):
            assert isinstance(limit[key], str if money else (int, float)), (limit, key)
    periods = {limit["unit"]: limit["period"] for limit in data("limits")}
    assert periods == {"requests": "minute", "usd": "day"}
    shown = data("config", "show")
    assert shown["rate_limiting"]["global"]["cost_per_day"] == 5
    assert shown["caching"]["ttl_seconds"] == 86400  # a default filled in: a number too
    # the command line has no provider "scripted" (only spend() registers it): roles exits 1
    # for a provider nothing installed provides, and prints its JSON all the same
    roles = {r["role"]: r for r in json.loads(run("roles", "--json").stdout)}
    assert roles["gatekeeper"]["model"] == "m2" and roles["gatekeeper"]["temperature"] is None
    assert all(isinstance(p["registers"], dict) for p in data("plugins"))


@pytest.mark.slow
def test_no_table_is_cut_when_output_is_not_a_terminal(project: Path) -> None:
    spend(project, "a", role="a_role_name_long_enough_to_need_a_wide_column_" + "x" * 80)
    result = run("cost", "report", "--by", "role")
    assert "a_role_name_long_enough_to_need_a_wide_column_" + "x" * 80 in result.stdout
    assert "…" not in result.stdout
    for args in (("limits",), ("plugins",), ("cache", "stats"), ("roles",)):
        assert "…" not in run(*args).stdout, args
