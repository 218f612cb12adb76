"""The README's first command, ``python tools/demo.py``, end to end (in this environment).

``--no-install`` reuses the test environment instead of making a virtualenv; everything else is
what a user runs: the stand-in server starts, the demo project's config is written, story_spark
and the loops after it run, the server stops and the HTML books' paths are printed.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from questfoundry.cli import cli

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("questfoundry_provider_openai")


class Links(HTMLParser):
    """The ids and the ``#fragment`` links of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.targets: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(str(values["id"]))
        href = values.get("href") or ""
        if href.startswith("#"):
            self.targets.append(href[1:])


def test_the_readme_sets_up_with_exactly_the_demo_then_the_tests() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    setup = readme.split("\n## Set-up\n", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", setup, re.S)
    assert commands == ["python tools/demo.py", "python -m pip install tox tox-uv && tox p"]
    assert "placeholder text" in setup


def test_the_docs_index_links_every_page_and_every_link_lands() -> None:
    index = ROOT / "docs" / "README.md"
    pages = {path.name for path in index.parent.glob("*.md")} - {"README.md"}
    for document in (ROOT / "README.md", index):
        text = document.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            assert (document.parent / target).exists(), f"{document.name} links {target}"
    linked = set(re.findall(r"\]\(([\w-]+\.md)\)", index.read_text(encoding="utf-8")))
    assert pages <= linked, f"docs/README.md does not link {sorted(pages - linked)}"


@pytest.mark.soak  # about 15 s: eight processes through every loop the demo runs
def test_the_demo_writes_a_book_whose_links_work_and_its_project_continues(
    tmp_path: Path,
) -> None:
    project = tmp_path / "demo"
    done = demo("--project", str(project), "--sections", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for loop in (
        "story_spark",
        "art_touch_up",
        "codex_expansion",
        "translation_pass",
        "binding_run",
    ):
        assert f"{loop} · run" in out  # every report
    assert "placeholder text" in out and "Stopped the stand-in server" in out
    book = Path(re.findall(r"^==> Done\. The book: (.+)$", out, re.M)[0])
    assert book == project / "book" / "book.html" and book.is_file()
    german = Path(re.findall(r"^==> The book in its second language \(de\): (.+)$", out, re.M)[0])
    assert german == project / "book" / "book.de.html"
    for html in (book, german):
        links = Links()
        links.feed(html.read_text(encoding="utf-8"))
        assert links.targets and set(links.targets) <= links.ids
    assert '<html lang="de">' in german.read_text(encoding="utf-8")
    assert len(list((project / "book" / "images").iterdir())) == 3  # a picture a section
    config_path = project / ".questfoundry" / "config.yml"
    config = config_path.read_text()
    assert "yaml-language-server: $schema=" in config
    brief = CliRunner().invoke(cli, ["--config", str(config_path), "brief", "--json"])
    assert json.loads(brief.stdout)["premise"].startswith("You are the last keeper of a lighthouse")
    url = urlsplit(re.findall(r"It listens at (\S+)", out)[0])
    with pytest.raises(OSError), socket.create_connection((url.hostname, url.port), timeout=1):
        pass  # the server is gone
    assert f"base_url: http://127.0.0.1:{url.port}/v1" in config

    # the printed commands continue the project: the stand-in where its config points, a run
    serve = re.findall(r"^  (.+ -m questfoundry\.testing\.fakes openai --port \d+)$", out, re.M)
    assert serve == [f"{sys.executable} -m questfoundry.testing.fakes openai --port {url.port}"]
    server = subprocess.Popen(serve[0].split(), stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().startswith("url: ")
        again = CliRunner().invoke(cli, ["--config", str(config_path), "run", "binding_run"])
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert again.exit_code == 0, again.output
    assert f"HTML book: {book}" in again.stdout


@pytest.mark.slow
def test_a_failing_step_stops_the_demo_with_one_line(tmp_path: Path) -> None:
    done = demo("--project", str(tmp_path / "demo"), "--sections", "0")
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == "demo: story_spark failed (exit status 2); see above"
    assert "Stopped the stand-in server" in done.stdout


def demo(*args: str) -> subprocess.CompletedProcess[str]:
    """``python tools/demo.py --no-install ARGS``, no API key in its environment."""
    command = [sys.executable, str(ROOT / "tools" / "demo.py"), "--no-install", *args]
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, env=env, check=False
    )
