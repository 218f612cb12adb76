"""QuestFoundry cache backend ``file``: replies kept on disk with diskcache, never pickled.

Importing this package does not import diskcache;
:func:`~questfoundry_cache_file.plugin.make_file_cache` does, when a file cache is actually built.
"""

from __future__ import annotations

__all__: list[str] = []
