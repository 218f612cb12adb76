"""The ``questfoundry`` command.

Every QuestFoundryError becomes one line on stderr and exit status 1; ``--debug`` shows the
traceback instead. Heavy imports (rich, yaml, jsonschema, plugins) happen inside the commands, so
``questfoundry --help`` stays fast. One module per command group; each registers on :data:`cli`.
"""

from __future__ import annotations

from collections.abc import Sequence

from questfoundry.cli import (
    ask,
    authoring,
    book,
    brief,
    cache,
    costs,
    init,
    plugins_config,
    roles,
    run,
    state,
)
from questfoundry.cli.app import cli

__all__ = ["cli", "main"]

_COMMANDS = (ask, authoring, book, brief, cache, costs, init, plugins_config, roles, run, state)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``questfoundry`` console script."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="questfoundry")


if __name__ == "__main__":  # pragma: no cover
    main()
