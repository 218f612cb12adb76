"""``questfoundry brief``: what the book is about, as the author tells the studio.

The same flags set the brief from ``questfoundry init`` and, for one run (saved as the brief),
``questfoundry run LOOP``; :func:`brief_options` adds them to a command and :func:`changes` reads
them back. Without flags the command shows the brief.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import click

from questfoundry.cli.app import App, cli, json_option, pass_app, print_json, print_table

if TYPE_CHECKING:
    from questfoundry.contracts.brief import Brief
    from questfoundry.contracts.protocols import StateStore

F = TypeVar("F", bound=Callable[..., Any])

#: the brief's fields, their flags' help, and what ``init`` asks for each
FIELDS = {
    "premise": ("What the book is about.", "What is the book about?"),
    "genre": ("Its genre, e.g. 'gothic mystery'.", "Genre"),
    "audience": ("Who it is for, e.g. 'young adult'.", "Audience"),
    "tone": ("Its voice and register.", "Tone"),
    "pov": ("Its point of view (second by default).", "Point of view"),
    "language": ("The book's language code (en by default).", "Language code"),
    "sections": ("Its planned length in sections.", "How many sections"),
    "limits": ("Content the book must avoid.", "What must it avoid"),
}
METAVARS = {"pov": "second|first|third", "language": "CODE", "sections": "N"}


def brief_options(*, sections: bool = True) -> Callable[[F], F]:
    """The brief's flags on a command (``sections``: with ``--sections``, which ``run`` has as
    its own); each is None when not given. Values are checked by the brief itself, so a bad one
    is refused in one line naming the field."""

    def add(func: F) -> F:
        for name, (text, _) in reversed(FIELDS.items()):
            if name != "sections" or sections:
                metavar = METAVARS.get(name, "TEXT")
                func = click.option(f"--{name}", default=None, metavar=metavar, help=text)(func)
        return func

    return add


def changes(values: Mapping[str, Any]) -> dict[str, Any]:
    """The brief fields among a command's ``values`` that were given (``sections`` as a whole
    number when it is written as one)."""
    given = {name: values[name] for name in FIELDS if values.get(name) is not None}
    if isinstance(given.get("sections"), str) and given["sections"].strip().isdigit():
        given["sections"] = int(given["sections"])
    return given


def read_brief(state: StateStore) -> Brief:
    from questfoundry.contracts.brief import BRIEF, Brief

    return Brief.from_dict(state.get(BRIEF))


def save_brief(state: StateStore, given: Mapping[str, Any]) -> Brief:
    """The project's brief with ``given`` fields changed, saved; an invalid value saves nothing."""
    from questfoundry.contracts.brief import BRIEF

    brief = read_brief(state).updated(given)
    state.set(BRIEF, brief.to_dict())
    return brief


def show_brief(brief: Brief, as_json: bool) -> None:
    if as_json:
        print_json(brief.to_dict())
        return
    shown = brief.shown()
    if not shown:
        click.echo("The brief is empty: questfoundry brief --premise '…' --tone '…' sets it.")
        return
    print_table("The brief", ("field", "value"), list(shown.items()))


@cli.command("brief")
@brief_options()
@json_option
@pass_app
def brief_command(app: App, /, as_json: bool, **values: Any) -> None:
    """Show the book's brief, or set the fields given (--tone '' clears one).

    Every role is told the brief; a run of story_spark without --sections asks for its length.
    A brief without a premise still runs: the plotwright invents one and saves it here.
    """
    given = changes(values)
    state = app.runtime.state
    brief = save_brief(state, given) if given else read_brief(state)
    show_brief(brief, as_json)
