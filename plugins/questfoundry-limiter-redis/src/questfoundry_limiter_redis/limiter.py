"""The limiter strategy ``redis``: token buckets every worker on one Redis shares, exactly.

The buckets behave as the core's ``token_bucket`` and ``sqlite`` ones: each holds up to ``limit``
units and refills at ``limit / period`` units per second; taking several is all-or-nothing.

- **One round trip, one hash, for every layer.** The buckets of a project (requests and tokens,
  global and per provider) are fields of one hash; an acquire reads, decides and writes all of
  its buckets with one ``HMGET`` and one ``HSET`` inside one Lua script, which Redis runs
  atomically: workers racing one bucket never take together more than it holds.
- **Redis's clock.** The script reads the server's ``TIME``; the workers' clocks never enter,
  so a worker whose clock is off neither gains nor loses. (A stamp never moves back, so a server
  clock set back refills nothing twice.)
- **Nothing left behind.** The hash expires a minute after every bucket in it would be full
  again: a missing bucket reads as a full one, so the expiry changes nothing but memory. The
  expiry is kept in the hash too (``~e``) and pushed back only when a bucket needs more, so most
  acquires do not touch it.

Keys: ``<key_prefix>{qf:<namespace>}:rates``, a hash with each bucket's level ``<bucket>:l`` and
its stamp ``<bucket>:t``, and ``~e``: when the hash expires (Redis's clock, in seconds). While
Redis cannot be reached, ``on_backend_error`` decides (default ``fail_open``: the provider
enforces its own limits, and its 429s are retried).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from questfoundry.kit import BackendContext, BucketLevel, Capability, Rate
from questfoundry_limiter_redis.connection import RedisBackend, Script

#: KEYS[1]: the project's hash of buckets; ARGV: mode (acquire, adjust, levels), the time ("": the
#: server's), the buckets (each its name, zero-ended, then its limit and refill per second as
#: little-endian doubles; made once per set of buckets) and their amounts (doubles). Answers "0"
#: (taken), the seconds to wait, or (levels) each bucket's level. Four arguments whatever the
#: number of buckets, read by Redis's C ``struct``: sending and parsing are most of the cost.
BUCKETS = """
local now = tonumber(ARGV[2])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local mode = ARGV[1]
local fields, limits, rates = {}, {}, {}
local count, at, spec = 0, 1, ARGV[3]
while at <= #spec do
  local name
  count = count + 1
  name, limits[count], rates[count], at = struct.unpack('<sdd', spec, at)
  fields[2 * count - 1], fields[2 * count] = name .. ':l', name .. ':t'
end
local amounts = {struct.unpack('<' .. string.rep('d', count), ARGV[4])}
fields[2 * count + 1] = '~e'
local stored = redis.call('HMGET', KEYS[1], unpack(fields))
local levels, stamps = {}, {}
local wait = 0
for i = 1, count do
  local level, stamp = limits[i], now
  if stored[2 * i - 1] then
    level, stamp = tonumber(stored[2 * i - 1]), tonumber(stored[2 * i])
    if now > stamp then
      level = math.min(limits[i], level + (now - stamp) * rates[i])
      stamp = now
    end
  end
  levels[i], stamps[i] = level, stamp
  if mode == 'acquire' and amounts[i] > level then
    wait = math.max(wait, (amounts[i] - level) / rates[i])
  end
end
if mode == 'levels' then
  for i = 1, count do levels[i] = string.format('%.17g', levels[i]) end
  return levels
end
if wait > 0 then return string.format('%.17g', wait) end
local values, full = {}, 0
for i = 1, count do
  local level = math.min(limits[i], levels[i] - amounts[i])
  values[4 * i - 3], values[4 * i - 2] = fields[2 * i - 1], level
  values[4 * i - 1], values[4 * i] = fields[2 * i], stamps[i]
  full = math.max(full, (limits[i] - level) / rates[i])
end
local expires = tonumber(stored[2 * count + 1]) or 0
local later = now + full + 1 > expires
if later then
  expires = now + full + 60
  values[4 * count + 1], values[4 * count + 2] = '~e', expires
end
redis.call('HSET', KEYS[1], unpack(values))
if later then redis.call('PEXPIRE', KEYS[1], math.ceil((expires - now) * 1000)) end
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
        self._hash = f"{self.prefix}rates"
        self._specs: dict[tuple[str, ...], bytes] = {}  # what is sent for a set of buckets
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
        args = self._arguments("levels", dict.fromkeys(self._rates, 0.0))
        answer = self.run(self._script, [self._hash], args, strict=True)
        return [
            BucketLevel(rate.key, float(level), rate.limit, rate.period)
            for rate, level in zip(self._rates.values(), answer, strict=True)
        ]

    def _call(self, mode: str, amounts: Mapping[str, float]) -> Any:
        wanted = {key: amount for key, amount in amounts.items() if key in self._rates}
        if not wanted:
            return b"0"
        return self.run(self._script, [self._hash], self._arguments(mode, wanted))

    def _arguments(self, mode: str, wanted: Mapping[str, float]) -> list[Any]:
        names = tuple(wanted)
        spec = self._specs.get(names)
        if spec is None:
            rates = [self._rates[name] for name in names]
            spec = self._specs[names] = b"".join(
                name.encode() + b"\0" + struct.pack("<dd", rate.limit, rate.limit / rate.period)
                for name, rate in zip(names, rates, strict=True)
            )
        amounts = struct.pack(f"<{len(names)}d", *wanted.values())
        return [mode, self.time.now(), spec, amounts]
