"""``questfoundry cost report`` and ``questfoundry limits``."""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from questfoundry.cli.app import App, cli, json_option, pass_app, print_json, print_table
from questfoundry.kit.money import usd

#: a rate's period in seconds → its name
_PERIODS: dict[float, str] = {60: "minute", 3600: "hour"}


@cli.group()
def cost() -> None:
    """Report what the ledger recorded: money spent and saved."""


@cost.command("report")
@click.option(
    "--by",
    type=click.Choice(["provider", "model", "role", "day"]),
    default="provider",
    show_default=True,
    help="How to group the calls.",
)
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="Only calls on or after DATE.")
@json_option
@pass_app
def cost_report(app: App, by: str, since: Any, as_json: bool) -> None:
    """Spent, saved by the cache, calls and hit rate, grouped --by provider, model, role or day.

    Calls a crash left without their reply are counted at their estimated cost, and listed as
    ``unconfirmed``."""
    rows = app.runtime.ledger.report(by, since.date() if since else None)  # type: ignore[arg-type]
    if as_json:
        print_json([dataclasses.asdict(row) for row in rows])
        return
    # calls a crash left unanswered, counted at their estimate: a column only when there are any
    unconfirmed = ("unconfirmed",) if any(row.unconfirmed for row in rows) else ()
    print_table(
        f"Cost by {by}",
        (
            by,
            "calls",
            *unconfirmed,
            "hits",
            "hit rate",
            "tokens in",
            "tokens out",
            "spent",
            "saved",
        ),
        [
            (
                row.key,
                row.calls,
                *((row.unconfirmed,) if unconfirmed else ()),
                row.hits,
                f"{row.hit_rate:.0%}",
                row.input_tokens,
                row.output_tokens,
                usd(row.cost),
                usd(row.saved),
            )
            for row in rows
        ],
    )


@cli.command()
@json_option
@pass_app
def limits(app: App, as_json: bool) -> None:
    """Rate-limit buckets and cost budgets as they stand now."""
    runtime = app.runtime
    rows: list[dict[str, Any]] = []
    if runtime.limiter is not None:
        for level in runtime.limiter.levels():
            scope, unit = level.key.rsplit("/", 1)
            per = _PERIODS.get(level.period, f"{level.period:g} seconds")
            used = round(level.limit - level.available, 2)
            rows.append(
                {
                    "limit": f"{level.key} per {per}",
                    "scope": scope,
                    "period": per,
                    "used": used,
                    "of": level.limit,
                    "available": round(level.available, 2),
                    "unit": unit,
                }
            )
    if runtime.budgets is not None:
        for budget in runtime.budgets.levels():
            scope = budget.scope or "global"
            rows.append(
                {
                    "limit": f"{scope} cost per {budget.period}",
                    "scope": scope,
                    "period": budget.period,
                    "used": budget.spent,
                    "of": budget.limit,
                    "available": budget.available,
                    "unit": "usd",
                }
            )
    if as_json:  # counts as numbers, money as decimal strings, each limit by scope/period/unit
        print_json(rows)
    elif not rows:
        click.echo("No rate limits or budgets are configured (see rate_limiting in config.yml).")
    else:
        table = [
            [
                row["limit"],
                *(
                    usd(row[k]) if row["unit"] == "usd" else row[k]
                    for k in ("used", "of", "available")
                ),
            ]
            for row in rows
        ]
        print_table("Limits", ("limit", "used", "of", "available"), table)
