"""``questfoundry cache``: stats, clear, prune, explain."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from questfoundry.cli.app import App, cli, json_option, pass_app, print_json, print_table


@cli.group()
def cache() -> None:
    """Inspect and maintain the response cache."""


@cache.command("stats")
@json_option
@pass_app
def cache_stats(app: App, as_json: bool) -> None:
    """Entries and size of the cache; its calls, hits and misses; and the backend's lookups.

    ``calls`` are the project's calls to providers whose replies are cached, as the ledger (and
    so ``cost report``) counts them: ``hits`` were answered without the provider (from the cache,
    or by an identical call in flight), ``misses`` were not. ``lookups`` counts the backend's
    reads, which are more: a miss looks again after taking its key's lock, a caller waiting on
    another process's call looks until the answer lands.
    """
    backend, name = _cache(app)
    stats = backend.stats()
    calls, hits = _cached_calls(app)
    data = {
        "backend": name,
        "entries": stats.entries,
        "bytes": stats.bytes,
        "calls": calls,
        "hits": hits,
        "misses": calls - hits,
        "lookups": stats.hits + stats.misses,
    }
    if as_json:
        print_json(data)
        return
    print_table("Cache", tuple(data), [list(data.values())])


@cache.command("clear")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def cache_clear(app: App, yes: bool) -> None:
    """Remove every cached reply (the ledger keeps its history)."""
    backend, name = _cache(app)
    if not yes:
        click.confirm(f"Remove every entry of the {name} cache?", abort=True)
    removed = backend.clear()
    click.echo(f"Removed {removed} entries from the {name} cache.")


@cache.command("prune")
@pass_app
def cache_prune(app: App) -> None:
    """Remove expired entries and files left behind by crashes."""
    backend, name = _cache(app)
    removed = backend.prune()
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
    from questfoundry.gateway.keys import request_fields

    plan = app.runtime.gateway.plan(_request(app, prompt, role, provider, model, params))
    fields = request_fields(plan.provider, plan.request)
    key = plan.key or "(caching is off for this provider)"
    if as_json:
        print_json({"fields": fields, "key": key})
        return
    print_json(fields)
    click.echo(f"key: {key}")


def _cached_calls(app: App) -> tuple[int, int]:
    """Calls and hits the ledger recorded for providers whose replies are cached."""
    runtime = app.runtime
    per_provider = runtime.config.get("caching.per_provider") or {}
    rows = [
        row
        for row in runtime.ledger.report("provider")
        if (per_provider.get(row.key) or {}).get("enabled", True)
    ]
    return sum(row.calls for row in rows), sum(row.hits for row in rows)


def _cache(app: App) -> tuple[Any, str]:
    """The project's cache backend and its name; a clear error when caching is off."""
    from questfoundry.contracts.errors import ConfigError

    backend = app.runtime.cache
    if backend is None:
        raise ConfigError("caching is disabled", path="caching.enabled")
    return backend, app.runtime.cache_backend_name


def _request(
    app: App,
    prompt: str,
    role: str | None,
    provider: str | None,
    model: str | None,
    params: Sequence[str] = (),
    system: str | None = None,
) -> Any:
    """The request ``ask`` and ``cache explain`` make: PROMPT, optional system text, parameters
    given as ``KEY=VALUE`` (each VALUE read as YAML). A ``role`` the catalogue lacks is refused,
    with the nearest name: answering as a made-up role would hide a typo."""
    from questfoundry.config.overrides import parse_assignments
    from questfoundry.contracts.records import Request

    if role is not None:
        app.known_role(role)
    values = parse_assignments(params, "--param")
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    return Request(messages=messages, role=role, provider=provider, model=model, params=values)
