"""Role resolution's precedence table: which layer wins for the provider, the model and a parameter.

Layers, highest first: the runtime override (what ``ask --provider/--model`` passes), ``--set`` on
the role's key, the role's section of config.yml, the provider default
(``providers.text.default``, that provider's ``model`` and parameters), and the global default
(nothing: no provider or model is an error naming the keys to set, a parameter stays unset). Every
combination of present layers is checked, the value and the source each reports.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import product
from pathlib import Path
from typing import Any

import pytest
import yaml

from questfoundry.config import load_config
from questfoundry.config.effective import labelled
from questfoundry.contracts.errors import ConfigError
from questfoundry.registry import PluginManager, get_plugin_manager

ROLE = "gatekeeper"
LAYERS = ("override", "set", "role", "provider default")
#: every combination of layers present, as flags in the order of LAYERS
COMBINATIONS = list(product((True, False), repeat=len(LAYERS)))
#: the value each layer gives each field
VALUES: dict[str, dict[str, Any]] = {
    "provider": dict(zip(LAYERS, ("p-override", "p-set", "p-role", "p"), strict=True)),
    "model": dict(zip(LAYERS, ("m-override", "m-set", "m-role", "m"), strict=True)),
    "temperature": dict(zip(LAYERS, (0.1, 0.2, 0.3, 0.4), strict=True)),
}
SOURCES = {
    "override": "override",
    "set": "--set roles.gatekeeper.{field}",
    "role": "roles.gatekeeper",
    "provider default": "providers.text.p",
}


@pytest.fixture(scope="module")
def manager() -> PluginManager:
    return get_plugin_manager(env={})


def ident(flags: tuple[bool, ...]) -> str:
    return "+".join(name for name, on in zip(LAYERS, flags, strict=True) if on) or "global default"


def resolve(tmp_path: Path, manager: PluginManager, field: str, flags: tuple[bool, ...]) -> Any:
    """Write the layers ``flags`` asks for of ``field`` (the others fixed), resolve the role."""
    present = dict(zip(LAYERS, flags, strict=True))
    value = VALUES[field]
    text: dict[str, Any] = {"providers": {"text": {}}}
    providers = text["providers"]["text"]
    if field != "provider":
        providers["default"] = "p"  # the model and parameter tables need a provider
        providers["p"] = {"model": "m"} if field == "temperature" else {}
    role: dict[str, Any] = {}
    override: dict[str, Any] = {}
    sets: dict[str, Any] = {}
    if present["provider default"]:
        if field == "provider":
            providers["default"] = "p"
        else:
            providers["p"][field] = value["provider default"]
    if present["role"]:
        role[field] = value["role"]
    if present["set"]:
        sets[f"roles.{ROLE}.{field}"] = value["set"]
    if present["override"]:
        override[field] = value["override"]
    if field == "provider":  # each provider the layers name has a model
        for name in value.values():
            providers.setdefault(name, {"model": "m"})
    if role:
        text["roles"] = {ROLE: role}
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(text))
    config = load_config(path, manager=manager, overrides=sets)
    return labelled(manager.resolve_role(ROLE, config.data, override), config)


def expected(field: str, flags: tuple[bool, ...]) -> tuple[Any, str] | None:
    for layer, on in zip(LAYERS, flags, strict=True):
        if on:
            source = SOURCES[layer].format(field=field)
            if field == "provider" and layer == "provider default":
                source = "providers.text.default"
            return VALUES[field][layer], source
    return None


def cases() -> Iterator[Any]:
    for field in VALUES:
        for flags in COMBINATIONS:
            yield pytest.param(field, flags, id=f"{field}-{ident(flags)}")


@pytest.mark.parametrize(("field", "flags"), list(cases()))
def test_the_highest_layer_present_gives_the_value_and_says_so(
    tmp_path: Path, manager: PluginManager, field: str, flags: tuple[bool, ...]
) -> None:
    want = expected(field, flags)
    if want is None and field != "temperature":
        with pytest.raises(ConfigError, match=f"no {field} for role 'gatekeeper'"):
            resolve(tmp_path, manager, field, flags)
        return
    routed = resolve(tmp_path, manager, field, flags)
    got = routed.params.get(field) if field == "temperature" else getattr(routed, field)
    if want is None:  # the global default of a parameter: unset, the provider's own applies
        assert field not in routed.params and field not in routed.sources
        return
    assert (got, routed.sources[field]) == want


def test_set_on_the_provider_default_is_labelled_and_still_yields_to_the_role(
    tmp_path: Path, manager: PluginManager
) -> None:
    path = tmp_path / "config.yml"
    path.write_text(
        "providers:\n  text:\n    default: a\n    a: {model: ma}\n    b: {model: mb}\n"
        "roles:\n  scene_smith: {provider: a}\n"
    )
    config = load_config(path, manager=manager, overrides={"providers.text.default": "b"})
    plotwright = labelled(manager.resolve_role("plotwright", config.data), config)
    smith = labelled(manager.resolve_role("scene_smith", config.data), config)
    assert (plotwright.provider, plotwright.model) == ("b", "mb")
    assert plotwright.sources["provider"] == "--set providers.text.default"
    assert plotwright.sources["model"] == "providers.text.b"
    assert (smith.provider, smith.sources["provider"]) == ("a", "roles.scene_smith")
