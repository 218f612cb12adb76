"""``questfoundry book``: the book itself, as the studio made it and the author changes it."""

from __future__ import annotations

from questfoundry.cli.app import cli
from questfoundry.cli.authoring import book_edit


@cli.group()
def book() -> None:
    """The book: its sections, as the studio wrote them and as you change them."""


book.add_command(book_edit)
