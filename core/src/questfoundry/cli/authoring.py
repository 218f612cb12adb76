"""The author's hand: ``questfoundry revise SECTION --notes TEXT`` and ``book edit SECTION``.

``revise`` runs the ``revision`` loop on one section (scene smith, then gatekeeper; cached and
priced like any run). ``book edit`` opens a section's prose in ``$EDITOR`` and keeps what the
author saves as the author's own: no loop rewrites it, and ``revise`` refuses it, unless told
``--force``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from questfoundry.cli.app import App, cli, json_option, pass_app, print_json

if TYPE_CHECKING:
    from questfoundry.book.model import Section
    from questfoundry.contracts.protocols import StateStore


@cli.command()
@click.argument("section")
@click.option("--notes", required=True, metavar="TEXT", help="What to change, in your words.")
@click.option("--force", is_flag=True, help="Revise it even if you wrote it by hand.")
@json_option
@pass_app
def revise(app: App, section: str, notes: str, force: bool, as_json: bool) -> None:
    """Rewrite SECTION (its number or id) following your notes: the scene smith rewrites it,
    the gatekeeper reviews it. Only that section changes.

    e.g. questfoundry revise 12 --notes "make it scarier"
    """
    from questfoundry.cli.run import _print, _progress
    from questfoundry.studio import Showrunner

    showrunner = Showrunner(app.runtime)
    with _progress(quiet=as_json) as progress:
        report = showrunner.run(
            "revision", progress=progress, options={"section": section, "notes": notes}, force=force
        )
    if as_json:
        print_json(report.as_json())
    else:
        _print(report)


@click.command("edit")
@click.argument("section")
@pass_app
def book_edit(app: App, section: str) -> None:
    """Edit SECTION's prose (its number or id) in $EDITOR; what you save is yours from then on:
    no loop rewrites it, and revise refuses it, unless told --force."""
    from questfoundry.contracts.errors import StateError
    from questfoundry.kit.loops import SECTIONS, take_authorship

    state = app.runtime.state
    found = _section(state, section)
    document = state.get(SECTIONS + found.id)
    if document is None:
        raise StateError(f"section {found.number} has no prose yet: run story_spark first")
    edited = click.edit(document["prose"], extension=".txt", require_save=True)
    if edited is None or not edited.strip():
        why = "left it empty" if edited is not None else "saved nothing"
        click.echo(f"Section {found.number} is unchanged (the editor {why}).")
        return
    if take_authorship(state, {found.id: edited}):
        click.echo(f"Section {found.number} is yours now: no loop rewrites it unless --force.")
    else:
        click.echo(f"Section {found.number} is unchanged.")


def _section(state: StateStore, ref: str) -> Section:
    """The section ``ref`` names (number or id); one line when the book has none such."""
    from questfoundry.book.model import Topology
    from questfoundry.contracts.errors import StateError
    from questfoundry.kit.loops import TOPOLOGY

    document = state.get(TOPOLOGY)
    if document is None:
        raise StateError("the book has no sections yet: run story_spark first")
    try:
        return Topology.from_dict(document).section(ref)
    except KeyError as exc:
        raise StateError(str(exc.args[0])) from None
