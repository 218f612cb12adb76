"""Registers provider ``openai``. The openai SDK is imported by the factory, not here, so listing
plugins stays fast."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from questfoundry import hookimpl
from questfoundry.interfaces import BackendContext, Factory
from questfoundry_provider_openai.settings import OpenAISettings

if TYPE_CHECKING:
    from questfoundry_provider_openai.provider import OpenAIProvider


def make_openai_provider(settings: Mapping[str, Any], context: BackendContext) -> OpenAIProvider:
    """Build the provider from ``providers.text.openai``; a missing API key fails here, at start."""
    parsed = OpenAISettings.from_mapping(settings)
    from questfoundry_provider_openai.provider import OpenAIProvider

    return OpenAIProvider(parsed)


@hookimpl
def providers() -> Mapping[str, Factory]:
    return {"openai": make_openai_provider}
