"""Registers the provider ``gemini``.

This module is loaded whenever plugins are listed, so it must stay light: ``google.genai`` (with
pydantic, httpx2 and google-auth behind it) is imported by the factory, only when a provider is
built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from questfoundry import hookimpl
from questfoundry.interfaces import BackendContext, Capability
from questfoundry.plugins import Backend
from questfoundry_provider_gemini.settings import GeminiSettings

if TYPE_CHECKING:
    from questfoundry_provider_gemini.provider import GeminiProvider


#: the settings of ``providers.<kind>.gemini``, validated where the user writes them
SETTINGS = {
    "properties": {
        "api_key": {
            "type": "string",
            "description": (
                "API key; write `${GEMINI_API_KEY}` rather than the key itself (default: that "
                "variable, then GOOGLE_API_KEY). Never logged, cached or exported."
            ),
        },
        "base_url": {
            "type": "string",
            "pattern": "^[A-Za-z][A-Za-z0-9+.-]*://\\S+$",
            "examples": ["https://generativelanguage.googleapis.com"],
            "description": "Endpoint to call instead of the service's default.",
        },
        "api_version": {
            "type": "string",
            "minLength": 1,
            "default": "v1beta",
            "description": "API version of the Gemini endpoint.",
        },
        "timeout_seconds": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 120,
            "description": (
                "Seconds one attempt may take from sending the request to the last byte of the "
                "reply (a deadline, not a per-read timeout); past it the attempt fails as "
                "retriable."
            ),
        },
        "max_reply_mb": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 32,
            "description": (
                "Largest reply body accepted, in MiB; a larger one fails the call instead of "
                "filling memory."
            ),
        },
    }
}


def make_gemini_provider(settings: Mapping[str, Any], context: BackendContext) -> GeminiProvider:
    """Build the provider from ``providers.text.gemini``; a missing key fails here, not later."""
    parsed = GeminiSettings.from_mapping(settings)
    from questfoundry_provider_gemini.provider import GeminiProvider

    return GeminiProvider(parsed)


@hookimpl
def providers() -> Mapping[str, Backend]:
    return {
        "gemini": Backend(
            make_gemini_provider,
            settings=SETTINGS,
            capabilities=frozenset({Capability.STREAMING}),
            description="Google Gemini through google-genai",
        )
    }
