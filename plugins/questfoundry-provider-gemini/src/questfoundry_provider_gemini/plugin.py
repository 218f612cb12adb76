"""Registers the provider ``gemini``.

This module is loaded whenever plugins are listed, so it must stay light: ``google.genai`` (with
pydantic, httpx2 and google-auth behind it) is imported by the factory, only when a provider is
built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from questfoundry.kit import (
    Backend,
    BackendContext,
    Capability,
    ProviderSetup,
    hookimpl,
    http_settings_schema,
)
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
        "api_version": {
            "type": "string",
            "minLength": 1,
            "default": "v1beta",
            "description": "API version of the Gemini endpoint.",
        },
        **http_settings_schema(
            timeout_default=120, url_example="https://generativelanguage.googleapis.com"
        ),
    }
}


def make_gemini_provider(settings: Mapping[str, Any], context: BackendContext) -> GeminiProvider:
    """Build the provider from ``providers.text.gemini``; a missing key fails here, not later."""
    parsed = GeminiSettings.from_mapping(settings)
    from questfoundry_provider_gemini.provider import GeminiProvider

    return GeminiProvider(parsed)


def offer_gemini(env: Mapping[str, str], base_url: str | None, asked: bool) -> ProviderSetup | None:
    """What ``questfoundry init`` writes when GEMINI_API_KEY is set (or ``--provider gemini``)."""
    if not (env.get("GEMINI_API_KEY") or asked):
        return None
    endpoint = f"\nbase_url: {base_url}" if base_url else ""
    return ProviderSetup(
        reason="Gemini, with the key in GEMINI_API_KEY",
        text=(
            "api_key: ${GEMINI_API_KEY}  # read from the environment; never write the key here\n"
            f"model: gemini-2.5-flash{endpoint}"
        ),
        image="model: gemini-2.5-flash-image",
        needs=("GEMINI_API_KEY",),
    )


@hookimpl
def providers() -> Mapping[str, Backend]:
    return {
        "gemini": Backend(
            make_gemini_provider,
            settings=SETTINGS,
            capabilities=frozenset({Capability.STREAMING}),
            description="Google Gemini through google-genai",
            priority=20,  # the order `questfoundry init` offers providers
            setup=offer_gemini,
        )
    }
