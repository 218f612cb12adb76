"""What a registration declares beyond its factory: the default it may become (``priority``) and
the generation parameters a provider takes (``parameters``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from questfoundry import load_config
from questfoundry.config.schema import default_backend
from questfoundry.contracts.errors import ConfigError
from questfoundry.kit import Backend, hookimpl
from questfoundry.registry import get_plugin_manager
from questfoundry.testing.scripted import ScriptedProvider


class Ranked:
    def __init__(self, **priorities: int) -> None:
        self.priorities = priorities

    @hookimpl
    def cache_backends(self) -> Mapping[str, Backend]:
        def make(settings: Mapping[str, Any], context: Any) -> Any:
            raise AssertionError("never built here")

        return {name: Backend(make, priority=rank) for name, rank in self.priorities.items()}


def manager_with(*plugins: object) -> Any:
    named = [(f"test-{i}", plugin) for i, plugin in enumerate(plugins)]
    return get_plugin_manager(entry_points=False, plugins=named)


def test_the_installed_cache_of_highest_priority_is_the_default() -> None:
    assert default_backend("caching", manager_with(Ranked(low=5, high=20))) == "high"


def test_priority_ties_go_to_the_name_that_sorts_first() -> None:
    assert default_backend("caching", manager_with(Ranked(beta=5, alpha=5))) == "alpha"


def test_with_no_priority_above_zero_the_cores_default_stays() -> None:
    assert default_backend("caching", manager_with(Ranked(plain=0))) == "memory"


class TopK:
    @hookimpl
    def providers(self) -> Mapping[str, Backend]:
        return {
            "topk": Backend(
                lambda settings, context: ScriptedProvider("topk"),
                parameters={"top_k": {"type": "integer", "minimum": 1}},
            )
        }


def test_a_parameter_a_provider_declares_is_set_in_config_and_reaches_the_role(
    tmp_path: Any,
) -> None:
    manager = manager_with(TopK())
    (tmp_path / "config.yml").write_text(
        "providers:\n  text:\n    default: topk\n    topk: {model: m, top_k: 5}\n"
        "roles:\n  scene_smith: {top_k: 9}\n"
    )
    config = load_config(tmp_path / "config.yml", manager=manager)
    routed = manager.resolve_role("scene_smith", config.data)
    assert routed.params["top_k"] == 9
    assert routed.sources["top_k"] == "roles.scene_smith"
    assert manager.resolve_role("plotwright", config.data).params["top_k"] == 5


def test_a_declared_parameter_is_validated_by_its_schema(tmp_path: Any) -> None:
    (tmp_path / "config.yml").write_text(
        "providers:\n  text:\n    default: topk\n    topk: {model: m}\n"
        "roles:\n  gatekeeper: {top_k: 0}\n"
    )
    with pytest.raises(ConfigError, match=r"roles\.gatekeeper\.top_k"):
        load_config(tmp_path / "config.yml", manager=manager_with(TopK()))


def test_without_the_provider_installed_the_parameter_is_an_unknown_key(tmp_path: Any) -> None:
    (tmp_path / "config.yml").write_text("roles:\n  gatekeeper: {top_k: 3}\n")
    with pytest.raises(ConfigError, match="top_k"):
        load_config(tmp_path / "config.yml", manager=manager_with())
