"""The main job from a fresh clone: ``python tools/demo.py`` (Python 3.10+, nothing else).

1. makes a virtualenv in ``build/demo-venv`` and installs the core and every plugin into it
   (``tools/install_editable.py``: uv when it is on PATH, else pip; skipped while nothing changed);
2. starts the stand-in OpenAI-compatible server bundled with QuestFoundry
   (``python -m questfoundry.testing.fakes openai``), whose prose is placeholder text;
3. writes the demo project's config, ``build/demo/.questfoundry/config.yml``, pointing at it,
   and the demo's brief (``questfoundry init --provider demo --base-url … --premise …``);
4. runs ``questfoundry run story_spark`` then ``questfoundry run binding_run`` in that project;
5. stops the server and prints where the book's HTML file is.

``--provider openai`` (or ``gemini``, ``ollama``) runs the same job against the real service
instead: no stand-in server, the key from ``OPENAI_API_KEY`` (``GEMINI_API_KEY``). ``--no-install``
uses this interpreter's environment as it is (the tests do). Each step says what it does; a step
that fails stops the demo with one line naming it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
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
#: the environment of every step: the demo project's config, not one QUESTFOUNDRY_CONFIG names
ENV = {k: v for k, v in os.environ.items() if k != "QUESTFOUNDRY_CONFIG"}


class DemoError(Exception):
    """A step failed; the message says which and why."""


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if sys.version_info < (3, 10):  # noqa: UP036 - say so plainly on an older Python
        return fail("QuestFoundry needs Python 3.10 or newer")
    try:
        python = sys.executable if args.no_install else install(BUILD / "demo-venv")
        book = run_demo(python, args.project.absolute(), args.provider, args.sections)
    except DemoError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        return fail("interrupted")
    say(f"Done. The book: {book}")
    say(f"Open {book.as_uri()} in a browser. Run the demo again: nothing is paid twice.")
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
    options.add_argument("--sections", type=int, default=6, help="sections of the book (6)")
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


def run_demo(python: str, project: Path, provider: str, sections: int) -> Path:
    """Run story_spark then binding_run in ``project``; the book's HTML file."""
    project.mkdir(parents=True, exist_ok=True)
    questfoundry = [python, "-m", "questfoundry"]
    with stand_in(python, provider, project / "stand-in-server.log") as base_url:
        init = [*questfoundry, "init", "--force", "--provider", provider, "--no-input", *BRIEF]
        if base_url:
            init += ["--base-url", base_url]
        say(f"Writing {project / '.questfoundry' / 'config.yml'}")
        step(init, "writing the demo project's config", cwd=project)
        say(f"questfoundry run story_spark --sections {sections}")
        step(
            [*questfoundry, "run", "story_spark", "--sections", str(sections)],
            "story_spark",
            cwd=project,
        )
        say("questfoundry run binding_run")
        output = step([*questfoundry, "run", "binding_run"], "binding_run", cwd=project)
    for line in output.splitlines():
        if line.startswith("HTML book: "):
            return Path(line.removeprefix("HTML book: ").strip())
    raise DemoError("binding_run did not say where the HTML book is")


@contextmanager
def stand_in(python: str, provider: str, log: Path) -> Iterator[str | None]:
    """For the demo, the stand-in OpenAI server running (its base_url; its stderr in ``log``);
    else nothing."""
    if provider != "demo":
        yield None
        return
    say("Starting the stand-in OpenAI-compatible server (its prose is placeholder text)")
    with log.open("w") as errors:
        server = subprocess.Popen(
            [python, "-m", "questfoundry.testing.fakes", "openai"],
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
