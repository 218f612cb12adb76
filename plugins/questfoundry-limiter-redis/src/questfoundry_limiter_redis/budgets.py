"""The budget keeper ``redis``: cost budgets every worker on one Redis shares.

A call reserves its estimated cost before it is sent and the ledger settles the hold with the
real cost after; both are one Lua script, run atomically by Redis, so workers racing one budget
pass it together by at most what one call costs beyond its estimate. The ledger (SQLite) still
records every call: Redis holds only the running totals and the holds.

- **Money is exact**: whole pico-dollars (:mod:`questfoundry.kit.money`), added with ``INCRBY``.
- **Windows are calendar days and months in** ``rate_limiting.timezone``, named by the worker
  from its clock, as its ledger names the day of its rows.
- **Holds die on their own.** A hold counts until it is settled or released, or
  ``hold_seconds`` (Redis's clock) after it was made: a worker killed mid-call blocks nothing
  for longer. A call settled after its hold lapsed still counts its cost.

Keys: ``<key_prefix>{qf:<namespace>}:spent:<scope>:<day or month>`` (pico-dollars paid; scope
``*`` for all providers) and ``...:holds`` (a sorted set of holds by deadline). While Redis cannot
be reached, ``on_backend_error`` decides (default ``fail_closed``: no call is sent).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from questfoundry.kit import (
    BackendContext,
    Budget,
    BudgetLevel,
    Capability,
    Hold,
    budget_refusal,
    from_pico,
    to_pico,
)
from questfoundry_limiter_redis.connection import RedisBackend, Script

DEFAULT_HOLD_SECONDS = 900.0  # above the default retry.deadline_seconds (600)
ALL = "*"
#: seconds a window's total is kept after the window ends (time zones differ by up to 26 h)
KEEP = {"day": 3 * 86_400, "month": 62 * 86_400}

#: KEYS[1]: the holds; KEYS[2..]: the spent total of each budget's window. ARGV: mode, the time
#: ("": the server's), then by mode —
#:   reserve: hold id, provider, amount, hold seconds, then each budget's scope and limit;
#:            answers {0} (held) or {index of the refusing budget, what it had used}
#:   levels:  each budget's scope; answers what each has used (paid and held)
#:   settle:  hold id, provider, cost, then the day's and month's keep seconds
#:            (KEYS[2..5]: provider day, provider month, all day, all month)
#:   release: hold id
LEDGER = """
local now = tonumber(ARGV[2])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local mode = ARGV[1]
if mode == 'settle' then
  redis.call('ZREM', KEYS[1], ARGV[3])
  if ARGV[5] ~= '0' then
    for i = 2, 5 do
      redis.call('INCRBY', KEYS[i], ARGV[5])
      redis.call('EXPIRE', KEYS[i], ARGV[6 + (i % 2)])
    end
  end
  return 0
end
if mode == 'release' then return redis.call('ZREM', KEYS[1], ARGV[3]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = {[''] = 0}
for _, hold in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local provider, amount = string.match(hold, '^([^|]*)|(%d+)|')
  held[''] = held[''] + tonumber(amount)
  held[provider] = (held[provider] or 0) + tonumber(amount)
end
local first = mode == 'reserve' and 7 or 3
local used = {}
for i = 2, #KEYS do
  local scope = ARGV[first + 2 * (i - 2)]
  local mine = held[scope == '*' and '' or scope] or 0
  used[i - 1] = tonumber(redis.call('GET', KEYS[i]) or '0') + mine
end
if mode == 'levels' then
  for i = 1, #used do used[i] = string.format('%.17g', used[i]) end
  return used
end
local amount = tonumber(ARGV[5])
for i = 1, #used do
  if used[i] + amount > tonumber(ARGV[first + 2 * (i - 1) + 1]) then
    return {i, string.format('%.17g', used[i])}
  end
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[6]), ARGV[4] .. '|' .. ARGV[5] .. '|' .. ARGV[3])
return {0}
"""


class RedisBudgetKeeper(RedisBackend):
    """Budgets whose holds and totals live in Redis; see the module docstring."""

    capabilities: frozenset[str] = frozenset(
        {Capability.SHARED, Capability.PERSISTENT, Capability.ATOMIC}
    )

    def __init__(
        self, settings: Mapping[str, Any], context: BackendContext, budgets: Iterable[Budget]
    ) -> None:
        super().__init__("budget keeper", settings, context, "fail_closed")
        self.budgets = tuple(budgets)
        self.clock = context.clock
        self.hold_seconds = float(settings.get("hold_seconds", DEFAULT_HOLD_SECONDS))
        self._zone = ZoneInfo(settings.get("timezone") or "UTC")
        self._holds = f"{self.prefix}holds"
        self._script = Script(self.client, LEDGER)

    def reserve(self, provider: str, estimate: Decimal) -> Hold | None:
        applying = [budget for budget in self.budgets if budget.applies_to(provider)]
        if not applying:
            return None
        amount = max(0, to_pico(estimate))
        token = uuid.uuid4().hex
        keys, pairs = self._windows(applying)
        args = ["reserve", self.time.now(), token, provider, str(amount), repr(self.hold_seconds)]
        answer = self.run(self._script, keys, [*args, *pairs])
        if answer is None:
            return None  # Redis is down and the policy lets the call through: nothing is held
        refused, *used = answer
        if refused:
            raise budget_refusal(
                applying[int(refused) - 1], int(Decimal(used[0].decode())), estimate
            )
        return Hold(f"{provider}|{amount}|{token}", provider, from_pico(amount), self)

    def settle(self, hold: Hold, cost: Decimal | None) -> None:
        day = self._day()
        spans = [day, day[:7]]
        keys = [
            self._holds,
            *(self._spent(scope, span) for scope in (hold.provider, ALL) for span in spans),
        ]
        pico = 0 if cost is None else max(0, to_pico(cost))
        args = [
            "settle",
            "",
            hold.id,
            hold.provider,
            str(pico),
            str(KEEP["day"]),
            str(KEEP["month"]),
        ]
        self.run(self._script, keys, args, strict=True)

    def release(self, hold: Hold | None) -> None:
        if hold is not None:
            self.run(self._script, [self._holds], ["release", "", hold.id], strict=True)

    def levels(self) -> Sequence[BudgetLevel]:
        keys, args = self._windows(self.budgets)
        answer = self.run(self._script, keys, ["levels", self.time.now(), *args], strict=True)
        return [
            BudgetLevel(
                budget.scope, budget.period, budget.limit, from_pico(int(Decimal(used.decode())))
            )
            for budget, used in zip(self.budgets, answer, strict=True)
        ]

    # ------------------------------------------------------------------ internals

    def _windows(self, budgets: Sequence[Budget]) -> tuple[list[str], list[str]]:
        """The holds' key and each budget's window total, with each budget's scope and limit."""
        day = self._day()
        keys, args = [self._holds], list[str]()
        for budget in budgets:
            scope = budget.scope or ALL
            keys.append(self._spent(scope, day if budget.period == "day" else day[:7]))
            args += (scope, str(to_pico(budget.limit)))
        return keys, args

    def _spent(self, scope: str, span: str) -> str:
        return f"{self.prefix}spent:{scope}:{span}"

    def _day(self) -> str:
        return datetime.fromtimestamp(self.clock.time(), self._zone).date().isoformat()
