"""What every ``questfoundry`` command shares: the top-level group, the app object, output helpers.

Every QuestFoundryError becomes one line on stderr and exit status 1; ``--debug`` shows the
traceback instead, API keys masked. An error or warning line is at most :data:`MAX_LINE`
characters; ``--debug`` shows the rest. Heavy imports (rich, yaml, jsonschema, plugins) happen
inside the commands, so ``questfoundry --help`` stays fast.
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from questfoundry.config import Config
    from questfoundry.registry import PluginManager
    from questfoundry.runtime import Runtime

F = TypeVar("F", bound=Callable[..., Any])


class App:
    """What the commands share: the options of the top-level command, loaded on first use."""

    def __init__(self, config_path: str | None, debug: bool, sets: Sequence[str] = ()) -> None:
        self.config_path = config_path
        self.debug = debug
        self.sets = tuple(sets)

    @cached_property
    def overrides(self) -> dict[str, Any]:
        """``--set KEY=VALUE`` options as dotted keys and their YAML values, later ones winning."""
        from questfoundry.config.overrides import parse_assignments

        return parse_assignments(self.sets, "--set")

    @cached_property
    def manager(self) -> PluginManager:
        from questfoundry.registry import get_plugin_manager

        return get_plugin_manager()

    @cached_property
    def config(self) -> Config:
        from questfoundry.config import load_config

        return load_config(self.config_path, manager=self.manager, overrides=self.overrides)

    def known_role(self, name: str) -> None:
        """Refuse ``name`` unless the role catalogue has it, naming the nearest role."""
        import difflib

        from questfoundry.contracts.errors import ConfigError

        catalogue = sorted(self.manager.roles())
        if name not in catalogue:
            close = difflib.get_close_matches(name, catalogue, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"unknown role {name!r}; {hint}(roles: {', '.join(catalogue)})")

    def without_config(self) -> bool:
        """Whether the command ran with no config file and no ``--set`` (config already read)."""
        config = vars(self).get("config")
        return config is not None and config.path is None and not config.overridden

    @cached_property
    def runtime(self) -> Runtime:
        """The project's runtime; closed when the command ends."""
        from questfoundry.runtime import Runtime

        runtime = Runtime(self.config, self.manager)
        click.get_current_context().call_on_close(runtime.close)
        return runtime


pass_app = click.make_pass_decorator(App)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(
        func
    )


def print_json(data: Any) -> None:
    """``data`` as indented JSON; money (a Decimal) as a plain decimal string, never ``1E-7``."""
    click.echo(json.dumps(data, indent=2, default=_json_value, ensure_ascii=False))


def _json_value(value: Any) -> Any:
    from decimal import Decimal

    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    # piped or redirected: never cut a cell to fit a terminal that is not there
    Console(width=None if sys.stdout.isatty() else 10_000).print(table)


#: top-level options also accepted after a subcommand: flags, and options taking a value
GLOBAL_FLAGS = ("--debug",)
GLOBAL_OPTIONS = ("--set",)


def hoist_global_options(args: Sequence[str]) -> list[str]:
    """``args`` with every :data:`GLOBAL_FLAGS` and :data:`GLOBAL_OPTIONS` (and its value) moved
    to the front, in their order, so ``questfoundry ask --debug …`` means ``questfoundry --debug
    ask …``. Nothing after ``--`` moves."""
    front: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            rest.extend(args[index:])
            break
        if arg in GLOBAL_FLAGS or arg.startswith(tuple(f"{o}=" for o in GLOBAL_OPTIONS)):
            front.append(arg)
        elif arg in GLOBAL_OPTIONS and index + 1 < len(args):
            front.extend(args[index : index + 2])
            index += 1
        else:
            rest.append(arg)
        index += 1
    return front + rest


class QuestFoundryGroup(click.Group):
    """Turns QuestFoundry's errors into one line unless ``--debug`` is given; takes ``--debug``
    and ``--set`` after a subcommand too."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if ctx.parent is None:
            args = hoist_global_options(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        from questfoundry.contracts.errors import QuestFoundryError

        with warnings.catch_warnings(), _log_lines():
            warnings.showwarning = _show_warning
            try:
                return super().invoke(ctx)
            except (click.ClickException, click.exceptions.Exit, click.Abort):
                raise
            except QuestFoundryError as exc:
                if _debug(ctx):
                    _print_traceback(ctx, exc)
                click.echo(line(f"Error: {exc}{_no_project_hint(ctx, exc)}"), err=True)
                ctx.exit(1)
            except (OSError, ValueError) as exc:
                if _debug(ctx):
                    _print_traceback(ctx, exc)
                click.echo(line(f"Error: {exc} (run with --debug for details)"), err=True)
                ctx.exit(1)
            except Exception as exc:
                if _debug(ctx):
                    _print_traceback(ctx, exc)
                raise


def _no_project_hint(ctx: click.Context, exc: BaseException) -> str:
    """What a config error means when there is no config file at all: run ``init`` first."""
    from questfoundry.config import PROJECT_DIR_NAME
    from questfoundry.contracts.errors import ConfigError

    if not isinstance(exc, ConfigError) or not (ctx.obj and ctx.obj.without_config()):
        return ""
    return (
        f"; there is no config file ({PROJECT_DIR_NAME}/config.yml here or in a parent folder): "
        "run `questfoundry init` first"
    )


def _print_traceback(ctx: click.Context, exc: BaseException) -> None:
    """``--debug``: the whole traceback, chain included, API keys masked; then exit status 1."""
    from questfoundry.kit.redaction import format_exception

    click.echo(format_exception(exc).rstrip(), err=True)
    ctx.exit(1)


def _debug(ctx: click.Context | None) -> bool:
    return bool(ctx and ctx.obj and ctx.obj.debug)


#: the longest error or warning line the CLI prints; ``--debug`` shows the whole text
MAX_LINE = 500


def line(text: str) -> str:
    """``text`` as one line of at most :data:`MAX_LINE` characters, saying how much is left out
    (all of it under ``--debug``)."""
    flat = " ".join(text.split())
    if len(flat) <= MAX_LINE or _debug(click.get_current_context(silent=True)):
        return flat
    tail = f"… ({len(flat):,} characters in all: run with --debug to see them)"
    return flat[: MAX_LINE - len(tail)] + tail


def _show_warning(message: Any, category: Any, *_args: Any, **_kwargs: Any) -> None:
    click.echo(line(f"Warning: {message}"), err=True)


class _LogLine(logging.Formatter):
    """The package's warnings and errors as the CLI writes its own: ``Warning: …``, one line."""

    def format(self, record: logging.LogRecord) -> str:
        return line(f"{record.levelname.capitalize()}: {record.getMessage()}")


@contextmanager
def _log_lines() -> Iterator[None]:
    """While a command runs, the ``questfoundry`` loggers' warnings go to stderr as one line each
    (unless the embedding program configured logging itself)."""
    logger = logging.getLogger("questfoundry")
    if logger.handlers or logging.getLogger().handlers:
        yield
        return
    handler = logging.StreamHandler()
    handler.setLevel(logging.WARNING)
    handler.setFormatter(_LogLine())
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


@click.group(cls=QuestFoundryGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    envvar="QUESTFOUNDRY_CONFIG",
    help="config.yml to use (default: .questfoundry/config.yml here or in a parent folder).",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config.yml value for this run, e.g. roles.gatekeeper.model=gpt-4o-mini "
    "(VALUE is YAML; repeatable).",
)
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.version_option(package_name="questfoundry")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, sets: tuple[str, ...], debug: bool) -> None:
    """QuestFoundry: a studio of AI roles writing a gamebook, over caching, rate limits, budgets
    and a cost ledger.

    Configuration lives in .questfoundry/config.yml (`questfoundry init` writes one; see
    `questfoundry config --help`). --debug and --set may also follow the subcommand.
    """
    ctx.obj = App(config_path, debug, sets)
