"""The studio: roles that act, loops of steps that write a book, and the Showrunner running them.

- :class:`Role` — a catalogue entry with its resolved provider, model and parameters, its
  instructions, and ``generate``/``agenerate`` through the gateway.
- :class:`Showrunner` — builds roles lazily, runs loops (:meth:`~Showrunner.run`,
  :meth:`~Showrunner.arun`), closes the runtime once.
- :class:`StepContext` — what a loop's step is given (see :mod:`.context`).
- :class:`RunReport` — per-role calls, cache hits, tokens, cost, money saved, waits.

Modules: :mod:`.role`, :mod:`.showrunner`, :mod:`.engine` (scheduling, run record, resume),
:mod:`.context`, :mod:`.structured` (JSON Schema output), :mod:`.book` (topology, checks,
repairs), :mod:`.render` (HTML and Markdown), :mod:`.report`, :mod:`.loops`. See docs/studio.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from questfoundry.lazy import lazy_exports

#: public name -> module; each loads on first use, so importing a submodule (the CLI reads
#: ``questfoundry.book.model``'s sizes) does not load the whole studio
_EXPORTS = {
    "DEFAULT_SECTIONS": "questfoundry.book.model",
    "LoopError": "questfoundry.contracts.errors",
    "Role": "questfoundry.studio.role",
    "RoleUsage": "questfoundry.studio.report",
    "RunReport": "questfoundry.studio.report",
    "Showrunner": "questfoundry.studio.showrunner",
    "StepContext": "questfoundry.studio.context",
    "StepError": "questfoundry.contracts.errors",
    "StepProgress": "questfoundry.studio.engine",
}
__all__ = [
    "DEFAULT_SECTIONS",
    "LoopError",
    "Role",
    "RoleUsage",
    "RunReport",
    "Showrunner",
    "StepContext",
    "StepError",
    "StepProgress",
]

if TYPE_CHECKING:
    from questfoundry.book.model import DEFAULT_SECTIONS
    from questfoundry.contracts.errors import LoopError, StepError
    from questfoundry.studio.context import StepContext
    from questfoundry.studio.engine import StepProgress
    from questfoundry.studio.report import RoleUsage, RunReport
    from questfoundry.studio.role import Role
    from questfoundry.studio.showrunner import Showrunner


__getattr__ = lazy_exports(__name__, _EXPORTS)
