"""Conformance suite for cost models: subclass :class:`CostModelContract` in your plugin's tests.

::

    from questfoundry.testing.cost_contract import CostModelContract

    class TestMyPrices(CostModelContract):
        known_model = "my-model-large"
        unknown_model = "no-such-model"

        @pytest.fixture
        def cost_model(self, backend_context):
            return make_my_cost_model({}, backend_context)

Every standard test then runs against your cost model. The base class has no ``Test`` prefix so
pytest collects it only through subclasses. A subclass that defines a test with the same name as a
standard one is refused when the class is created: a silently replaced standard test would let a
non-conforming cost model pass. To replace one on purpose, decorate it with
:func:`replaces_standard_test` and say why.

A cost model must never fetch prices over the network. The standard suite checks that pricing opens
no socket; :func:`price_offline_in_fresh_interpreter` checks it also for importing the plugin and
building the cost model, and that no background thread (a price updater) is left running.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

import pytest

from questfoundry.contracts.protocols import CostModel
from questfoundry.contracts.records import Usage
from questfoundry.testing.contract import StandardSuite, replaces_standard_test

__all__ = ["CostModelContract", "price_offline_in_fresh_interpreter", "replaces_standard_test"]


#: a usage with every kind of token, for tests that only need "some" usage
SOME_USAGE = Usage(input_tokens=1_200, output_tokens=300, cached_input_tokens=200)


class CostModelContract(StandardSuite):
    """Standard tests every :class:`~questfoundry.contracts.protocols.CostModel` must pass.

    Set :attr:`known_model` and :attr:`unknown_model`, and override the :meth:`cost_model` fixture.
    """

    #: a model this cost model prices above zero; None for a cost model where every token is free
    known_model: ClassVar[str | None] = None
    #: a model name this cost model has no price for
    unknown_model: ClassVar[str] = "questfoundry-contract-no-such-model"
    #: True when no model is unknown (flat prices from config, free models): never None
    prices_every_model: ClassVar[bool] = False

    @pytest.fixture
    def cost_model(self) -> CostModel:
        """Override: return the cost model under test."""
        raise NotImplementedError("override the cost_model fixture to return the cost model")

    # ------------------------------------------------------------------ helpers

    @property
    def free(self) -> bool:
        """A cost model with no known_model prices every token at zero."""
        return self.known_model is None

    @property
    def priced_model(self) -> str:
        """The model the standard tests price: the known one, or any name for a free model."""
        return self.known_model if self.known_model is not None else self.unknown_model

    def _price(self, cost_model: CostModel, usage: Usage, model: str | None = None) -> Decimal:
        cost = cost_model.price(model or self.priced_model, usage)
        assert cost is not None, f"{model or self.priced_model!r} should have a price"
        return cost

    # ------------------------------------------------------------------ standard tests

    @pytest.mark.slow
    def test_cost_model_satisfies_the_protocol(self, cost_model: CostModel) -> None:
        assert isinstance(cost_model, CostModel)

    def test_price_is_a_decimal_never_a_float(self, cost_model: CostModel) -> None:
        cost = cost_model.price(self.priced_model, SOME_USAGE)
        assert type(cost) is Decimal
        assert cost.is_finite()

    def test_zero_usage_costs_nothing(self, cost_model: CostModel) -> None:
        assert self._price(cost_model, Usage()) == 0

    def test_cost_is_never_negative(self, cost_model: CostModel) -> None:
        assert self._price(cost_model, SOME_USAGE) >= 0

    def test_cost_grows_with_input_tokens(self, cost_model: CostModel) -> None:
        small = self._price(cost_model, Usage(input_tokens=1_000))
        large = self._price(cost_model, Usage(input_tokens=2_000))
        if self.free:
            assert small == large == 0
        else:
            assert large > small > 0

    def test_cost_grows_with_output_tokens(self, cost_model: CostModel) -> None:
        small = self._price(cost_model, Usage(output_tokens=1_000))
        large = self._price(cost_model, Usage(output_tokens=2_000))
        if self.free:
            assert small == large == 0
        else:
            assert large > small > 0

    def test_cached_input_is_never_priced_above_normal_input(self, cost_model: CostModel) -> None:
        uncached = self._price(cost_model, Usage(input_tokens=10_000))
        cached = self._price(cost_model, Usage(input_tokens=10_000, cached_input_tokens=10_000))
        assert 0 <= cached <= uncached

    def test_unknown_model_has_no_price(self, cost_model: CostModel) -> None:
        cost = cost_model.price(self.unknown_model, SOME_USAGE)
        if self.free or self.prices_every_model:
            assert type(cost) is Decimal
        else:
            assert cost is None

    def test_pricing_opens_no_network_connection(
        self, cost_model: CostModel, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        attempts = refuse_network(monkeypatch)
        cost_model.price(self.priced_model, SOME_USAGE)
        cost_model.price(self.unknown_model, SOME_USAGE)
        assert attempts == []

    def test_pricing_is_deterministic(self, cost_model: CostModel) -> None:
        first = cost_model.price(self.priced_model, SOME_USAGE)
        cost_model.price(self.unknown_model, SOME_USAGE)
        cost_model.price(self.priced_model, Usage(input_tokens=7, output_tokens=3))
        assert cost_model.price(self.priced_model, SOME_USAGE) == first


def refuse_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make every socket connect and name lookup fail; return the list the attempts go to.

    Patches the methods on :class:`socket.socket` itself, so code holding its own reference to
    the class is caught too.
    """
    attempts: list[str] = []

    def refuse(*args: object, **kwargs: object) -> Any:
        attempts.append(repr(args[1:] if args and isinstance(args[0], socket.socket) else args))
        raise OSError("network access refused by questfoundry.testing.cost_contract")

    for name in ("connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, refuse)
    for name in ("getaddrinfo", "create_connection"):
        monkeypatch.setattr(socket, name, refuse)
    return attempts


@dataclass(frozen=True)
class OfflineReport:
    """What a cost model did when built and used in a fresh interpreter with the network refused."""

    attempts: list[str]  #: refused connections and name lookups
    threads: list[str]  #: threads still running afterwards (a background price fetcher, say)
    known: Decimal | None  #: the price of the model asked about
    unknown: Decimal | None  #: the price of a model nobody knows


_OFFLINE_SCRIPT = """
import json, socket, sys, threading
from pathlib import Path

attempts = []

def refuse(*args, **kwargs):
    attempts.append(repr(args))
    raise OSError("network access refused")

socket.socket.connect = socket.socket.connect_ex = refuse
socket.getaddrinfo = socket.create_connection = refuse

from questfoundry.contracts.backends import BackendContext
from questfoundry.contracts.records import Usage
from questfoundry.registry import get_plugin_manager

entry_point, name, model = sys.argv[1:4]
manager = get_plugin_manager(env={"QUESTFOUNDRY_LOAD_PLUGINS": entry_point})
cost_model = manager.create("cost model", name, {}, BackendContext(project_dir=Path(".")))
usage = Usage(input_tokens=1000, output_tokens=100, cached_input_tokens=200)
known = cost_model.price(model, usage)
unknown = cost_model.price("questfoundry-contract-no-such-model", usage)
threads = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
print(json.dumps({
    "attempts": attempts,
    "threads": threads,
    "known": None if known is None else str(known),
    "unknown": None if unknown is None else str(unknown),
}))
"""


def price_offline_in_fresh_interpreter(entry_point: str, name: str, model: str) -> OfflineReport:
    """Load only ``entry_point``, build cost model ``name`` and price ``model``, network refused.

    A fresh interpreter catches what an in-process test cannot: network use while the plugin and
    its library are imported and the cost model is built, and background threads it leaves.
    """
    args = [sys.executable, "-c", _OFFLINE_SCRIPT, entry_point, name, model]
    result = subprocess.run(args, check=False, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise AssertionError(f"pricing offline failed:\n{result.stderr}")
    raw = json.loads(result.stdout.strip().splitlines()[-1])
    return OfflineReport(
        attempts=raw["attempts"],
        threads=raw["threads"],
        known=None if raw["known"] is None else Decimal(raw["known"]),
        unknown=None if raw["unknown"] is None else Decimal(raw["unknown"]),
    )
