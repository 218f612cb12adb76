"""The ``providers.text.gemini`` settings, checked before anything is sent.

Kept apart from the SDK so a bad setting — above all a missing API key — is a
:class:`~questfoundry.kit.ConfigError` naming its config path when the provider is
built, not a 401 on the first call, and so checking it never imports ``google.genai``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from questfoundry.kit import DEFAULT_MAX_REPLY_BYTES, ConfigError, max_reply_bytes, public_url

CONFIG_PATH = "providers.text.gemini"
#: environment variables tried, in order, when config.yml gives no key
KEY_ENV_VARS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
DEFAULT_MODEL = "gemini-2.5-flash"
#: v1beta serves every generateContent feature (system instructions, seeds) on every SDK version
DEFAULT_API_VERSION = "v1beta"
DEFAULT_TIMEOUT_SECONDS = 120.0
#: where google-genai sends requests when ``base_url`` is not set
OFFICIAL_URL = "https://generativelanguage.googleapis.com"


@dataclass(frozen=True)
class GeminiSettings:
    """The API key, default model, endpoint and how long one HTTP call may take.

    ``api_key`` is left out of ``repr`` so printing the settings never shows it.
    """

    api_key: str = field(repr=False)
    model: str = DEFAULT_MODEL
    base_url: str | None = None
    api_version: str = DEFAULT_API_VERSION
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES

    @property
    def endpoint(self) -> str:
        """The base URL calls go to, without credentials: what error messages name."""
        return public_url(self.base_url or OFFICIAL_URL)

    @classmethod
    def from_mapping(
        cls, settings: Mapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> GeminiSettings:
        """Read the settings; None or a missing key means the default.

        The key comes from ``api_key``, else ``GEMINI_API_KEY``, else ``GOOGLE_API_KEY``.
        """
        return cls(
            api_key=_api_key(settings, os.environ if environ is None else environ),
            model=_text(settings, "model") or DEFAULT_MODEL,
            base_url=_text(settings, "base_url"),
            api_version=_text(settings, "api_version") or DEFAULT_API_VERSION,
            timeout_seconds=_timeout(settings),
            max_reply_bytes=max_reply_bytes(settings, CONFIG_PATH),
        )


def _api_key(settings: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    key = settings.get("api_key")
    if key is not None and not isinstance(key, str):
        raise ConfigError("must be a string", path=f"{CONFIG_PATH}.api_key")
    for candidate in (key, *(environ.get(name) for name in KEY_ENV_VARS)):
        if candidate and candidate.strip():
            return candidate.strip()
    raise ConfigError(
        "no Gemini API key; set it here or in the GEMINI_API_KEY environment variable",
        path=f"{CONFIG_PATH}.api_key",
    )


def _text(settings: Mapping[str, Any], name: str) -> str | None:
    value = settings.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{value!r} is not a string", path=f"{CONFIG_PATH}.{name}")
    return value


def _timeout(settings: Mapping[str, Any]) -> float:
    value = settings.get("timeout_seconds")
    if value is None:
        return DEFAULT_TIMEOUT_SECONDS
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(
            f"{value!r} is not a positive number of seconds",
            path=f"{CONFIG_PATH}.timeout_seconds",
        )
    return float(value)
