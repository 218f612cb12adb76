"""The main job from a fresh clone: ``python tools/demo.py`` (Python 3.10+, nothing else).

1. makes a virtualenv in ``build/demo-venv`` and installs the core and every plugin into it
   (``tools/install_editable.py``: uv when it is on PATH, else pip; skipped while nothing changed);
2. starts the stand-in OpenAI-compatible server bundled with QuestFoundry
   (``python -m questfoundry.testing.fakes openai``), whose prose is placeholder text;
3. writes the demo project's config, ``build/demo/.questfoundry/config.yml``, pointing at it,
   and the demo's brief (``questfoundry init --provider demo --base-url … --premise …``);
4. runs ``questfoundry run story_spark`` then the loops of :data:`LOOPS` in that project: the
   style guide, the pictures, the cue sheet, the open threads, canon and codex, the book bound,
   then translated into
   :data:`LANGUAGE` and bound again with its second language;
5. stops the server and prints where the book's HTML files are.

``--provider openai`` (or ``gemini``, ``ollama``) runs the same job against the real service
instead: no stand-in server, the key from ``OPENAI_API_KEY`` (``GEMINI_API_KEY``). ``--no-install``
uses this interpreter's environment as it is (the tests do). Each step says what it does; a step
that fails stops the demo with one line naming it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import socket
import subprocess
import sys
import threading
import venv
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
#: how long the stand-in server may take to say where it listens
SERVER_START_SECONDS = 30
#: the demo's own brief, passed to init (so init asks nothing, on a terminal or not)
BRIEF = (
    "--premise",
    "You are the last keeper of a lighthouse on a drowned coast, and tonight the light fails.",
    "--genre",
    "gothic adventure",
    "--tone",
    "salt-bitten, hushed, hopeful",
)
#: the second language the demo's book is translated into
LANGUAGE = "de"
#: what the demo runs after story_spark, in order: the style guide before the pictures (which
#: are made for the prose as it is then); the open threads, the canon drawn from them and the
#: codex drawn from the canon; the book bound before it is translated, so that its blurb
#: (binding_run's) and its codex are translated too, then bound again with its second language
LOOPS = (
    ["style_tune_up"],
    ["art_touch_up"],
    ["audio_pass"],
    ["hook_harvest"],
    ["lore_deepening"],
    ["codex_expansion"],
    ["binding_run"],
    ["translation_pass", "--language", LANGUAGE],
    ["binding_run"],
)
#: the environment of every step: the demo project's config, not one QUESTFOUNDRY_CONFIG names
ENV = {k: v for k, v in os.environ.items() if k != "QUESTFOUNDRY_CONFIG"}
#: where a new demo project's stand-in listens (``questfoundry init``'s demo default)
PORT = 8765
#: a stand-in's address in a config.yml: ``base_url: http://127.0.0.1:PORT/v1``
_BASE_URL = re.compile(r"^\s*base_url:\s*http://127\.0\.0\.1:(\d+)/v1\s*$", re.M)


class DemoError(Exception):
    """A step failed; the message says which and why."""


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if sys.version_info < (3, 10):  # noqa: UP036 - say so plainly on an older Python
        return fail("QuestFoundry needs Python 3.10 or newer")
    project = args.project.absolute()
    try:
        python = sys.executable if args.no_install else install(BUILD / "demo-venv")
        book, edition = run_demo(python, project, args.provider, args.sections)
    except DemoError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        return fail("interrupted")
    say(f"Done. The book: {book}")
    say(f"The book in its second language ({LANGUAGE}): {edition}")
    say(f"Open {book.as_uri()} in a browser. Run the demo again: nothing is paid twice.")
    for line in continuing(python, project, args.provider, args.sections):
        sys.stdout.write(line + "\n")
    return 0


def parser() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(
        prog="python tools/demo.py",
        description="Install QuestFoundry, then write a gamebook with the studio's loops.",
    )
    options.add_argument(
        "--provider",
        choices=("demo", "openai", "gemini", "ollama"),
        default="demo",
        help="demo (default): the bundled stand-in server, placeholder prose; or a real service",
    )
    options.add_argument("--sections", type=int, default=16, help="sections of the book (16)")
    options.add_argument(
        "--project",
        type=Path,
        default=BUILD / "demo",
        help="the demo project's folder (build/demo)",
    )
    options.add_argument(
        "--no-install",
        action="store_true",
        help="use this Python's environment, where questfoundry is installed, as it is",
    )
    return options


def say(text: str) -> None:
    sys.stdout.write(f"==> {text}\n")
    sys.stdout.flush()


def fail(text: str) -> int:
    sys.stderr.write(f"demo: {text}\n")
    return 1


# ----------------------------------------------------------------------------- install


def install(folder: Path) -> str:
    """The Python of a virtualenv in ``folder`` holding the core and every plugin."""
    python = folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if not python.exists():
        say(f"Creating a virtualenv in {folder}")
        venv.EnvBuilder(with_pip=True).create(folder)
    stamp = folder / "questfoundry-installed"
    wanted = _sources_digest()
    if stamp.exists() and stamp.read_text() == wanted:
        say("QuestFoundry is installed in it already")
        return str(python)
    say("Installing the core and every plugin into it (a minute or two the first time)")
    step([str(python), str(ROOT / "tools" / "install_editable.py")], "installing QuestFoundry")
    stamp.write_text(wanted)
    return str(python)


def _sources_digest() -> str:
    """What the install depends on: every distribution's pyproject.toml."""
    digest = hashlib.sha256()
    for path in sorted(ROOT.glob("*/pyproject.toml")) + sorted(
        ROOT.glob("plugins/*/pyproject.toml")
    ):
        digest.update(str(path.relative_to(ROOT)).encode() + path.read_bytes())
    return digest.hexdigest()


# ----------------------------------------------------------------------------- the job


def run_demo(python: str, project: Path, provider: str, sections: int) -> tuple[Path, Path]:
    """Run story_spark and the loops of :data:`LOOPS` in ``project``; the book's HTML file and
    its edition's in :data:`LANGUAGE`."""
    project.mkdir(parents=True, exist_ok=True)
    questfoundry = [python, "-m", "questfoundry"]
    log = project / "stand-in-server.log"
    with stand_in(python, provider, log, stand_in_port(project)) as base_url:
        init = [*questfoundry, "init", "--force", "--provider", provider, "--no-input", *BRIEF]
        if base_url:
            init += ["--base-url", base_url]
        say(f"Writing {project / '.questfoundry' / 'config.yml'}")
        step(init, "writing the demo project's config", cwd=project)
        for run in (["story_spark", "--sections", str(sections)], *LOOPS):
            say("questfoundry run " + " ".join(run))
            output = step([*questfoundry, "run", *run], run[0], cwd=project)
    said = dict(line.partition(": ")[::2] for line in output.splitlines() if ": " in line)
    book, edition = said.get("HTML book"), said.get(f"Html ({LANGUAGE})")
    if not book or not edition:
        raise DemoError("binding_run did not say where the HTML books are")
    return Path(book.strip()), Path(edition.strip())


def stand_in_port(project: Path) -> int:
    """The port of the stand-in the project's config names (:data:`PORT` for a new project),
    or a free one when another program holds it."""
    config = project / ".questfoundry" / "config.yml"
    named = _BASE_URL.search(config.read_text()) if config.is_file() else None
    port = int(named.group(1)) if named else PORT
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    return int(port)


def continuing(python: str, project: Path, provider: str, sections: int) -> list[str]:
    """The commands that continue the demo project, as the demo prints them last."""
    questfoundry = f"{python} -m questfoundry"
    lines = ["", f"To continue this project ({project}):"]
    if provider == "demo":
        config = (project / ".questfoundry" / "config.yml").read_text()
        named = _BASE_URL.search(config)
        port = named.group(1) if named else PORT
        lines += [
            "  # start the stand-in again where its config points (it serves until Ctrl-C):",
            f"  {python} -m questfoundry.testing.fakes openai --port {port}",
            "  # then, in another terminal:",
        ]
    lines += [
        f"  cd {project}",
        f"  {questfoundry} book check",
        f"  {questfoundry} run story_spark --sections {sections}",
        f"  {questfoundry} run art_touch_up && {questfoundry} run binding_run",
        f"  {questfoundry} run narration_dry_run   # a playtest: revision notes, --apply them",
    ]
    if provider == "demo":
        lines += [
            "For real prose and pictures, point it at a real provider, then run the loops again:",
            f"  cd {project} && OPENAI_API_KEY=... {questfoundry} init --force --no-input"
            " --provider openai",
            "  (or GEMINI_API_KEY=... with --provider gemini, or a running Ollama with"
            " --provider ollama)",
        ]
    return lines


@contextmanager
def stand_in(python: str, provider: str, log: Path, port: int) -> Iterator[str | None]:
    """For the demo, the stand-in OpenAI server running on ``port`` (its base_url; its stderr in
    ``log``); else nothing."""
    if provider != "demo":
        yield None
        return
    say("Starting the stand-in OpenAI-compatible server (its prose is placeholder text)")
    with log.open("w") as errors:
        server = subprocess.Popen(
            [python, "-m", "questfoundry.testing.fakes", "openai", "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env=ENV,
        )
    try:
        base_url = _announced_base_url(server, log)
        say(f"It listens at {base_url}")
        yield base_url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        say("Stopped the stand-in server")


def _announced_base_url(server: subprocess.Popen[str], log: Path) -> str:
    """The ``base_url: …`` line the server prints first, within :data:`SERVER_START_SECONDS`."""
    found: list[str] = []

    def read() -> None:
        assert server.stdout is not None
        for line in server.stdout:
            if line.startswith("base_url:"):
                found.append(line.partition(":")[2].strip())
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(SERVER_START_SECONDS)
    if not found:
        server.kill()
        server.wait()
        last = log.read_text().strip().splitlines()[-1:] or ["no output"]
        raise DemoError(f"the stand-in server did not start: {last[0]} (see {log})")
    return found[0]


def step(command: list[str], what: str, cwd: Path | None = None) -> str:
    """Run ``command``, its output shown as it comes (its progress on stderr); its stdout."""
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, text=True, env=ENV)
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line)
    if process.wait() != 0:
        raise DemoError(f"{what} failed (exit status {process.returncode}); see above")
    return "".join(lines)


if __name__ == "__main__":
    sys.exit(main())
