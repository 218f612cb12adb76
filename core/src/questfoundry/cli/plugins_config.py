"""``questfoundry plugins`` and ``questfoundry config``."""

from __future__ import annotations

import click

from questfoundry.cli.app import App, cli, json_option, pass_app, print_json, print_table


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
