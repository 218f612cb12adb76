"""The options of ``questfoundry run LOOP``: those every loop takes, and those LOOP declares.

A loop declares its own in ``LoopSpec.options``; :class:`LoopCommand` adds them to the command
once it knows which loop is named, so ``run LOOP --help`` lists them and ``run LOOP --flag``
reads them; ``run --help`` ends with every loop that runs and what it makes. A flag the loop
does not take is refused in one line naming the loops that take it. A loop's option named like
one of the brief's flags (``--language``) replaces it for that loop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import IO, TYPE_CHECKING, Any

import click

from questfoundry.cli.app import App

if TYPE_CHECKING:
    from questfoundry.contracts.studio import LoopOption, LoopSpec


class OneLineUsageError(click.UsageError):
    """A usage error shown as one line (no usage text, no hint)."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


class LoopCommand(click.Command):
    """``run LOOP``: the options every loop takes, then those LOOP declares."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.common: list[click.Parameter] = list(self.params)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        spec = self.named_loop(ctx, args)
        declared: list[click.Parameter] = []
        if spec is not None:
            declared = [_option(o) for o in spec.options]
        names = {param.name for param in declared}
        self.params = [p for p in self.common if p.name not in names] + declared
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            raise OneLineUsageError(_not_taken(ctx, spec, exc.option_name)) from None

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """After the options: every loop that runs and what it makes."""
        super().format_epilog(ctx, formatter)
        loops = sorted((n, spec.description) for n, spec in _loops(ctx).items() if spec.steps)
        if loops:
            with formatter.section("Loops"):
                formatter.write_dl(loops)

    def named_loop(self, ctx: click.Context, args: Sequence[str]) -> LoopSpec | None:
        """The loop ``args`` name (their first argument), if there is one by that name."""
        valued = {
            flag
            for param in self.common
            if isinstance(param, click.Option) and not param.is_flag
            for flag in param.opts
        }
        index = 0
        while index < len(args):
            arg = args[index]
            if arg == "--":
                index += 1
                break
            if not arg.startswith("-"):
                break
            index += 2 if arg in valued else 1
        if index >= len(args):
            return None
        return _loops(ctx).get(args[index])


def declared(spec: LoopSpec, values: Mapping[str, Any]) -> dict[str, Any]:
    """The values of the options ``spec`` declares, among a command's ``values``."""
    return {o.name: values[o.name] for o in spec.options if values.get(o.name) is not None}


def budget_of(text: str | None) -> Decimal | None:
    """``--budget``'s amount of US dollars; :class:`~questfoundry.contracts.errors.LoopError`
    in one line when it is not one."""
    from questfoundry.contracts.errors import LoopError

    if text is None:
        return None
    try:
        amount = Decimal(text.strip().removeprefix("$"))
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite() or amount < 0:
        raise LoopError(f"--budget takes an amount of US dollars such as 0.50, not {text!r}")
    return amount


def _loops(ctx: click.Context) -> dict[str, LoopSpec]:
    app = ctx.find_object(App)
    return {} if app is None else dict(app.manager.loops())


def _option(option: LoopOption) -> click.Option:
    """The click option of a loop's declared option."""
    kinds: dict[str, Any] = {"integer": click.INT, "number": click.FLOAT, "text": str}
    text = option.help + (" (required)" if option.required else "")
    if option.kind == "flag":
        return click.Option([option.flag], is_flag=True, default=None, help=text)
    kind = click.Choice(option.choices) if option.kind == "choice" else kinds[option.kind]
    shown = option.default is not None
    return click.Option(
        [option.flag], type=kind, default=option.default, show_default=shown, help=text
    )


def _not_taken(ctx: click.Context, spec: LoopSpec | None, flag: str) -> str:
    """One line: ``flag`` is not an option of this loop; these loops take it."""
    takers = sorted(
        name
        for name, loop in _loops(ctx).items()
        if any(option.flag == flag for option in loop.options)
    )
    which = f"run {spec.name}" if spec is not None else "run"
    if takers:
        return f"{which} takes no {flag}; loops that take it: {', '.join(takers)}"
    return f"{which} takes no {flag} (no loop does); see: questfoundry {which} --help"
