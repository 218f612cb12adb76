"""Planning a call: everything decided about a request before anything is sent.

The role is resolved to a provider, model and parameters; the cache policy for that provider is
looked up; the canonical fields are hashed into the cache key. The provider request and the token
estimate are built only when a call is really made, so a cache hit costs no more than its key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from questfoundry.config.rates import budgets_from
from questfoundry.contracts.records import CacheMode, Kind, Message, ProviderRequest, Request, Usage
from questfoundry.gateway.admission import estimate_usage
from questfoundry.gateway.keys import canonical_fields, key_of

if TYPE_CHECKING:
    from questfoundry.gateway.backends import Backends

DEFAULT_TTL = 86_400.0
_MODES: dict[str, CacheMode] = {mode.value: mode for mode in CacheMode}


@dataclass(slots=True)
class Plan:
    """One planned call. ``key`` is empty when the provider's replies are not cached."""

    provider: str
    model: str
    kind: Kind
    messages: Sequence[Message | Mapping[str, str]]
    prompt: str | None
    params: Mapping[str, Any]
    timeout: float | None
    role: str | None
    key: str
    read: bool
    write: bool
    ttl: float | None
    _request: ProviderRequest | None = field(default=None, repr=False)
    _estimate: Usage | None = field(default=None, repr=False)

    @property
    def request(self) -> ProviderRequest:
        """What the provider is sent (the pipeline sets ``timeout`` for each attempt)."""
        if self._request is None:
            messages = tuple(
                m if isinstance(m, Message) else Message(m["role"], m["content"])
                for m in self.messages
            )
            self._request = ProviderRequest(
                self.model, messages, self.prompt, self.kind, self.params, self.timeout
            )
        return self._request

    @property
    def estimate(self) -> Usage:
        """A generous guess of the tokens the call uses, for limits and budgets."""
        if self._estimate is None:
            request = self.request
            self._estimate = estimate_usage(request.messages, request.prompt, request.params)
        return self._estimate


@dataclass(frozen=True, slots=True)
class Route:
    """What a role (with its runtime overrides) resolves to, remembered per planner."""

    provider: str
    model: str
    kind: Kind
    params: Mapping[str, Any]  #: the role's parameters, with the output cap when one applies
    own: Mapping[str, Any]  #: the role's parameters as resolved
    cap: int | None
    cached: bool
    ttl: float | None


class Planner:
    """Turns requests into plans for one runtime; remembers each route's decisions."""

    def __init__(self, runtime: Backends) -> None:
        self.runtime = runtime
        self._caching = runtime.config.section("caching")
        self._routes: dict[tuple[str | None, str | None, str | None], Route] = {}
        self._policies: dict[str, tuple[bool, float | None]] = {}
        self._caps: dict[str, int | None] = {}
        self._timeouts: dict[tuple[str, Kind], float | None] = {}

    def plan(self, request: Request) -> Plan:
        """Resolve the role, decide how the cache is used and compute the key."""
        route = self._routes.get((request.role, request.provider, request.model))
        if route is None:
            route = self.route(request.role, request.provider, request.model)
        kind = route.kind
        params = route.params
        if request.params or (request.kind and request.kind != kind):
            kind = request.kind or kind
            params = {**route.own, **request.params}
            if route.cap is not None and kind == "text" and not params.get("max_tokens"):
                params["max_tokens"] = route.cap
        if request.cache is CacheMode.DEFAULT:
            read = write = route.cached
        else:
            mode = _MODES.get(request.cache)
            if mode is None:
                choices = ", ".join(_MODES)
                raise ValueError(f"cache mode {request.cache!r} is not one of {choices}")
            read = route.cached and mode in (CacheMode.DEFAULT, CacheMode.NO_STORE)
            write = route.cached and mode in (CacheMode.DEFAULT, CacheMode.REFRESH)
        key = ""
        if route.cached:
            fields = canonical_fields(
                route.provider, route.model, kind, request.messages, request.prompt, params
            )
            key = key_of(self.runtime.context.namespace, fields)
        return Plan(
            route.provider,
            route.model,
            kind,
            request.messages,
            request.prompt,
            params,
            request.timeout,
            request.role,
            key,
            read,
            write,
            route.ttl if request.cache_ttl is None else request.cache_ttl,
        )

    def route(self, role: str | None, provider: str | None, model: str | None) -> Route:
        """Resolve ``role`` with its overrides once; later plans reuse the answer."""
        routed = self.runtime.resolve(role, provider, model)
        kind: Kind = getattr(routed, "kind", None) or "text"
        cap = self.output_cap(routed.provider)
        params: Mapping[str, Any] = routed.params
        if cap is not None and kind == "text" and not params.get("max_tokens"):
            params = {**params, "max_tokens": cap}
        cached, ttl = self.cache_policy(routed.provider)
        route = Route(routed.provider, routed.model, kind, params, routed.params, cap, cached, ttl)
        self._routes[(role, provider, model)] = route
        return route

    def cache_policy(self, provider: str) -> tuple[bool, float | None]:
        """Whether ``provider``'s replies are cached, and for how long."""
        policy = self._policies.get(provider)
        if policy is None:
            own = (self._caching.get("per_provider") or {}).get(provider) or {}
            enabled = self.runtime.cache is not None and own.get("enabled", True)
            ttl = own.get("ttl_seconds", self._caching.get("ttl_seconds", DEFAULT_TTL))
            policy = self._policies[provider] = (bool(enabled), ttl)
        return policy

    def output_cap(self, provider: str) -> int | None:
        """The ``max_tokens`` sent when a budget applies and the request sets none."""
        if provider not in self._caps:
            limits = self.runtime.config.section("rate_limiting")
            budgeted = limits.get("enabled", True) and any(
                budget.applies_to(provider) for budget in budgets_from(limits)
            )
            self._caps[provider] = int(limits.get("max_output_tokens", 4096)) if budgeted else None
        return self._caps[provider]

    def attempt_timeout(self, provider: str, kind: Kind) -> float | None:
        """``timeout_seconds`` of the provider's settings: the deadline of one attempt."""
        handle = (provider, kind)
        if handle not in self._timeouts:
            value = self.runtime.provider_settings(provider, kind).get("timeout_seconds")
            self._timeouts[handle] = None if value is None else float(value)
        return self._timeouts[handle]
