"""Conformance suite for limiter strategies: subclass :class:`LimiterContract` in your tests.

::

    from questfoundry.testing.limiter_contract import LimiterContract
    from my_plugin import make_my_limiter

    class TestMyLimiter(LimiterContract):
        @pytest.fixture
        def limiter_factory(self):
            return make_my_limiter          # the factory your plugin registers

        @pytest.fixture
        def limiter_settings(self):
            return {"redis_url": "redis://localhost:6379/15"}   # its own settings, if any

The suite builds empty limiters with ``limiter_factory({**limiter_settings, "rates": [...]},
backend_context)`` — a fresh ``backend_context`` (temporary project, fake clock) per test — and
closes them after the test. Time moves with the fake clock; a limiter must read
``context.clock``. The cross-process test, which runs only for a limiter declaring
``Capability.SHARED``, starts real processes that build the limiter with the same factory (so it
must be a module-level function), settings (JSON) and project folder, on the real clock, and checks
that together they take exactly what the bucket holds: no more, no less.

A subclass that defines a test with the name of a standard test is refused when the class is
created: a silently replaced standard test would let a non-conforming backend pass.
"""

from __future__ import annotations

import json
import math
import textwrap
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from questfoundry.contracts.backends import BackendContext, Clock, Factory
from questfoundry.contracts.protocols import Capability, Limiter
from questfoundry.contracts.records import Rate
from questfoundry.testing.clock import FakeClock
from questfoundry.testing.contract import StandardSuite
from questfoundry.testing.racing import READY, race

MakeLimiter = Callable[..., Limiter]

#: a period so long that no bucket refills while a test runs
FOREVER = 1e9

PROCESSES = 4
ATTEMPTS_PER_PROCESS = 1000

_TAKER = (
    textwrap.dedent(
        """
    import importlib, json, sys
    from pathlib import Path
    from questfoundry.contracts.backends import BackendContext
    from questfoundry.contracts.records import Rate

    spec = json.loads(sys.argv[1])
    module, _, name = spec["factory"].partition(":")
    factory = getattr(importlib.import_module(module), name)
    context = BackendContext(Path(spec["project_dir"]), spec["namespace"])
    rates = [Rate(*rate) for rate in spec["rates"]]
    limiter = factory({**spec["settings"], "rates": rates}, context)
    READY
    taken = sum(limiter.acquire({"shared": 1.0}) == 0.0 for _ in range(spec["attempts"]))
    limiter.close()
    print(taken)
    """
    )
).replace("READY", READY)


class LimiterContract(StandardSuite):
    """Standard tests every :class:`~questfoundry.contracts.protocols.Limiter` must pass.

    Override :meth:`limiter_factory` (and :meth:`limiter_settings` when the limiter needs some).
    """

    @pytest.fixture
    def limiter_factory(self) -> Factory:
        """Override: return the factory that builds your limiter, as your plugin registers it."""
        raise NotImplementedError(
            f"{type(self).__qualname__} must define a `limiter_factory` fixture"
        )

    @pytest.fixture
    def limiter_settings(self) -> Mapping[str, Any]:
        """Override to pass the limiter its own ``rate_limiting`` settings (JSON-able)."""
        return {}

    @pytest.fixture
    def make_limiter(
        self,
        limiter_factory: Factory,
        limiter_settings: Mapping[str, Any],
        backend_context: BackendContext,
    ) -> Iterator[MakeLimiter]:
        """``make_limiter(*rates)``: an empty limiter enforcing ``rates``, closed after the test."""
        made: list[Limiter] = []

        def make(*rates: Rate, context: BackendContext = backend_context) -> Limiter:
            limiter: Limiter = limiter_factory({**limiter_settings, "rates": list(rates)}, context)
            made.append(limiter)
            return limiter

        yield make
        for limiter in made:
            limiter.close()

    @staticmethod
    def requires(limiter: Limiter, capability: str) -> None:
        """Skip the calling test unless ``limiter`` declares ``capability``."""
        if capability not in limiter.capabilities:
            pytest.skip(f"the limiter does not declare Capability {capability!r}")

    @staticmethod
    def available(limiter: Limiter) -> dict[str, float]:
        return {level.key: level.available for level in limiter.levels()}

    # ------------------------------------------------------------------ standard tests

    def test_limiter_satisfies_the_protocol(self, make_limiter: MakeLimiter) -> None:
        limiter = make_limiter(Rate("global/requests", 10, 60))
        assert isinstance(limiter, Limiter)
        assert isinstance(limiter.capabilities, frozenset)

    def test_a_new_bucket_is_full(self, make_limiter: MakeLimiter) -> None:
        limiter = make_limiter(Rate("global/requests", 10, 60), Rate("global/tokens", 500, 3600))
        levels = {level.key: level for level in limiter.levels()}
        assert set(levels) == {"global/requests", "global/tokens"}
        assert levels["global/requests"].available == 10
        assert (levels["global/tokens"].limit, levels["global/tokens"].period) == (500, 3600)

    def test_a_key_without_a_rate_is_unlimited(self, make_limiter: MakeLimiter) -> None:
        limiter = make_limiter(Rate("global/requests", 1, 60))
        assert limiter.acquire({"provider:openai/tokens": 1e12}) == 0.0
        assert limiter.acquire({}) == 0.0

    def test_acquire_takes_every_amount_when_all_fit(self, make_limiter: MakeLimiter) -> None:
        limiter = make_limiter(Rate("a", 10, FOREVER), Rate("b", 100, FOREVER))
        assert limiter.acquire({"a": 3, "b": 40}) == 0.0
        assert self.available(limiter) == pytest.approx({"a": 7, "b": 60})

    def test_acquire_is_all_or_nothing(self, make_limiter: MakeLimiter) -> None:
        limiter = make_limiter(Rate("a", 10, FOREVER), Rate("b", 100, FOREVER))
        limiter.acquire({"b": 90})
        assert limiter.acquire({"a": 1, "b": 20}) > 0
        assert self.available(limiter) == pytest.approx({"a": 10, "b": 10})

    def test_a_refused_acquire_says_how_long_until_it_fits(
        self, make_limiter: MakeLimiter, fake_clock: FakeClock
    ) -> None:
        limiter = make_limiter(Rate("a", 60, 60), Rate("b", 3600, 3600))  # both 1 unit/s
        assert limiter.acquire({"a": 60, "b": 3600}) == 0.0
        wait = limiter.acquire({"a": 2, "b": 5})
        assert wait == pytest.approx(5.0)  # the slower bucket decides
        fake_clock.advance(wait)
        assert limiter.acquire({"a": 2, "b": 5}) == 0.0

    def test_buckets_refill_with_time_up_to_their_limit(
        self, make_limiter: MakeLimiter, fake_clock: FakeClock
    ) -> None:
        limiter = make_limiter(Rate("a", 60, 60))
        limiter.acquire({"a": 60})
        fake_clock.advance(30)
        assert self.available(limiter)["a"] == pytest.approx(30)
        fake_clock.advance(3600)
        assert self.available(limiter)["a"] == pytest.approx(60)

    def test_more_than_a_whole_bucket_can_never_be_taken(self, make_limiter: MakeLimiter) -> None:
        limiter = make_limiter(Rate("a", 10, 60), Rate("b", 10, 60))
        assert limiter.acquire({"a": 1, "b": 11}) == math.inf
        assert self.available(limiter) == pytest.approx({"a": 10, "b": 10})

    def test_adjust_takes_and_gives_back_without_waiting(self, make_limiter: MakeLimiter) -> None:
        limiter = make_limiter(Rate("tokens", 100, FOREVER))
        limiter.acquire({"tokens": 50})
        limiter.adjust({"tokens": -20, "unlimited": 5})  # the call used fewer than estimated
        assert self.available(limiter)["tokens"] == pytest.approx(70)
        limiter.adjust({"tokens": -500})
        assert self.available(limiter)["tokens"] == pytest.approx(100)  # never above the limit

    def test_adjust_past_empty_makes_the_next_acquire_wait(
        self, make_limiter: MakeLimiter, fake_clock: FakeClock
    ) -> None:
        limiter = make_limiter(Rate("tokens", 60, 60))
        limiter.acquire({"tokens": 50})
        limiter.adjust({"tokens": 30})  # the call used more than estimated
        assert self.available(limiter)["tokens"] == pytest.approx(-20)
        assert limiter.acquire({"tokens": 10}) == pytest.approx(30)
        fake_clock.advance(30)
        assert limiter.acquire({"tokens": 10}) == 0.0

    def test_threads_racing_one_bucket_take_exactly_what_it_holds(
        self, make_limiter: MakeLimiter
    ) -> None:
        limiter = make_limiter(Rate("shared", 100, FOREVER))
        taken = []
        lock = threading.Lock()

        def take() -> None:
            mine = sum(limiter.acquire({"shared": 1}) == 0.0 for _ in range(40))
            with lock:
                taken.append(mine)

        threads = [threading.Thread(target=take) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sum(taken) == 100

    @pytest.mark.slow
    def test_processes_racing_one_bucket_take_exactly_what_it_holds(
        self,
        make_limiter: MakeLimiter,
        limiter_factory: Factory,
        limiter_settings: Mapping[str, Any],
        backend_context: BackendContext,
    ) -> None:
        limit = 2000
        rate = Rate("shared", limit, FOREVER)
        real = BackendContext(backend_context.project_dir, backend_context.namespace, Clock())
        watcher = make_limiter(rate, context=real)
        self.requires(watcher, Capability.SHARED)
        spec = {
            "factory": f"{limiter_factory.__module__}:{limiter_factory.__qualname__}",
            "settings": dict(limiter_settings),
            "project_dir": str(real.project_dir),
            "namespace": real.namespace,
            "rates": [[rate.key, rate.limit, rate.period]],
            "attempts": ATTEMPTS_PER_PROCESS,
        }
        taken = [int(line) for line in race(_TAKER, [json.dumps(spec)], PROCESSES)]

        assert sum(taken) == limit  # no overshoot, and nothing left unused
        assert self.available(watcher)["shared"] == pytest.approx(0, abs=1e-3)
