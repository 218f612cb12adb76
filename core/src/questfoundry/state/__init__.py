"""The project's state beyond one store: key rules, schema versions and migrations, backups,
export and import.

Stores themselves are plugins (:class:`~questfoundry.contracts.protocols.StateStore`; the built-in
one is :mod:`questfoundry.builtins.file_store`). This package works through that protocol only, so
everything here serves every store alike. The names below load on first use, so importing the
package (as every store does, for :func:`check_key`) costs nothing.

======================  =====================================================
module                  what it does
======================  =====================================================
``keys``                what a key may be (:func:`check_key`)
``versions``            the versions a store records (``_qf/schema_version``)
``migrations``          the core's migrations; each scope's chain
``manager``             :class:`MigrationManager`; opening a store (``checked``)
``journal``             many keys written as one change, safe from kill -9
``backup``              :class:`BackupPolicy`: backups before a migration
``exchange``            export and import, JSON or YAML
``history``             what ``--include-history`` adds
======================  =====================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from questfoundry.lazy import lazy_exports

_EXPORTS = {
    "check_key": "questfoundry.kit.state_keys",
    "MigrationManager": "questfoundry.state.manager",
    "BackupPolicy": "questfoundry.state.backup",
    "export_state": "questfoundry.state.exchange",
    "import_state": "questfoundry.state.exchange",
    "read_state_file": "questfoundry.state.exchange",
}

__all__ = [
    "BackupPolicy",
    "MigrationManager",
    "check_key",
    "export_state",
    "import_state",
    "read_state_file",
]

if TYPE_CHECKING:
    from questfoundry.kit.state_keys import check_key
    from questfoundry.state.backup import BackupPolicy
    from questfoundry.state.exchange import export_state, import_state, read_state_file
    from questfoundry.state.manager import MigrationManager


__getattr__ = lazy_exports(__name__, _EXPORTS)
