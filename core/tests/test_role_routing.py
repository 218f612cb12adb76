"""One way to route a role, whoever resolves it: a plugin's resolver that leaves ``kind`` unset
gets the catalogue's kind, so an image role is sent to the image provider — in the gateway, in
``questfoundry roles`` and in the effective config alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from questfoundry import Request, Runtime, load_config
from questfoundry.config.effective import resolved_roles
from questfoundry.kit import RoleProvider, hookimpl
from questfoundry.registry import get_plugin_manager
from questfoundry.testing.scripted import ScriptedProvider, scripted_plugin


class KindlessResolver:
    """Routes the illustrator to the ``pictures`` provider and says nothing of its kind."""

    @hookimpl
    def resolve_role_provider(self, role: str) -> RoleProvider | None:
        if role != "illustrator":
            return None
        return RoleProvider(role, "pictures", "pic-1")


@pytest.fixture
def studio(tmp_path: Path) -> Any:
    pictures = ScriptedProvider()
    manager = get_plugin_manager(
        entry_points=False,
        plugins=[scripted_plugin(pictures, "pictures"), ("kindless", KindlessResolver())],
    )
    (tmp_path / "config.yml").write_text("caching: {enabled: false}\n")
    config = load_config(tmp_path / "config.yml", manager=manager)
    with Runtime(config, manager) as runtime:
        yield runtime, pictures


def test_an_image_role_a_plugin_left_without_a_kind_is_sent_as_an_image_call(studio: Any) -> None:
    runtime, pictures = studio
    reply = runtime.gateway.generate(Request(role="illustrator", prompt="a lighthouse at dusk"))
    assert reply.image is not None and reply.text is None
    assert [request.kind for request in pictures.requests] == ["image"]


async def test_the_async_face_routes_it_the_same_way(studio: Any) -> None:
    runtime, pictures = studio
    reply = await runtime.gateway.agenerate(Request(role="illustrator", prompt="a gull"))
    assert reply.image is not None
    assert [request.kind for request in pictures.requests] == ["image"]


def test_what_is_shown_is_what_is_routed(studio: Any) -> None:
    runtime, _ = studio
    shown = resolved_roles(runtime.config, runtime.manager)["illustrator"]
    assert not isinstance(shown, Exception)
    routed = runtime.resolve("illustrator")
    assert shown.kind == routed.kind == "image"
    assert routed.sources["kind"] == "a plugin's resolve_role_provider"
