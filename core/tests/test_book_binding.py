"""The studio's loops bind the book into its four files, refusing what is not an image.

An image provider that answers with an SVG carrying a script (or anything else that is not a
PNG, JPEG, WebP or GIF) has its answer refused by ``art_touch_up``, said in the report; a state
file whose image says it is ``image/png`` while holding an SVG is left out by ``binding_run``,
and the media type the state claims is never written into the page.
"""

from __future__ import annotations

import base64
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from page_elements import Elements

from questfoundry.config import Config
from questfoundry.contracts.backends import BackendContext
from questfoundry.contracts.hookspecs import hookimpl
from questfoundry.contracts.records import ProviderReply, ProviderRequest
from questfoundry.kit.bindery import IMAGES, prose_digest
from questfoundry.kit.loops import SECTIONS
from questfoundry.registry import get_plugin_manager
from questfoundry.studio import Showrunner
from questfoundry.testing.books import SVG, png
from questfoundry.testing.clock import FakeClock
from questfoundry.testing.scripted import ScriptedProvider


class Illustrator(ScriptedProvider):
    """Answers text as the scripted provider does; every other image is an SVG."""

    def _next(self, request: ProviderRequest) -> ProviderReply:
        reply = super()._next(request)
        if request.kind == "image" and sum(r.kind == "image" for r in self.requests) % 2 == 0:
            return ProviderReply(request.model, image=SVG, usage=self.usage)
        return reply


class Plugin:
    @hookimpl
    def providers(self) -> dict[str, Any]:
        def build(settings: Any, context: BackendContext) -> Illustrator:
            return Illustrator()

        return {"scripted": build}


@pytest.fixture
def studio(tmp_path: Path) -> Iterator[Showrunner]:
    data = {
        "providers": {
            "text": {"default": "scripted", "scripted": {"model": "m"}},
            "image": {"default": "scripted", "scripted": {"model": "img"}},
        },
        "caching": {"backend": "memory"},
        "retry": {"max_retries": 0},
    }
    manager = get_plugin_manager(entry_points=False, plugins=[("illustrator", Plugin())])
    config = Config(data, None, tmp_path / ".questfoundry", frozenset())
    with Showrunner.from_config(config, manager, clock=FakeClock()) as showrunner:
        yield showrunner


@pytest.mark.slow
def test_an_svg_from_the_image_provider_is_refused_and_the_rest_is_bound(
    studio: Showrunner, tmp_path: Path
) -> None:
    studio.run("story_spark", sections=4)
    art = studio.run("art_touch_up", sections=4)
    refused = [r for r in art.repairs if r.startswith("render_images: refused the image of")]
    assert len(refused) == 2 and all("not a PNG, JPEG, WebP or GIF image" in r for r in refused)
    state = studio.runtime.state
    documents = [state.get(key) or {} for key in state.list_keys(IMAGES)]
    assert sorted("data" in d for d in documents) == [False, False, True, True]
    assert all(d["mime"] == "image/png" for d in documents if "data" in d)
    assert all(d["refused"].startswith("not a PNG") for d in documents if "data" not in d)

    bound = studio.run("binding_run", sections=4)
    folder = tmp_path / "book"
    assert bound.outputs == {
        "html": str(folder / "book.html"),
        "markdown": str(folder / "book.md"),
        "epub": str(folder / "book.epub"),
        "twee": str(folder / "book.twee"),
    }
    page = Elements((folder / "book.html").read_text(encoding="utf-8"))
    assert [i["src"][:22] for i in page.tags("img")] == ["data:image/png;base64,"] * 2
    assert not page.tags("svg")
    assert len(list((folder / "images").iterdir())) == 2
    with zipfile.ZipFile(folder / "book.epub") as epub:
        assert len([n for n in epub.namelist() if n.startswith("EPUB/images/")]) == 2
    assert (folder / "book.twee").read_text(encoding="utf-8").startswith(":: StoryTitle\n")


@pytest.mark.slow
def test_the_media_type_a_state_file_claims_is_never_trusted(
    studio: Showrunner, tmp_path: Path
) -> None:
    studio.run("story_spark", sections=3)
    state = studio.runtime.state
    first, second, third = [k[len(SECTIONS) :] for k in state.list_keys(SECTIONS)]
    lies = {
        first: (png(), "image/png\" onerror=\"document.title='PWNED-mime'"),
        second: (SVG, "image/png"),
        third: (b"not base64 at all", "image/gif"),
    }
    for ident, (data, mime) in lies.items():
        prose = (state.get(SECTIONS + ident) or {})["prose"]
        encoded = base64.b64encode(data).decode() if ident != third else data.decode()
        image = {"mime": mime, "data": encoded, "caption": "c", "digest": prose_digest(prose)}
        state.set(IMAGES + ident, image)
    bound = studio.run("binding_run", sections=3)
    assert sorted(r for r in bound.repairs if r.startswith("bind: left out the image")) == sorted(
        [
            f"bind: left out the image of {second!r}: not a PNG, JPEG, WebP or GIF image "
            f"({len(SVG)} bytes beginning {SVG[:24].decode()!r})",
            f"bind: left out the image of {third!r}: its data is not base64",
        ]
    )
    page = (tmp_path / "book" / "book.html").read_text(encoding="utf-8")
    (image,) = Elements(page).tags("img")
    assert image["src"].startswith("data:image/png;base64,") and "onerror" not in image
    assert "PWNED" not in page
