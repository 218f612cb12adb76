"""The deadline of one attempt is the provider's ``timeout_seconds``, its schema default included:
what ``config show`` says is in effect is what a call gets."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from questfoundry.config import Config
from questfoundry.config.effective import effective
from questfoundry.contracts.backends import Backend, BackendContext
from questfoundry.contracts.hookspecs import hookimpl
from questfoundry.contracts.records import Request
from questfoundry.registry import get_plugin_manager
from questfoundry.runtime import Runtime
from questfoundry.testing.scripted import ScriptedProvider

SCHEMA_DEFAULT = 7.0


class Timed:
    """Registers provider ``timed``, whose settings schema gives ``timeout_seconds`` a default."""

    def __init__(self) -> None:
        self.provider = ScriptedProvider()
        self.settings: list[Mapping[str, Any]] = []

    @hookimpl
    def providers(self) -> dict[str, Any]:
        def make(settings: Mapping[str, Any], context: BackendContext) -> ScriptedProvider:
            self.settings.append(settings)
            return self.provider

        schema = {
            "properties": {
                "model": {"type": "string"},
                "timeout_seconds": {"type": "number", "default": SCHEMA_DEFAULT},
            }
        }
        return {"timed": Backend(make, settings=schema)}


def runtime_with(tmp_path: Path, timed: Timed, own: Mapping[str, Any]) -> Runtime:
    data = {
        "providers": {"text": {"default": "timed", "timed": {"model": "m", **own}}},
        "retry": {"deadline_seconds": 600},
    }
    manager = get_plugin_manager(entry_points=False, plugins=[("timed", timed)])
    return Runtime(Config(data, None, tmp_path / ".questfoundry", frozenset()), manager)


def test_an_attempt_gets_the_schema_default_timeout_when_config_sets_none(tmp_path: Path) -> None:
    timed = Timed()
    with runtime_with(tmp_path, timed, {}) as runtime:
        runtime.gateway.generate(Request(prompt="hi"))
        shown, _ = effective(runtime.config, runtime.manager)
    assert [r.timeout for r in timed.provider.requests] == [SCHEMA_DEFAULT]  # not the 600 s
    assert shown["providers"]["text"]["timed"]["timeout_seconds"] == SCHEMA_DEFAULT
    assert timed.settings[0]["timeout_seconds"] == SCHEMA_DEFAULT


def test_a_timeout_set_in_config_wins_over_the_default(tmp_path: Path) -> None:
    timed = Timed()
    with runtime_with(tmp_path, timed, {"timeout_seconds": 2.5}) as runtime:
        runtime.gateway.generate(Request(prompt="hi"))
    assert [r.timeout for r in timed.provider.requests] == [2.5]
