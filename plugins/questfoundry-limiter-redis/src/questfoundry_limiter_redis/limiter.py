"""The limiter strategy ``redis``: token buckets every worker on one Redis shares, exactly.

The buckets behave as the core's ``token_bucket`` and ``sqlite`` ones: each holds up to ``limit``
units and refills at ``limit / period`` units per second; taking several is all-or-nothing.

- **One round trip for every layer.** An acquire reads, decides and writes all of its buckets
  (requests and tokens, global and per provider) in one Lua script, which Redis runs atomically:
  workers racing one bucket never take together more than it holds.
- **Redis's clock.** The script reads the server's ``TIME``; the workers' clocks never enter,
  so a worker whose clock is off neither gains nor loses. (A stamp never moves back, so a server
  clock set back refills nothing twice.)
- **Nothing left behind.** A bucket's key expires when it would be full again: a missing key
  reads as a full bucket, so the expiry changes nothing but memory.

Keys: ``<key_prefix>{qf:<namespace>}:rate:<bucket>``, a hash with the level ``l`` and its stamp
``t``. While Redis cannot be reached, ``on_backend_error`` decides (default ``fail_open``: the
provider enforces its own limits, and its 429s are retried).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from questfoundry.kit import BackendContext, BucketLevel, Capability, Rate
from questfoundry_limiter_redis.connection import RedisBackend, Script

#: KEYS: the buckets; ARGV: mode (acquire, adjust, levels), the time ("": the server's), then per
#: bucket its amount, limit and refill per second. Answers "0" (taken), the seconds to wait, or
#: (levels) each bucket's level.
BUCKETS = """
local now = tonumber(ARGV[2])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local mode = ARGV[1]
local levels, stamps = {}, {}
local wait = 0
for i = 1, #KEYS do
  local amount = tonumber(ARGV[3 * i])
  local limit, rate = tonumber(ARGV[3 * i + 1]), tonumber(ARGV[3 * i + 2])
  local stored = redis.call('HMGET', KEYS[i], 'l', 't')
  local level, stamp = limit, now
  if stored[1] then
    level, stamp = tonumber(stored[1]), tonumber(stored[2])
    if now > stamp then
      level = math.min(limit, level + (now - stamp) * rate)
      stamp = now
    end
  end
  levels[i], stamps[i] = level, stamp
  if mode == 'acquire' and amount > level then
    wait = math.max(wait, (amount - level) / rate)
  end
end
if mode == 'levels' then
  for i = 1, #KEYS do levels[i] = string.format('%.17g', levels[i]) end
  return levels
end
if wait > 0 then return string.format('%.17g', wait) end
for i = 1, #KEYS do
  local limit, rate = tonumber(ARGV[3 * i + 1]), tonumber(ARGV[3 * i + 2])
  local level = math.min(limit, levels[i] - tonumber(ARGV[3 * i]))
  redis.call('HSET', KEYS[i], 'l', level, 't', stamps[i])  -- numbers are sent as %.17g: exact
  redis.call('PEXPIRE', KEYS[i], math.ceil((limit - level) / rate * 1000) + 1000)
end
return '0'
"""


class RedisLimiter(RedisBackend):
    """Token buckets keyed by :attr:`Rate.key` in Redis; keys without a rate are unlimited."""

    capabilities: frozenset[str] = frozenset(
        {Capability.SHARED, Capability.PERSISTENT, Capability.ATOMIC}
    )

    def __init__(
        self, settings: Mapping[str, Any], context: BackendContext, rates: Iterable[Rate]
    ) -> None:
        super().__init__("rate limiter", settings, context, "fail_open")
        self._rates = {rate.key: rate for rate in rates}
        # what each call sends for a bucket, made once: its key, limit and refill per second
        self._static = {
            rate.key: (
                f"{self.prefix}rate:{rate.key}",
                repr(rate.limit),
                repr(rate.limit / rate.period),
            )
            for rate in self._rates.values()
        }
        self._script = Script(self.client, BUCKETS)

    def acquire(self, amounts: Mapping[str, float]) -> float:
        if any(
            amount > self._rates[key].limit for key, amount in amounts.items() if key in self._rates
        ):
            return math.inf
        answer = self._call("acquire", amounts)
        if answer is None:
            return 0.0  # Redis is down and the policy lets the call through
        return float(answer)

    def adjust(self, amounts: Mapping[str, float]) -> None:
        self._call("adjust", {key: amount for key, amount in amounts.items() if amount})

    def levels(self) -> Sequence[BucketLevel]:
        if not self._rates:
            return []
        keys, args = self._arguments("levels", dict.fromkeys(self._rates, 0.0))
        answer = self.run(self._script, keys, args, strict=True)
        return [
            BucketLevel(rate.key, float(level), rate.limit, rate.period)
            for rate, level in zip(self._rates.values(), answer, strict=True)
        ]

    def _call(self, mode: str, amounts: Mapping[str, float]) -> Any:
        wanted = {key: amount for key, amount in amounts.items() if key in self._rates}
        if not wanted:
            return b"0"
        keys, args = self._arguments(mode, wanted)
        return self.run(self._script, keys, args)

    def _arguments(self, mode: str, wanted: Mapping[str, float]) -> tuple[list[str], list[Any]]:
        keys: list[str] = []
        args: list[Any] = [mode, self.time.now()]
        for key, amount in wanted.items():
            name, limit, per_second = self._static[key]
            keys.append(name)
            args += (repr(float(amount)), limit, per_second)
        return keys, args
