"""``questfoundry book``: the book itself, as the studio made it and the author changes it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from questfoundry.cli.app import App, cli, json_option, pass_app, print_json
from questfoundry.cli.authoring import book_edit

if TYPE_CHECKING:
    from questfoundry.book.model import Topology


@cli.group()
def book() -> None:
    """The book: its sections, as the studio wrote them and as you change them."""


book.add_command(book_edit)


@book.command("check")
@json_option
@pass_app
def book_check(app: App, as_json: bool) -> None:
    """The book's graph: its figures, and whether it meets the rules of a gamebook.

    Figures: sections, endings, how many of the others branch, the fewest choices from the
    start to the nearest and to the farthest ending, and the sections unreachable from the
    start, the dead ends (no choices, not an ending), the trapped (no ending reachable) and
    those with broken links. The rules: every section reachable, at least two endings, at
    least a third of the other sections branching, an ending reachable from everywhere, no
    broken link. Exit status 1 when the book breaks one.
    """
    from questfoundry.book.graph import figures
    from questfoundry.book.model import Topology
    from questfoundry.contracts.errors import StateError
    from questfoundry.kit.loops import TOPOLOGY

    document = app.runtime.state.get(TOPOLOGY)
    if document is None:
        raise StateError("the book has no topology yet: run story_spark first")
    topology = Topology.from_dict(document)
    found = figures(topology)
    problems = found.problems()
    if as_json:
        print_json({"title": topology.title, **found.as_json()})
    else:
        click.echo(f"{topology.title}: " + "\n".join(found.lines()))
        click.echo("It breaks the rules:" if problems else "It meets the rules.")
        for problem in problems:
            click.echo(f"- {problem}")
    if problems:
        click.get_current_context().exit(1)


# ---------------------------------------------------------------------------- export and import


@book.command("export")
@click.option(
    "--format",
    "kind",
    type=click.Choice(["html", "md", "epub", "twee"]),
    default="html",
    show_default=True,
    help="html: the reader; md: Markdown; epub: EPUB 3 for e-readers; twee: Twee 3 for Twine.",
)
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@pass_app
def book_export(app: App, kind: str, path: Path | None) -> None:
    """Write the book as the state holds it into PATH (default book/book.<format> in the
    project), without calling any provider. Markdown's pictures go beside it, in images/.

    e.g. questfoundry book export --format epub ~/Desktop/vigil.epub
    """
    from questfoundry.book.exports import FORMATS, book_files
    from questfoundry.kit.bindery import CODEX, FOLDER, book_from_state, book_keys, write_book_files

    state = app.runtime.state
    topology = _topology(app)
    keys = book_keys(topology, state.list_keys(CODEX))
    book, notes = book_from_state(topology, {key: state.get(key) for key in keys})
    target = path or app.config.project_dir.parent / FOLDER / f"book.{FORMATS[kind].extension}"
    written = write_book_files(target.parent, book_files(book, kind, target.name))
    for note in notes:
        click.echo(f"Note: {note}", err=True)
    click.echo(f"Wrote {written[0]}" + (f" and {len(written) - 1} pictures" if written[1:] else ""))


@book.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Say what would change; write nothing.")
@pass_app
def book_import(app: App, file: Path, dry_run: bool) -> None:
    """Bring a Twee 3 FILE edited in Twine back into the book: prose, titles, choices and new
    sections. The whole file is checked first; when anything in it is wrong, nothing changes.
    Prose that changed becomes yours: no loop rewrites it unless told --force.

    e.g. questfoundry book export --format twee vigil.twee; (edit it in Twine, export as
    Twee); questfoundry book import vigil.twee
    """
    from questfoundry.book.twee import merge, parse
    from questfoundry.kit.loops import SECTIONS, TOPOLOGY, take_authorship

    state = app.runtime.state
    topology = _topology(app)
    prose = {s.id: (state.get(SECTIONS + s.id) or {}).get("prose", "") for s in topology.sections}
    story = parse(file.read_text(encoding="utf-8"))
    edits = merge(topology, prose, story)
    for name in story.skipped:
        click.echo(f"Skipped passage {name!r}: a script or style sheet is not imported", err=True)
    if not edits.changes:
        click.echo("Nothing changed: the file holds the book as it is.")
        return
    for change in edits.changes:
        click.echo(f"{'Would change' if dry_run else 'Changed'} {change}")
    if dry_run:
        return
    take_authorship(state, edits.prose)  # the prose first: the topology never names missing prose
    if edits.topology != topology:
        state.set(TOPOLOGY, edits.topology.to_dict())


def _topology(app: App) -> Topology:
    """The book's topology from the state; one line when there is none."""
    from questfoundry.book.model import Topology
    from questfoundry.contracts.errors import StateError
    from questfoundry.kit.loops import TOPOLOGY

    document = app.runtime.state.get(TOPOLOGY)
    if document is None:
        raise StateError("the book has no topology yet: run story_spark first")
    return Topology.from_dict(document)
