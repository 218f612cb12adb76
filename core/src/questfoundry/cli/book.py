"""``questfoundry book``: the book itself, as the studio made it and the author changes it."""

from __future__ import annotations

import click

from questfoundry.cli.app import App, cli, json_option, pass_app, print_json
from questfoundry.cli.authoring import book_edit


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
