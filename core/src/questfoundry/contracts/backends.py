"""What a plugin registers and what every backend factory receives besides its settings."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class Clock:
    """Time as the core sees it. Tests pass a fake one so nothing sleeps for real."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        import asyncio

        await asyncio.sleep(seconds)


@dataclass(frozen=True)
class BackendContext:
    """What every factory receives besides its settings.

    ``project_dir`` is the project's ``.questfoundry`` folder (relative paths in settings resolve
    against its parent); ``namespace`` prefixes every shared key so projects never see each other's
    data; ``clock`` is the time source to use instead of :mod:`time`.
    """

    project_dir: Path
    namespace: str = "default"
    clock: Clock = field(default_factory=Clock)

    def resolve_path(self, value: str | Path) -> Path:
        """A path from config: absolute as given, relative to the project root otherwise."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.project_dir.parent / path


Factory = Callable[[Mapping[str, Any], BackendContext], Any]


@dataclass(frozen=True)
class ProviderSetup:
    """What ``questfoundry init`` writes for a provider this machine offers.

    ``reason`` says why it was chosen ("OpenAI, with the key in OPENAI_API_KEY"); ``text`` and
    ``image`` are the YAML lines of ``providers.text.<name>`` and ``providers.image.<name>``
    (comments welcome; ``image`` None: the provider draws no pictures); ``needs`` names the
    environment variables those lines read, which init warns about when they are unset.
    """

    reason: str
    text: str
    image: str | None = None
    needs: tuple[str, ...] = ()


#: how a provider offers itself to ``questfoundry init``: called with the environment, the
#: ``--base-url`` given (or None) and whether ``--provider`` named it; returns its
#: :class:`ProviderSetup`, or None when this machine does not offer it (a provider named by
#: ``--provider`` answers anyway, so its config can be written before its key is set)
Offer = Callable[[Mapping[str, str], str | None, bool], ProviderSetup | None]

#: generation parameters every provider is asked with (``roles.<role>`` and
#: ``providers.<kind>.<name>`` set them; the core's schema documents each)
GENERATION_PARAMETERS = ("temperature", "max_tokens", "top_p", "stop", "seed", "size", "quality")


@dataclass(frozen=True)
class Backend:
    """What a backend hook registers under a name: more than a bare factory.

    ``settings`` is a JSON Schema fragment of the backend's own keys, ``{"properties": {...}}``
    (``required`` may be given too), self-contained (no ``$ref``): the core validates them where the
    user writes them (e.g. flat in ``caching`` for a cache backend) and lists them in the docs.
    ``capabilities`` are names from :class:`~questfoundry.contracts.protocols.Capability`;
    ``description`` is one line for ``questfoundry plugins``.

    ``priority`` makes the backend its kind's default where config.yml names none: the installed
    one with the highest priority above 0 wins (the file cache uses 10, so answers outlive the
    process wherever it is installed); at 0 everywhere, the core's own default applies.
    For providers, ``priority`` is the order ``questfoundry init`` asks them (highest first) and
    ``setup`` (an :data:`Offer`) how they offer themselves there; without one, init never
    proposes the provider. ``parameters`` (providers only) are generation parameters the
    provider takes beyond the core's (:data:`GENERATION_PARAMETERS`), by name with their JSON
    Schema: config.yml may then set them on roles and providers, and they reach the provider in
    ``ProviderRequest.params``.
    """

    factory: Factory
    settings: Mapping[str, Any] = field(default_factory=dict)
    capabilities: frozenset[str] = frozenset()
    description: str = ""
    priority: int = 0
    parameters: Mapping[str, Any] = field(default_factory=dict)
    setup: Offer | None = None
