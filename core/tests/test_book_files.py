"""The book's files — HTML reader, Markdown, EPUB, Twee — from one Book; nothing in them runs.

Every text a model or a state file supplies (titles, prose, choices, captions, blurb, brief)
carries script tags, event handlers, ``javascript:`` links and closing tags here; each file must
show them as text. The Markdown is rendered by a CommonMark renderer with raw HTML allowed, so
only the file's own escaping stands between the text and live markup.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import PurePosixPath
from xml.etree import ElementTree

import pytest
from markdown_it import MarkdownIt
from page_elements import Elements

from questfoundry.book.edition import Book, Labels, Picture, file_name, paragraphs
from questfoundry.book.epub import to_epub
from questfoundry.book.exports import FORMATS, book_files
from questfoundry.book.html import to_html
from questfoundry.book.images import image_problem, image_type
from questfoundry.book.markdown import to_markdown
from questfoundry.book.markup import asset, sha256_source
from questfoundry.book.model import Choice, Section, Topology
from questfoundry.contracts.errors import StateError
from questfoundry.testing.books import GIF, HOSTILE, JPEG, SVG, WEBP, hostile_book, png, small_book

OPF = "{http://www.idpf.org/2007/opf}"
DC = "{http://purl.org/dc/elements/1.1/}"
XHTML = "{http://www.w3.org/1999/xhtml}"


# ------------------------------------------------------------------------------- the HTML reader


def test_each_section_is_a_section_element_whose_choices_are_links_inside_it() -> None:
    page = to_html(small_book())
    sections = re.findall(r'<section id="([^"]+)"[^>]*>(.*?)</section>', page, re.S)
    assert [ident for ident, _ in sections] == [
        "sec-gate",
        "sec-yard",
        "sec-wall",
        "sec-keep",
        "sec-garden",
    ]  # by number, as a printed gamebook
    links = {ident: re.findall(r'<a href="#([^"]+)"', body) for ident, body in sections}
    assert links["sec-gate"] == ["sec-yard", "sec-wall"]
    assert links["sec-keep"] == ["sec-gate"]  # an ending: start again
    numbers = re.findall(r'<span class="number">(\d+)</span>', page)
    assert numbers == ["1", "2", "3", "4", "5"]
    assert '<span class="turn">turn to 3</span>' in page


def test_the_page_loads_nothing_and_allows_only_its_own_style_and_script() -> None:
    parsed = Elements(to_html(small_book()))
    loads = [v for _, name, v in parsed.attributes() if name in ("src", "srcset", "href", "data")]
    assert loads and all(v.startswith(("#", "data:image/png;base64,")) for v in loads)
    assert not parsed.tags("link") and not parsed.tags("iframe") and not parsed.tags("object")
    assert parsed.scripts == [str(asset("reader.js"))]
    (policy,) = [m["content"] for m in parsed.tags("meta") if "http-equiv" in m]
    assert "default-src 'none'" in policy and "img-src data:" in policy
    assert f"script-src {sha256_source(str(asset('reader.js')))}" in policy
    assert f"style-src {sha256_source(str(asset('reader.css')))}" in policy
    assert "</script" not in str(asset("reader.js")) and "</style" not in str(asset("reader.css"))


def test_the_title_page_shows_the_blurb_and_the_briefs_fields_in_order() -> None:
    text = " ".join(Elements(to_html(small_book())).text)
    assert "A night, a gate, a keeper." in text
    assert re.search(r"Premise\s*A courier at a gate\.\s*Tone\s*hushed", text)
    assert "not shown" not in text  # not a field of the front matter


def test_language_and_words_come_from_the_book() -> None:
    words = Labels(begin="Commencer", turn_to="rendez-vous au {number}", the_end="Fin.")
    page = to_html(small_book(lang="fr", labels=words))
    assert page.startswith('<!DOCTYPE html>\n<html lang="fr">')
    assert "rendez-vous au 2" in page and "Commencer" in page and "Fin." in page
    assert file_name("html") == "book.html" and file_name("html", "fr") == "book.fr.html"
    with pytest.raises(StateError, match="not a language tag"):
        small_book(lang='en" onload="x')


def test_a_hostile_model_text_is_only_text_in_the_html() -> None:
    book = hostile_book()
    parsed = Elements(to_html(book))
    assert parsed.scripts == [str(asset("reader.js"))]
    assert not [a for a in parsed.attributes() if a[1].startswith("on")]
    assert not parsed.tags("svg") and len(parsed.tags("img")) == 2
    hrefs = [attrs["href"] for attrs in parsed.tags("a")]
    assert all(re.fullmatch(r"#sec-s\d", href) for href in hrefs)
    text = "".join(parsed.text)
    for hostile in HOSTILE:
        for paragraph in paragraphs(hostile):
            assert paragraph in text  # shown whole, as the reader should see it


# ------------------------------------------------------------------------------------ Markdown


def rendered(markdown: str) -> Elements:
    """``markdown`` as a CommonMark renderer makes it (raw HTML allowed), parsed."""
    return Elements(MarkdownIt("commonmark").render(markdown))


def test_the_markdown_numbers_sections_and_turns_to_them() -> None:
    markdown = to_markdown(small_book())
    assert "## 1. The Gate\n" in markdown and "## 5. The Garden\n" in markdown
    assert "- [Knock](#sec-yard) — turn to 2" in markdown
    assert "![The gate at dusk](images/gate.png)" in markdown
    parsed = rendered(markdown)
    anchors = {attrs["id"] for attrs in parsed.tags("a") if "id" in attrs}
    targets = {attrs["href"][1:] for attrs in parsed.tags("a") if "href" in attrs}
    assert targets <= anchors and len(anchors) == 5


def test_the_markdown_of_a_hostile_book_renders_no_live_markup() -> None:
    parsed = rendered(to_markdown(hostile_book()))
    allowed = {"h1", "h2", "p", "em", "strong", "ul", "li", "a", "img"}
    assert {tag for tag, _ in parsed.elements} <= allowed
    for tag, name, value in parsed.attributes():
        assert (tag, name) in {("a", "href"), ("a", "id"), ("img", "src"), ("img", "alt")}
        if name == "href":
            assert re.fullmatch(r"#sec-s\d", value)
        if name == "src":
            assert re.fullmatch(r"images/s\d\.(png|gif)", value)
        if name == "id":
            assert re.fullmatch(r"sec-s\d", value)
    text = "".join(parsed.text)
    for hostile in HOSTILE:
        for paragraph in paragraphs(hostile):
            assert paragraph in text


def test_markdown_pictures_are_files_beside_it_with_their_real_type() -> None:
    book = small_book(pictures={"gate": Picture(png(), "png"), "yard": Picture(GIF, "gif")})
    made = book_files(book, "md")
    assert list(made) == ["book.md", "images/gate.png", "images/yard.gif"]
    assert made["images/yard.gif"] == GIF
    assert list(book_files(book, "html", "other.html")) == ["other.html"]
    assert set(FORMATS) == {"html", "md", "epub", "twee"}


# ------------------------------------------------------------------------------------ pictures


@pytest.mark.parametrize(
    ("data", "kind"),
    [(png(), "image/png"), (JPEG, "image/jpeg"), (GIF, "image/gif"), (WEBP, "image/webp")],
)
def test_pictures_are_known_by_their_bytes(data: bytes, kind: str) -> None:
    assert image_type(data) == kind and image_problem(data) is None
    assert Picture(data).data_uri.startswith(f"data:{kind};base64,")


@pytest.mark.parametrize(
    "data", [SVG, b"<!DOCTYPE html><script>alert(1)</script>", b"\x89PNG scripted", b""]
)
def test_anything_else_is_refused_in_one_line(data: bytes) -> None:
    assert image_type(data) is None
    problem = image_problem(data)
    assert problem is not None and "\n" not in problem
    assert problem.startswith("not a PNG, JPEG, WebP or GIF image")
    with pytest.raises(ValueError, match="PNG, JPEG, WebP or GIF"):
        Picture(data)


def test_a_book_is_made_only_of_a_topology_a_state_file_could_hold() -> None:
    bad = Topology("T", "a", (Section("a", "A", "", (Choice("go", "<script>x"),), 1),))
    with pytest.raises(StateError, match="choice target") as caught:
        Book(bad, {"a": ""})
    assert "\n" not in str(caught.value)


# ------------------------------------------------------------------------------------ EPUB


def epub_parts(data: bytes) -> tuple[zipfile.ZipFile, str, ElementTree.Element]:
    """The EPUB's zip, the folder of its package document and that document, checked."""
    archive = zipfile.ZipFile(io.BytesIO(data))
    first = archive.infolist()[0]
    assert first.filename == "mimetype" and first.compress_type == zipfile.ZIP_STORED
    assert archive.read("mimetype") == b"application/epub+zip"
    container = ElementTree.fromstring(archive.read("META-INF/container.xml"))
    (rootfile,) = container.iter("{urn:oasis:names:tc:opendocument:xmlns:container}rootfile")
    assert rootfile.get("media-type") == "application/oebps-package+xml"
    path = rootfile.get("full-path") or ""
    return archive, str(PurePosixPath(path).parent), ElementTree.fromstring(archive.read(path))


def test_the_epub_has_a_container_package_nav_and_documents_that_parse() -> None:
    data = to_epub(hostile_book())
    archive, folder, package = epub_parts(data)
    assert package.get("version") == "3.0"
    metadata = package.find(f"{OPF}metadata")
    assert metadata is not None
    assert metadata.findtext(f"{DC}title") == HOSTILE[0]
    assert metadata.findtext(f"{DC}language") == "en"
    assert (metadata.findtext(f"{DC}identifier") or "").startswith("urn:uuid:")
    items = {i.get("id"): i for i in package.iter(f"{OPF}item")}
    names = set(archive.namelist())
    assert all(f"{folder}/{i.get('href')}" in names for i in items.values())
    (nav,) = [i for i in items.values() if i.get("properties") == "nav"]
    spine = [ref.get("idref") for ref in package.iter(f"{OPF}itemref")]
    assert all(ref in items for ref in spine)
    documents = [i for i in items.values() if i.get("media-type") == "application/xhtml+xml"]
    assert len(documents) == 7  # the title page, five sections, the navigation
    for item in documents:
        href = f"{folder}/{item.get('href')}"
        tree = ElementTree.fromstring(archive.read(href))  # XHTML: well-formed XML
        assert not list(tree.iter(f"{XHTML}script"))
        assert not [k for e in tree.iter() for k in e.attrib if k.lower().startswith("on")]
        for link in tree.iter(f"{XHTML}a"):
            target = (link.get("href") or "").split("#")[0]
            assert f"{folder}/{target}" in names, (href, target)
    navigation = ElementTree.fromstring(archive.read(f"{folder}/{nav.get('href')}"))
    labels = [a.text for a in navigation.iter(f"{XHTML}a")]
    assert labels == ["Title page", "1", "2", "3", "4", "5"]  # numbers only: no spoilers
    images = {
        i.get("href"): i.get("media-type") for i in items.values() if "img" in (i.get("id") or "")
    }
    assert images == {"images/s1.png": "image/png", "images/s3.gif": "image/gif"}


def test_an_epub_section_turns_to_numbers_and_shows_hostile_text_as_text() -> None:
    archive, folder, _ = epub_parts(to_epub(hostile_book()))
    tree = ElementTree.fromstring(archive.read(f"{folder}/sec-s1.xhtml"))
    text = "".join(tree.itertext())
    assert "turn to 2" in text and "turn to 3" in text
    for hostile in HOSTILE:
        for paragraph in paragraphs(hostile):
            assert paragraph in text
