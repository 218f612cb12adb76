"""QuestFoundry provider ``ollama``: models served by a local (or remote) Ollama over ``/api/chat``.

The ``ollama`` library is imported only when a provider is built, never by importing this package.
"""

from __future__ import annotations

__all__: list[str] = []
