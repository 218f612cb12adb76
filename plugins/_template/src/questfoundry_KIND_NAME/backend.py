"""The LABEL ``NAME``: implements the matching protocol of :mod:`questfoundry.kit`.

Import LIBRARY_MODULE at the top of this module, and of QuestFoundry only :mod:`questfoundry.kit`.
Wrap the library's exceptions into the kit's errors (``BackendUnavailableError``,
``ConfigError``, …): callers never import LIBRARY_MODULE to handle its errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from questfoundry.kit import BackendContext


class MyBackend:
    """Add the protocol's methods; declare optional features in ``capabilities``.

    See :class:`questfoundry.kit.Capability` for the feature names the core asks about.
    """

    capabilities: frozenset[str] = frozenset()

    def __init__(self, settings: Mapping[str, Any], context: BackendContext) -> None:
        self.settings = settings
        self.context = context

    def close(self) -> None:
        """Release connections and files."""
