"""``questfoundry run LOOP``: the main job — run a loop of the studio and report what it cost."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from questfoundry.book.model import MAX_SECTIONS
from questfoundry.cli.app import App, cli, json_option, pass_app, print_json, print_table
from questfoundry.cli.brief import brief_options, changes
from questfoundry.cli.loop_options import LoopCommand, budget_of, declared

#: the most calls ``--concurrency`` keeps in flight (``studio.concurrency``'s maximum too)
MAX_CONCURRENCY = 1024

if TYPE_CHECKING:
    from rich.console import Console

    from questfoundry.studio import RunReport, StepProgress
    from questfoundry.studio.engine import Progress


@cli.command(cls=LoopCommand)
@click.argument("loop")
@click.option(
    "--sections",
    type=click.IntRange(1, MAX_SECTIONS),
    default=None,
    help="How many sections the book has, for this run (default: the brief's, else 6).",
)
@brief_options(sections=False)
@click.option(
    "--estimate",
    is_flag=True,
    help="Say what the run would do and cost, calling no provider; change nothing.",
)
@click.option(
    "--budget",
    metavar="USD",
    help="Spend at most this much on this run: each call reserves its cost before it is sent.",
)
@click.option("--force", is_flag=True, help="Rewrite the sections the author wrote by hand too.")
@click.option(
    "--wait", is_flag=True, help="If another run holds this project, wait for it to end first."
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, MAX_CONCURRENCY),
    default=None,
    metavar="N",
    help="Keep at most N calls in flight at once (default: studio.concurrency, else 16); "
    "the rate limits still bound what reaches a provider.",
)
@json_option
@pass_app
def run(
    app: App,
    /,
    loop: str,
    sections: int | None,
    estimate: bool,
    budget: str | None,
    force: bool,
    wait: bool,
    concurrency: int | None,
    as_json: bool,
    **values: Any,
) -> None:
    """Run LOOP (story_spark, art_touch_up, binding_run, …) and print what each role spent.

    An interrupted run continues where it stopped; a finished one runs again from the cache.
    The brief's flags are saved as the project's brief (see questfoundry brief). `run LOOP
    --help` lists the options LOOP takes besides these.
    """
    from questfoundry.studio import Showrunner, StepError

    showrunner = Showrunner(app.runtime, concurrency=concurrency)
    spec = showrunner.loop(loop)
    options = declared(spec, values)
    brief = changes({k: v for k, v in values.items() if k not in options})
    if estimate:
        forecast = showrunner.estimate(
            loop, sections=sections, options=options, brief=brief, force=force
        )
        if as_json:
            print_json(forecast.as_json())
        else:
            _print_estimate(forecast)
        return
    cap = budget_of(budget)
    try:
        with _progress(quiet=as_json) as progress:
            report = showrunner.run(
                loop,
                sections=sections,
                progress=progress,
                options=options,
                brief=brief,
                force=force,
                budget=cap,
                wait=wait,
            )
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
    for note in report.notes:
        click.echo(f"Note: {note}")
    for name, path in report.outputs.items():
        click.echo(f"{'HTML book' if name == 'html' else name.capitalize()}: {path}")


def _print_estimate(report: RunReport) -> None:
    """The forecast: per role, the calls, how many the cache holds already, tokens and cost."""
    totals = report.totals
    title = f"{report.loop} · estimate for {report.sections} sections · no provider called"
    print_table(title, report.COLUMNS[:-2], [row[:-2] for row in report.rows()])
    click.echo(
        f"Already in the cache (free): {totals.cache_hits} of {totals.calls} calls. "
        "The cost assumes answers of the length each step asks for."
    )


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
