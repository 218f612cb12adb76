"""The standard tests of a plugin distribution: it is discovered, registers what it says, declares
valid settings, and keeps its library unloaded until a backend is built.

Every plugin repeated these; now a plugin's test module says what it is in three class attributes::

    from questfoundry.testing.plugin_suite import PluginSuite


    class TestPlugin(PluginSuite):
        distribution = "questfoundry-cache-sqlite"
        registers = {"cache backend": ["sqlite"]}
        lazy_modules = ("questfoundry_cache_sqlite.backend",)

The distribution must be installed (``pip install -e .`` or a ``*.dist-info`` on the path): the
tests load it through its entry point, exactly as ``questfoundry`` does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import ClassVar

import pytest

from questfoundry.registry import (
    BACKEND_HOOKS,
    ENTRY_POINT_GROUP,
    LOAD_ENV,
    PluginManager,
    get_plugin_manager,
)
from questfoundry.testing.contract import StandardSuite


class PluginSuite(StandardSuite):
    """Discovery, registrations, settings fragments and lazy imports of one distribution."""

    #: the distribution's name, as ``pip`` knows it
    distribution: ClassVar[str]
    #: what it registers: backend kind (``"cache backend"``, ``"provider"``, …) → names
    registers: ClassVar[Mapping[str, Sequence[str]]]
    #: modules that importing the plugin's entry points must not import (its library, its backend)
    lazy_modules: ClassVar[Sequence[str]] = ()

    @pytest.fixture
    def manager(self) -> PluginManager:
        """A plugin manager holding the built-ins and this distribution only."""
        return get_plugin_manager(env={LOAD_ENV: self.distribution})

    def _entry_points(self) -> list[metadata.EntryPoint]:
        found = metadata.distribution(self.distribution).entry_points.select(
            group=ENTRY_POINT_GROUP
        )
        return list(found)

    def test_the_distribution_publishes_an_entry_point(self) -> None:
        assert self._entry_points(), (
            f"{self.distribution} publishes no entry point in the group {ENTRY_POINT_GROUP!r}"
        )

    def test_the_plugin_loads_and_nothing_is_disabled(self, manager: PluginManager) -> None:
        assert [(f.distribution, f.error) for f in manager.failures] == []

    def test_it_registers_exactly_what_it_declares(self, manager: PluginManager) -> None:
        assert set(self.registers) <= set(BACKEND_HOOKS), "unknown kind in `registers`"
        found = {
            kind: sorted(
                name
                for name, reg in manager.backends(kind).items()
                if reg.distribution == self.distribution
            )
            for kind in BACKEND_HOOKS
        }
        declared = {kind: sorted(self.registers.get(kind, ())) for kind in BACKEND_HOOKS}
        assert found == declared

    def test_each_registration_has_a_description_and_a_valid_settings_fragment(
        self, manager: PluginManager
    ) -> None:
        from jsonschema import Draft202012Validator

        for kind, names in self.registers.items():
            for name in names:
                reg = manager.get(kind, name)
                assert reg.description.strip(), f"{kind} {name!r} has no description"
                settings = dict(reg.settings)
                Draft202012Validator.check_schema(settings)
                assert "$ref" not in json.dumps(settings), "a fragment must be self-contained"
                assert set(settings) <= {"properties", "required"}, sorted(settings)
                for key, sub in settings.get("properties", {}).items():
                    assert str(sub.get("description", "")).strip(), f"{key} has no description"

    @pytest.mark.slow
    def test_importing_the_plugin_leaves_its_library_unloaded(self) -> None:
        modules = sorted({ep.module for ep in self._entry_points()})
        code = (
            f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            f"print([m for m in {list(self.lazy_modules)!r} if m in sys.modules])"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "[]", f"imported at once: {result.stdout.strip()}"
