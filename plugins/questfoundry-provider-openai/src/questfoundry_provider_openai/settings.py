"""The ``providers.text.openai`` settings, read and checked without importing the SDK."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from questfoundry.kit import DEFAULT_MAX_REPLY_BYTES, ConfigError, max_reply_bytes, public_url

CONFIG_PATH = "providers.text.openai"
API_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MODEL = "gpt-4o-mini"
OFFICIAL_HOST = "api.openai.com"
#: where the SDK sends requests when ``base_url`` is not set
OFFICIAL_URL = f"https://{OFFICIAL_HOST}/v1"


@dataclass(frozen=True)
class OpenAISettings:
    """How to reach the service. ``api_key`` is kept out of ``repr`` so it never reaches a log."""

    api_key: str = field(repr=False)
    base_url: str | None = None
    organization: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    model: str = DEFAULT_MODEL
    defaults: Mapping[str, Any] = field(default_factory=dict)
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES

    @property
    def official(self) -> bool:
        """True when calls go to OpenAI itself rather than an OpenAI-compatible server."""
        return self.base_url is None or urlsplit(self.base_url).hostname == OFFICIAL_HOST

    @property
    def endpoint(self) -> str:
        """The base URL calls go to, without credentials: what error messages name."""
        return public_url(self.base_url or OFFICIAL_URL)

    @classmethod
    def from_mapping(
        cls, settings: Mapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> OpenAISettings:
        """Read the settings; the key falls back to ``$OPENAI_API_KEY`` when config has none."""
        environ = os.environ if environ is None else environ
        api_key = str(settings.get("api_key") or environ.get(API_KEY_ENV) or "").strip()
        if not api_key:
            raise ConfigError(
                f"an API key is required: set it in config.yml or in ${API_KEY_ENV}",
                path=f"{CONFIG_PATH}.api_key",
            )
        timeout = settings.get("timeout_seconds", DEFAULT_TIMEOUT)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            raise ConfigError(
                f"must be a number of seconds above 0, not {timeout!r}",
                path=f"{CONFIG_PATH}.timeout_seconds",
            )
        defaults = {k: settings[k] for k in ("size", "quality") if settings.get(k) is not None}
        return cls(
            api_key=api_key,
            base_url=str(settings["base_url"]).rstrip("/") if settings.get("base_url") else None,
            organization=str(settings["organization"]) if settings.get("organization") else None,
            timeout=float(timeout),
            model=str(settings.get("model") or DEFAULT_MODEL),
            defaults=defaults,
            max_reply_bytes=max_reply_bytes(settings, CONFIG_PATH),
        )
