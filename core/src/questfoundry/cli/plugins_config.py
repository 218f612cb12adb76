"""``questfoundry plugins`` and ``questfoundry config``."""

from __future__ import annotations

from typing import Any

import click

from questfoundry.cli.app import App, cli, json_option, pass_app, print_json, print_table


@cli.command()
@json_option
@pass_app
def plugins(app: App, as_json: bool) -> None:
    """List plugins: distribution, version, what each registers, and any that are disabled."""
    infos = app.manager.plugins()
    if as_json:
        print_json([info.__dict__ for info in infos])
        return
    rows = [
        (
            info.distribution,
            info.version,
            info.name,
            "\n".join(_registered(info.registers, info.descriptions)),
            f"disabled: {info.error}" if info.error else "ok",
        )
        for info in infos
    ]
    columns = ("distribution", "version", "plugin", "registers", "status")
    print_table("QuestFoundry plugins", columns, rows)


def _registered(registers: dict[str, list[str]], descriptions: dict[str, str]) -> list[str]:
    """One line per kind; a single backend with a description shows it, and so does each loop
    (one line each: what it makes)."""
    lines = []
    for kind, names in registers.items():
        if kind == "loop":
            made = {name: descriptions.get(f"loop {name}") for name in names}
            lines += [
                f"loop: {name}" + (f" — {about}" if about else "") for name, about in made.items()
            ]
            continue
        about = descriptions.get(f"{kind} {names[0]}") if len(names) == 1 else None
        lines.append(f"{kind}: {', '.join(names)}" + (f" ({about})" if about else ""))
    return lines


@cli.group()
def config() -> None:
    """Validate, show and describe config.yml."""


@config.command("validate")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@pass_app
def config_validate(app: App, path: str | None) -> None:
    """Check PATH (default: the project's config.yml) against the schema and installed plugins.

    Unlike other commands, it also fails on an environment variable that is not set, and when
    there is no config file at all.
    """
    from questfoundry.config import PROJECT_DIR_NAME, check_backends, load_config
    from questfoundry.contracts.errors import ConfigError

    loaded = load_config(path or app.config_path, manager=app.manager, overrides=app.overrides)
    if loaded.path is None and not loaded.overridden:
        raise ConfigError(
            f"no config file to validate: none in {PROJECT_DIR_NAME}/ here or in a parent "
            "folder; run `questfoundry init` to write one, or name one: `questfoundry config "
            "validate PATH`"
        )
    loaded.require_variables()
    check_backends(loaded, app.manager)
    where = loaded.path or "no config file; the --set values"
    click.echo(f"OK: {where} is valid" if loaded.path else f"OK: {where} are valid")


@config.command("show")
@click.option("--sources", is_flag=True, help="Say where each value came from.")
@json_option
@pass_app
def config_show(app: App, sources: bool, as_json: bool) -> None:
    """Print the configuration in effect, defaults applied, secrets redacted."""
    from questfoundry.config.effective import effective

    values, origins = effective(app.config, app.manager)
    shown = app.config.redacted(values)
    if as_json:
        print_json({"config": shown, "sources": origins} if sources else shown)
        return
    header = str(app.config.path or "no config file found; defaults apply")
    if app.config.overridden:
        header += f"; --set: {', '.join(sorted(app.config.overridden))}"
    click.echo(f"# {header}")
    for line in _yaml_lines(shown, (), origins if sources else None):
        click.echo(line)


@config.command("schema")
@pass_app
def config_schema(app: App) -> None:
    """Print the JSON Schema of config.yml, with the settings of every installed backend."""
    from questfoundry.config import load_schema

    print_json(load_schema(app.manager))


def _yaml_lines(
    value: dict[str, Any], path: tuple[str, ...], sources: dict[str, str] | None
) -> list[str]:
    """YAML of ``value``, one key per line, each leaf followed by ``# source`` when asked."""
    import yaml

    lines: list[str] = []
    indent = "  " * len(path)
    for key, item in value.items():
        here = (*path, str(key))
        if isinstance(item, dict) and item:
            lines.append(f"{indent}{key}:")
            lines.extend(_yaml_lines(item, here, sources))
            continue
        text = yaml.safe_dump(item, default_flow_style=True, width=10_000).strip()
        text = text.removesuffix("\n...").removesuffix("...").strip()
        origin = (sources or {}).get(".".join(here))
        lines.append(f"{indent}{key}: {text}" + (f"  # {origin}" if origin else ""))
    return lines
