"""QuestFoundry provider ``gemini``: Google's Gemini API through the ``google-genai`` SDK.

``google.genai`` is slow to import, so it is imported only when a provider is built, never by
importing this package.
"""

from __future__ import annotations

__all__: list[str] = []
