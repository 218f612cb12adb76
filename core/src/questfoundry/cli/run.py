"""``questfoundry run LOOP``: the main job — run a loop of the studio and report what it cost."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from questfoundry.book.model import DEFAULT_SECTIONS, MAX_SECTIONS
from questfoundry.cli.app import App, cli, json_option, pass_app, print_json, print_table

if TYPE_CHECKING:
    from rich.console import Console

    from questfoundry.studio import RunReport, StepProgress
    from questfoundry.studio.engine import Progress


@cli.command()
@click.argument("loop")
@click.option(
    "--sections",
    type=click.IntRange(1, MAX_SECTIONS),
    default=DEFAULT_SECTIONS,
    show_default=True,
    help="How many sections the book has.",
)
@json_option
@pass_app
def run(app: App, loop: str, sections: int, as_json: bool) -> None:
    """Run LOOP (story_spark, art_touch_up, binding_run, …) and print what each role spent.

    An interrupted run continues where it stopped; a finished one runs again from the cache.
    """
    from questfoundry.studio import Showrunner, StepError

    showrunner = Showrunner(app.runtime)
    try:
        with _progress(quiet=as_json) as progress:
            report = showrunner.run(loop, sections=sections, progress=progress)
    except StepError as exc:
        raise StepError(
            exc.loop, exc.step, exc.role, f"{exc.reason} (saved: run it again to continue)"
        ) from None
    if as_json:
        print_json(report.as_json())
    else:
        _print(report)


def _print(report: RunReport) -> None:
    resumed = ", resumed" if report.resumed else ""
    title = f"{report.loop} · run {report.run_id}{resumed} · {report.seconds:.1f} s"
    print_table(title, report.COLUMNS, report.rows())
    if report.skipped:
        click.echo(f"Steps already done before: {', '.join(report.skipped)}")
    for repair in report.repairs:
        click.echo(f"Repaired: {repair}")
    for name, path in report.outputs.items():
        click.echo(f"{'HTML book' if name == 'html' else name.capitalize()}: {path}")


@contextmanager
def _progress(quiet: bool) -> Iterator[Progress | None]:
    """A rich bar per step on a terminal, a line per finished step otherwise, nothing if quiet."""
    if quiet:
        yield None
    elif sys.stderr.isatty():
        with _bars() as progress:
            yield progress
    else:
        yield _lines


def _lines(event: StepProgress) -> None:
    if event.status != "running":
        click.echo(f"{event.loop}: {event.step} ({event.role}) {event.status}", err=True)


@contextmanager
def _bars(console: Console | None = None) -> Iterator[Progress]:
    """A rich progress bar per step, on ``console`` (default: stderr)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
    from rich.progress import Progress as Display

    bars: dict[str, Any] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Display(*columns, console=console or Console(stderr=True)) as display:

        def update(event: StepProgress) -> None:
            label = f"{event.step} ({event.role})"
            task = bars.get(event.step)
            if task is None:
                task = bars[event.step] = display.add_task(label, total=event.total)
            if event.status == "running":
                display.update(task, completed=event.done, total=event.total)
            elif event.status in ("done", "skipped"):
                display.update(task, completed=display.tasks[task].total)
            if event.status not in ("running", "done"):
                display.update(task, description=f"{label} · {event.status}")

        yield update
