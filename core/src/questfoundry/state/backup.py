"""Backups: an exact copy of the whole state, written before a migration changes anything.

A backup is an export file (:mod:`questfoundry.state.exchange`) with the history included and
nothing masked — it is a restore point, kept private (mode 0600) in the project's folder. Restore
one with ``questfoundry state import BACKUP --replace``. ``state.backups.keep`` (default 5) says
how many are kept; older ones are removed after each new one. ``state.backups.path`` (default
``.questfoundry/backups/state``, relative to the project root) says where.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from questfoundry.contracts.backends import BackendContext
from questfoundry.contracts.protocols import StateStore
from questfoundry.state.exchange import export_state
from questfoundry.state.versions import Versions

PREFIX = "state-"
DEFAULT_PATH = ".questfoundry/backups/state"
DEFAULT_KEEP = 5


@dataclass(frozen=True)
class BackupPolicy:
    """Where backups go and how many are kept."""

    path: Path
    keep: int = DEFAULT_KEEP

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], context: BackendContext) -> BackupPolicy:
        """``state.backups`` from config.yml."""
        backups = settings.get("backups") or {}
        path = context.resolve_path(backups.get("path", DEFAULT_PATH))
        return cls(path, int(backups.get("keep", DEFAULT_KEEP)))

    def backups(self) -> list[Path]:
        """The backups kept, oldest first."""
        if not self.path.is_dir():
            return []
        return sorted(self.path.glob(f"{PREFIX}*.json"))

    def write(self, store: StateStore, versions: Versions) -> Path:
        """Back up ``store`` (at ``versions``) now, then drop the oldest beyond ``keep``."""
        now = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}"
        tag = "-".join(f"{scope}{n}" for scope, n in sorted(versions.items())) or "unversioned"
        path = self.path / f"{PREFIX}{stamp}Z-{tag}.json"
        export_state(store, path, include_history=True)
        for old in self.backups()[: -self.keep]:
            old.unlink(missing_ok=True)
        return path
