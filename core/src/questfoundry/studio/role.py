"""A role of the studio brought to life: its resolved provider, its instructions, its calls.

A :class:`Role` sends every call through the runtime's gateway with ``role`` set, so caching,
limits, budgets, retries and the ledger apply, and reports know which role spent what.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from questfoundry.contracts.protocols import Provider
from questfoundry.contracts.records import Kind, Message, Reply, Request
from questfoundry.contracts.studio import RoleProvider, RoleSpec

if TYPE_CHECKING:
    from questfoundry.runtime import Runtime

STUDIO = "a studio of roles writing a branching gamebook together"


def instructions_for(spec: RoleSpec) -> str:
    """The system prompt a role speaks under: who it is and what it does in the studio."""
    does = f" Your job: {spec.description}." if spec.description else ""
    return f"You are the {spec.name.replace('_', ' ')} of {STUDIO}.{does}"


@dataclass(frozen=True)
class Role:
    """A catalogue entry with its resolved provider settings and its instructions.

    ``resolved`` says which provider, model and parameters the role uses and where each came from
    (:meth:`Runtime.resolve <questfoundry.runtime.Runtime.resolve>`).
    """

    spec: RoleSpec
    resolved: RoleProvider
    instructions: str
    runtime: Runtime = field(repr=False, compare=False)

    @classmethod
    def of(cls, runtime: Runtime, spec: RoleSpec) -> Role:
        """``spec`` resolved against ``runtime``'s config (overrides included)."""
        return cls(spec, runtime.resolve(spec.name), instructions_for(spec), runtime)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> Kind:
        return self.resolved.kind or self.spec.kind

    @property
    def provider(self) -> Provider:
        """The pooled provider instance this role calls (shared by roles of equal settings)."""
        return self.runtime.provider(self.resolved.provider, self.kind)

    def request(
        self, prompt: str, *, instructions: str = "", params: Mapping[str, Any] | None = None
    ) -> Request:
        """The gateway request for ``prompt``: the role's instructions (plus ``instructions``)
        as the system message for text, one prompt for images."""
        if self.kind == "image":
            return Request(prompt=prompt, role=self.name, kind="image", params=params or {})
        system = f"{self.instructions}\n\n{instructions}" if instructions else self.instructions
        messages = (Message("system", system), Message("user", prompt))
        return Request(messages=messages, role=self.name, params=params or {})

    def generate(
        self, prompt: str, *, instructions: str = "", params: Mapping[str, Any] | None = None
    ) -> Reply:
        """Answer ``prompt`` through the gateway (cache, limits, retries, ledger)."""
        request = self.request(prompt, instructions=instructions, params=params)
        return self.runtime.gateway.generate(request)

    async def agenerate(
        self, prompt: str, *, instructions: str = "", params: Mapping[str, Any] | None = None
    ) -> Reply:
        """:meth:`generate` for asyncio."""
        request = self.request(prompt, instructions=instructions, params=params)
        return await self.runtime.gateway.agenerate(request)


class Cast(Protocol):
    """What a run needs of the studio that starts it (the :class:`~.showrunner.Showrunner`):
    the runtime, each role by name, and how many calls may be in flight at once."""

    runtime: Runtime
    concurrency: int

    def role(self, name: str) -> Role: ...
