"""The cost ledger and the budgets kept beside it, in one SQLite file.

:mod:`.ledger` (one row per call, running totals, reports), :mod:`.spool` (rows that could not be
written yet), :mod:`.budgets` (the SQLite budget keeper), :mod:`.processes` (whose rows and holds
these are).
"""

from questfoundry.ledger.ledger import Ledger, ReportRow, open_ledger

__all__ = ["Ledger", "ReportRow", "open_ledger"]
