"""``questfoundry roles``: every role of the catalogue, its settings, and where each came from."""

from __future__ import annotations

from typing import Any

import click

from questfoundry.cli.app import App, cli, json_option, line, pass_app, print_json, print_table

#: the parameters shown in their own column (every parameter is in the JSON)
SHOWN = ("temperature", "max_tokens")


@cli.command()
@json_option
@pass_app
def roles(app: App, as_json: bool) -> None:
    """Each role: kind, provider, model, temperature, max_tokens, and the source of each value
    (--set, roles.<role>, providers.<kind>.<provider>, providers.<kind>.default, role catalogue).

    A role that cannot resolve (no provider configured, or one not installed) is listed with the
    reason; a provider or other backend the config names that is not installed also makes the
    command exit with status 1.
    """
    rows = role_rows(app)
    if as_json:
        print_json(rows)
        _refuse(app)
        return
    columns = ("role", "kind", "provider", "model", *SHOWN, "from")
    table = [
        (
            row["role"],
            row["kind"],
            row["provider"] or "—",
            row["model"] or "—",
            *("—" if row[name] is None else row[name] for name in SHOWN),
            row["error"] or "\n".join(f"{k}: {v}" for k, v in row["sources"].items()),
        )
        for row in rows
    ]
    print_table("Roles", columns, table)
    _refuse(app)


def _refuse(app: App) -> None:
    """Exit status 1, with the one line that names it, when the config names a backend no
    installed plugin provides (a misspelt provider): a role merely left without a provider (no
    image provider configured, say) is a choice, and its row says what to set."""
    from questfoundry.config import check_backends
    from questfoundry.contracts.errors import ConfigError

    try:
        check_backends(app.config, app.manager)
    except ConfigError as exc:
        click.echo(line(f"Error: {exc}"), err=True)
        click.get_current_context().exit(1)


def role_rows(app: App) -> list[dict[str, Any]]:
    """One record per role of the catalogue, in catalogue order; ``error`` says why a role
    cannot be used (None when it can)."""
    from questfoundry.config.effective import resolved_roles
    from questfoundry.contracts.errors import ConfigError

    catalogue = app.manager.roles()
    configured = app.config.data.get("roles") or {}
    rows: list[dict[str, Any]] = []
    for name, routed in resolved_roles(app.config, app.manager).items():
        if isinstance(routed, ConfigError):
            kind = (configured.get(name) or {}).get("kind") or catalogue[name].kind
            provider: str | None = None
            model: str | None = None
            params: dict[str, Any] = {}
            sources: dict[str, str] = {}
            error: str | None = str(routed)
        else:
            kind, provider, model = routed.kind, routed.provider, routed.model
            params, sources = dict(routed.params), dict(routed.sources)
            error = _missing(app, routed.provider)
        rows.append(
            {
                "role": name,
                "kind": kind,
                "provider": provider,
                "model": model,
                **{key: params.get(key) for key in SHOWN},
                "params": params,
                "sources": sources,
                "error": error,
                "description": catalogue[name].description,
            }
        )
    return rows


def _missing(app: App, provider: str) -> str | None:
    """Why ``provider`` cannot be used (it is not installed, or disabled), or None."""
    from questfoundry.contracts.errors import PluginNotFoundError

    try:
        app.manager.get("provider", provider)
    except PluginNotFoundError as exc:
        return str(exc)
    return None
