"""The scale-out benchmark, in one run on Redis: the cache (a hit beside its floor, what an
outage adds) and the limiter (acquires beside a raw GET, round trips per acquire, one and four
processes).

    python benchmarks/scale_out.py [--quick]        (needs redis-server on PATH)

Each part starts a private ``redis-server`` of its own; see ``redis_cache.py`` and
``redis_limiter.py`` for what each row measures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import redis_cache
import redis_limiter
from rows import table


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, no pacing")
    args = parser.parse_args()
    cache = redis_cache.run(quick=args.quick)
    limiter = redis_limiter.run(quick=args.quick)
    print(table([{"operation": "cache (questfoundry-cache-redis)"}, *cache,
                 {"operation": "limiter (questfoundry-limiter-redis)"}, *limiter]))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
