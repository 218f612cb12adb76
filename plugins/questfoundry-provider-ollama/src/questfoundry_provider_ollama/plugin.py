"""Registers the provider ``ollama``.

This module is loaded whenever plugins are listed, so it must stay light: the ``ollama`` library
(with httpx and pydantic behind it) is imported by the factory, only when a provider is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from questfoundry.kit import Backend, BackendContext, Capability, hookimpl, http_settings_schema
from questfoundry_provider_ollama.settings import OllamaSettings

if TYPE_CHECKING:
    from questfoundry_provider_ollama.provider import OllamaProvider


#: the settings of ``providers.<kind>.ollama``, validated where the user writes them
SETTINGS = {
    "properties": {
        **http_settings_schema(
            timeout_default=300,
            url_example="http://localhost:11434",
            url_default="http://localhost:11434",
        ),
    }
}


def make_ollama_provider(settings: Mapping[str, Any], context: BackendContext) -> OllamaProvider:
    """Build the provider from ``providers.text.ollama``; Ollama needs no API key."""
    parsed = OllamaSettings.from_mapping(settings)
    from questfoundry_provider_ollama.provider import OllamaProvider

    return OllamaProvider(parsed)


@hookimpl
def providers() -> Mapping[str, Backend]:
    return {
        "ollama": Backend(
            make_ollama_provider,
            settings=SETTINGS,
            capabilities=frozenset({Capability.STREAMING}),
            description="models served by a local Ollama",
        )
    }
