"""The cost ledger and the budgets kept beside it, in one SQLite file.

:mod:`.file` (the SQLite file: schema, connection, running totals), :mod:`.rows` (rows and what
they add up to), :mod:`.journal` (the write-ahead journal of paid calls), :mod:`.recovery`
(settling the journal of a stopped process), :mod:`.ledger` (writing calls), :mod:`.reports`
(``cost report``), :mod:`.keeper` (the ``sqlite`` budget keeper, a built-in plugin),
:mod:`.budgets` (opening the configured keeper), :mod:`.processes` (whose journals and holds
these are). Names load on first use, so registering the keeper stays cheap.
"""

from typing import TYPE_CHECKING

from questfoundry.lazy import lazy_exports

if TYPE_CHECKING:
    from questfoundry.ledger.ledger import Ledger, open_ledger
    from questfoundry.ledger.reports import ReportRow

__all__ = ["Ledger", "ReportRow", "open_ledger"]

__getattr__ = lazy_exports(
    __name__,
    {
        "Ledger": "questfoundry.ledger.ledger",
        "open_ledger": "questfoundry.ledger.ledger",
        "ReportRow": "questfoundry.ledger.reports",
    },
)
