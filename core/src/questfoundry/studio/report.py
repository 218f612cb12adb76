"""What a loop run cost, role by role: calls, cache hits, tokens, money spent and saved, waits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from questfoundry.contracts.records import Reply
from questfoundry.kit.money import usd
from questfoundry.studio.role import Role

ZERO = Decimal(0)


@dataclass
class RoleUsage:
    """One role's calls in one run. ``calls`` counts every request; ``cache_hits`` and
    ``coalesced`` of them cost nothing. ``tokens`` and ``cost`` are what providers were paid for;
    ``unpriced`` counts paid calls no cost model could price; ``waits`` are the calls' waits on
    limits, each ``(start, seconds)``."""

    role: str
    provider: str
    model: str
    calls: int = 0
    cache_hits: int = 0
    coalesced: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: Decimal = ZERO
    saved: Decimal = ZERO
    unpriced: int = 0
    waits: list[tuple[float, float]] = field(default_factory=list)

    @property
    def provider_calls(self) -> int:
        return self.calls - self.cache_hits - self.coalesced

    @property
    def waited(self) -> float:
        """Seconds during which at least one of these calls waited on a limit: wall time, so
        calls a limit held at the same time count once (never more than the run lasted)."""
        return wall_seconds(self.waits)

    def add(self, reply: Reply) -> None:
        self.calls += 1
        self.waits.extend(reply.waits)
        if reply.cache_hit or reply.coalesced:
            self.cache_hits += reply.cache_hit
            self.coalesced += reply.coalesced
            self.saved += reply.saved or ZERO
            return
        self.input_tokens += reply.usage.input_tokens
        self.output_tokens += reply.usage.output_tokens
        if reply.cost is None:
            self.unpriced += 1
        else:
            self.cost += reply.cost

    def merged(self, other: RoleUsage) -> RoleUsage:
        """The sum of two usages (the totals row)."""
        return RoleUsage(
            self.role,
            self.provider,
            self.model,
            *(getattr(self, n) + getattr(other, n) for n in _SUMMED),
        )

    def as_json(self) -> dict[str, Any]:
        """Counts as numbers, money as decimal strings, seconds as a number."""
        return {
            "role": self.role,
            "provider": self.provider,
            "model": self.model,
            "calls": self.calls,
            "provider_calls": self.provider_calls,
            "cache_hits": self.cache_hits,
            "coalesced": self.coalesced,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost": format(self.cost, "f"),
            "saved": format(self.saved, "f"),
            "unpriced_calls": self.unpriced,
            "waited_seconds": round(self.waited, 3),
        }


_SUMMED = (
    "calls",
    "cache_hits",
    "coalesced",
    "input_tokens",
    "output_tokens",
    "cost",
    "saved",
    "unpriced",
    "waits",
)


class Tally:
    """Adds up the replies of one run, role by role, in the order roles first spoke."""

    def __init__(self) -> None:
        self.roles: dict[str, RoleUsage] = {}

    def add(self, role: Role, reply: Reply) -> None:
        usage = self.roles.get(role.name)
        if usage is None:
            usage = RoleUsage(role.name, reply.provider, reply.model)
            self.roles[role.name] = usage
        usage.add(reply)


@dataclass
class RunReport:
    """What one run of a loop did: per-role usage, totals, repairs, what it wrote and where.

    ``status`` is ``done`` (``estimate`` for a forecast); ``resumed`` says the run continued an
    interrupted one; ``skipped`` names steps an earlier attempt of the run had finished;
    ``outputs`` maps names (``html``, ``markdown``) to the files written; ``notes`` are what the
    run tells the author (``the plotwright invented a premise``).
    """

    run_id: str
    loop: str
    sections: int
    status: str
    resumed: bool
    roles: Sequence[RoleUsage]
    repairs: Sequence[str] = ()
    skipped: Sequence[str] = ()
    outputs: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    notes: Sequence[str] = ()

    @property
    def totals(self) -> RoleUsage:
        total = RoleUsage("total", "", "")
        for usage in self.roles:
            total = total.merged(usage)
        return total

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "loop": self.loop,
            "sections": self.sections,
            "status": self.status,
            "resumed": self.resumed,
            "seconds": round(self.seconds, 3),
            "roles": [usage.as_json() for usage in self.roles],
            "totals": self.totals.as_json(),
            "repairs": list(self.repairs),
            "skipped_steps": list(self.skipped),
            "outputs": dict(self.outputs),
            "notes": list(self.notes),
        }

    COLUMNS = (
        "role",
        "provider",
        "model",
        "calls",
        "cache hits",
        "tokens in",
        "tokens out",
        "cost",
        "saved",
        "waited s",
    )

    def rows(self) -> list[tuple[Any, ...]]:
        """The report table: one row per role, then the totals."""
        return [_row(usage) for usage in (*self.roles, self.totals)]


def wall_seconds(spans: Sequence[tuple[float, float]]) -> float:
    """How long at least one of ``spans`` (each ``(start, seconds)``) was going on."""
    total, reached = 0.0, float("-inf")
    for start, seconds in sorted(spans):
        end = start + seconds
        if end > reached:
            total += end - max(start, reached)
            reached = end
    return total


def _row(usage: RoleUsage) -> tuple[Any, ...]:
    cost = usd(usage.cost) + (f" (+{usage.unpriced} unpriced)" if usage.unpriced else "")
    return (
        usage.role,
        usage.provider,
        usage.model,
        usage.calls,
        usage.cache_hits + usage.coalesced,
        usage.input_tokens,
        usage.output_tokens,
        cost,
        usd(usage.saved),
        f"{usage.waited:.2f}",
    )
