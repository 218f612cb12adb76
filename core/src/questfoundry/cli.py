"""The ``questfoundry`` command.

Every QuestFoundryError becomes one line on stderr and exit status 1; ``--debug`` shows the
traceback instead. Heavy imports (rich, yaml, jsonschema, plugins) happen inside the commands, so
``questfoundry --help`` stays fast.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from questfoundry.config import Config
    from questfoundry.gateway import Gateway
    from questfoundry.interfaces import BackendContext, CacheBackend
    from questfoundry.plugins import PluginManager

F = TypeVar("F", bound=Callable[..., Any])


class App:
    """What the commands share: the options of the top-level command, loaded on first use."""

    def __init__(self, config_path: str | None, debug: bool) -> None:
        self.config_path = config_path
        self.debug = debug

    @cached_property
    def manager(self) -> PluginManager:
        from questfoundry.plugins import get_plugin_manager

        return get_plugin_manager()

    @cached_property
    def config(self) -> Config:
        from questfoundry.config import load_config

        return load_config(self.config_path)

    def context(self) -> BackendContext:
        from questfoundry.interfaces import BackendContext

        return BackendContext(self.config.project_dir, self.config.namespace)

    def cache_backend(self) -> tuple[CacheBackend, str]:
        settings = self.config.section("caching")
        name = settings.get("backend", "memory")
        return self.manager.create("cache backend", name, settings, self.context()), name

    def gateway(self) -> Gateway:
        from questfoundry.gateway import Gateway

        return Gateway.from_config(self.config, self.manager)


pass_app = click.make_pass_decorator(App)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(
        func
    )


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    Console().print(table)


class QuestFoundryGroup(click.Group):
    """Turns QuestFoundry's errors into one line unless ``--debug`` is given."""

    def invoke(self, ctx: click.Context) -> Any:
        from questfoundry.errors import QuestFoundryError

        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            try:
                return super().invoke(ctx)
            except QuestFoundryError as exc:
                if _debug(ctx):
                    raise
                click.echo(f"Error: {exc}", err=True)
                ctx.exit(1)
            except (OSError, ValueError) as exc:
                if _debug(ctx):
                    raise
                click.echo(f"Error: {exc} (run with --debug for details)", err=True)
                ctx.exit(1)


def _debug(ctx: click.Context) -> bool:
    return bool(ctx.obj and ctx.obj.debug)


def _show_warning(message: Any, category: Any, *_args: Any, **_kwargs: Any) -> None:
    click.echo(f"Warning: {message}", err=True)


@click.group(cls=QuestFoundryGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    envvar="QUESTFOUNDRY_CONFIG",
    help="config.yml to use (default: .questfoundry/config.yml here or in a parent folder).",
)
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.version_option(package_name="questfoundry")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, debug: bool) -> None:
    """QuestFoundry: caching, rate limits, budgets and a cost ledger between AI roles and LLMs.

    Configuration lives in .questfoundry/config.yml; see `questfoundry config --help`.
    """
    ctx.obj = App(config_path, debug)


@cli.command()
@json_option
@pass_app
def plugins(app: App, as_json: bool) -> None:
    """List installed plugins: distribution, version, and what each registers."""
    infos = app.manager.plugins()
    if as_json:
        print_json([info.__dict__ for info in infos])
        return
    rows = [
        (
            info.distribution,
            info.version,
            info.name,
            "\n".join(f"{kind}: {', '.join(names)}" for kind, names in info.registers.items()),
        )
        for info in infos
    ]
    print_table("QuestFoundry plugins", ("distribution", "version", "plugin", "registers"), rows)


@cli.group()
def config() -> None:
    """Validate, show and describe config.yml."""


@config.command("validate")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@pass_app
def config_validate(app: App, path: str | None) -> None:
    """Check PATH (default: the project's config.yml) against the schema and installed plugins."""
    from questfoundry.config import check_backends, load_config

    loaded = load_config(path or app.config_path)
    check_backends(loaded, app.manager)
    where = loaded.path or "no config file; defaults apply"
    click.echo(f"OK: {where} is valid")


@config.command("show")
@json_option
@pass_app
def config_show(app: App, as_json: bool) -> None:
    """Print the configuration in effect, with secrets redacted."""
    data = app.config.redacted()
    if as_json:
        print_json(data)
        return
    import yaml

    click.echo(f"# {app.config.path or 'no config file found; defaults apply'}")
    click.echo(yaml.safe_dump(data, sort_keys=False).rstrip() if data else "{}")


@config.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of config.yml."""
    from questfoundry.config import load_schema

    print_json(load_schema())


# --------------------------------------------------------------------------- cache


@cli.group()
def cache() -> None:
    """Inspect and maintain the response cache."""


@cache.command("stats")
@json_option
@pass_app
def cache_stats(app: App, as_json: bool) -> None:
    """Entries, size, hits and misses of the configured cache backend."""
    backend, name = app.cache_backend()
    stats = backend.stats()
    backend.close()
    data = {"backend": name, **dataclasses.asdict(stats)}
    if as_json:
        print_json(data)
        return
    print_table("Cache", ("backend", "entries", "bytes", "hits", "misses"), [list(data.values())])


@cache.command("clear")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def cache_clear(app: App, yes: bool) -> None:
    """Remove every cached reply (the ledger keeps its history)."""
    backend, name = app.cache_backend()
    if not yes:
        click.confirm(f"Remove every entry of the {name} cache?", abort=True)
    removed = backend.clear()
    backend.close()
    click.echo(f"Removed {removed} entries from the {name} cache.")


@cache.command("prune")
@pass_app
def cache_prune(app: App) -> None:
    """Remove expired entries and files left behind by crashes."""
    backend, name = app.cache_backend()
    removed = backend.prune()
    backend.close()
    click.echo(f"Pruned {removed} items from the {name} cache.")


@cache.command("explain")
@click.argument("prompt")
@click.option("--role", help="Role whose provider, model and parameters apply.")
@click.option("--provider", help="Provider to use instead of the role's.")
@click.option("--model", help="Model to use instead of the role's.")
@click.option(
    "--param", "params", multiple=True, metavar="KEY=VALUE", help="A parameter (repeatable)."
)
@json_option
@pass_app
def cache_explain(
    app: App,
    prompt: str,
    role: str | None,
    provider: str | None,
    model: str | None,
    params: tuple[str, ...],
    as_json: bool,
) -> None:
    """Show the canonical fields that make PROMPT's cache key, and the key."""
    from questfoundry.keys import request_fields

    with app.gateway() as gateway:
        request = _request(prompt, role, provider, model, params)
        plan = gateway.plan(request)
        fields = request_fields(plan.provider, plan.request)
        key = plan.key or "(caching is off for this provider)"
    if as_json:
        print_json({"fields": fields, "key": key})
        return
    print_json(fields)
    click.echo(f"key: {key}")


def _request(
    prompt: str,
    role: str | None,
    provider: str | None,
    model: str | None,
    params: Sequence[str] = (),
) -> Any:
    import yaml

    from questfoundry.calls import Request

    values: dict[str, Any] = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--param")
        values[key] = yaml.safe_load(value)
    messages = [{"role": "user", "content": prompt}]
    return Request(messages=messages, role=role, provider=provider, model=model, params=values)


# --------------------------------------------------------------------------- cost and limits


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
    """Spent, saved by the cache, calls and hit rate, grouped --by provider, model, role or day."""
    from questfoundry.gateway import open_ledger

    with open_ledger(app.config) as ledger:
        rows = ledger.report(by, since.date() if since else None)  # type: ignore[arg-type]
    if as_json:
        print_json([dataclasses.asdict(row) for row in rows])
        return
    print_table(
        f"Cost by {by}",
        (by, "calls", "hits", "hit rate", "tokens in", "tokens out", "spent $", "saved $"),
        [
            (
                row.key,
                row.calls,
                row.hits,
                f"{row.hit_rate:.0%}",
                row.input_tokens,
                row.output_tokens,
                row.cost,
                row.saved,
            )
            for row in rows
        ],
    )


@cli.command()
@json_option
@pass_app
def limits(app: App, as_json: bool) -> None:
    """Rate-limit buckets and cost budgets as they stand now."""
    from questfoundry.gateway import open_ledger
    from questfoundry.limits import budgets_from, rates_from

    settings = app.config.section("rate_limiting")
    rows: list[dict[str, Any]] = []
    rates = rates_from(settings)
    if rates:
        limiter = app.manager.create(
            "limiter strategy",
            settings.get("backend", "token_bucket"),
            {**settings, "rates": rates},
            app.context(),
        )
        for level in limiter.levels():
            per = "minute" if level.period == 60 else "hour"
            rows.append(
                {
                    "limit": f"{level.key} per {per}",
                    "used": level.limit - level.available,
                    "of": level.limit,
                    "available": level.available,
                }
            )
        limiter.close()
    budgets = budgets_from(settings)
    if budgets:
        with open_ledger(app.config) as ledger:
            for budget in budgets:
                spent = ledger.spent(budget.scope, budget.period)
                rows.append(
                    {
                        "limit": f"{budget.scope or 'global'} cost per {budget.period} ($)",
                        "used": f"{spent:.4f}",
                        "of": f"{budget.limit:.2f}",
                        "available": f"{budget.limit - spent:.4f}",
                    }
                )
    if as_json:
        print_json(rows)
    elif not rows:
        click.echo("No rate limits or budgets are configured (see rate_limiting in config.yml).")
    else:
        table = [list(row.values()) for row in rows]
        print_table("Limits", ("limit", "used", "of", "available"), table)


# --------------------------------------------------------------------------- ask


@cli.command()
@click.argument("prompt")
@click.option("--role", help="Role whose provider, model and parameters apply.")
@click.option("--provider", help="Provider to use (with --model) instead of a role's.")
@click.option("--model", help="Model to use.")
@click.option(
    "--cache",
    type=click.Choice(["default", "refresh", "no-store", "off"]),
    default="default",
    show_default=True,
    help="How this request uses the cache.",
)
@pass_app
def ask(
    app: App, prompt: str, role: str | None, provider: str | None, model: str | None, cache: str
) -> None:
    """Send PROMPT through the gateway and print the reply, then one line about the call."""
    from dataclasses import replace

    with app.gateway() as gateway:
        request = replace(_request(prompt, role, provider, model), cache=cache)
        reply = gateway.generate(request)
    if reply.image is not None:
        click.echo(f"<image: {len(reply.image)} bytes>")
    else:
        click.echo(reply.text)
    cost = "unknown" if reply.cost is None else f"${reply.cost:.6f}"
    status = "cached" if reply.cache_hit else "not cached"
    tokens = f"{reply.usage.input_tokens} in / {reply.usage.output_tokens} out"
    click.echo(
        f"[{reply.provider} {reply.model} · {status} · {tokens} tokens · {cost} · "
        f"{reply.latency * 1000:.0f} ms]",
        err=True,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``questfoundry`` console script."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="questfoundry")


if __name__ == "__main__":  # pragma: no cover
    main()
