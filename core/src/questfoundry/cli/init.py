"""``questfoundry init``: write a commented ``.questfoundry/config.yml`` for what this machine has.

What it finds, first match wins: ``OPENAI_API_KEY`` → OpenAI; ``GEMINI_API_KEY`` → Gemini; an
Ollama answering at ``OLLAMA_HOST`` (default 127.0.0.1:11434) within :data:`PROBE_SECONDS` →
Ollama, with the first model it has; else the demo: the stand-in OpenAI-compatible server bundled
with QuestFoundry (``python -m questfoundry.testing.fakes openai``). A key's value is never
written, only ``${OPENAI_API_KEY}``. The file starts with a ``yaml-language-server`` line naming
the JSON Schema shipped in the package, so editors check and complete it.

Then the book's brief: the brief's flags (``--premise``, ``--tone``, …) set it; without any, init
asks for it on a terminal (each question may be skipped with Enter). ``--no-input`` never asks,
and neither does init when its input is not a terminal (a pipe, a script, CI), so it never waits.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from questfoundry.cli.app import App, cli, pass_app
from questfoundry.cli.brief import FIELDS, brief_options, changes

#: how long a local Ollama has to answer before init decides there is none
PROBE_SECONDS = 0.3
OLLAMA_PORT = 11434
#: where the demo's stand-in server listens (``python -m questfoundry.testing.fakes openai``)
DEMO_URL = "http://127.0.0.1:8765/v1"
CHOICES = ("auto", "openai", "gemini", "ollama", "demo")


@dataclass(frozen=True)
class Setup:
    """The provider a new config uses, and why init chose it."""

    provider: str  #: ``openai``, ``gemini``, ``ollama`` or ``demo``
    reason: str
    text_model: str
    base_url: str | None = None


@cli.command()
@click.option("--force", is_flag=True, help="Replace a config.yml that exists.")
@click.option(
    "--provider",
    type=click.Choice(CHOICES),
    default="auto",
    show_default=True,
    help="What to set up; auto: an API key in the environment, a local Ollama, else the demo.",
)
@click.option("--base-url", metavar="URL", help="Endpoint of the provider (the demo's server).")
@brief_options()
@click.option("--no-input", is_flag=True, help="Never ask for the brief (a script's init).")
@pass_app
def init(
    app: App,
    /,
    force: bool,
    provider: str,
    base_url: str | None,
    no_input: bool,
    **values: Any,
) -> None:
    """Write a commented .questfoundry/config.yml here (--config: that path instead), and the
    book's brief: from its flags, else asked on a terminal."""
    from questfoundry.config import PROJECT_DIR_NAME, load_config
    from questfoundry.contracts.brief import Brief
    from questfoundry.contracts.errors import ConfigError

    path = Path(app.config_path or Path(PROJECT_DIR_NAME, "config.yml")).absolute()
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; run again with --force to replace it")
    given = changes(values)
    Brief().updated(given)  # a bad value stops init before it writes anything
    setup = choose(provider, base_url, os.environ)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(setup, schema_uri()), encoding="utf-8")
    config = load_config(path, manager=app.manager)  # what init writes validates, or a bug
    click.echo(f"Wrote {path}: {setup.reason}.")
    for warning in missing(setup, os.environ):
        click.echo(f"Warning: {warning}", err=True)
    if not given and not no_input and sys.stdin is not None and sys.stdin.isatty():
        given = ask_brief()
    if given:
        _save_brief(config, app, given)
    if setup.provider == "demo":
        click.echo(f"Start the stand-in first (it serves until Ctrl-C): {stand_in(setup)}")
    click.echo("Next: questfoundry roles   # each role's provider and model")
    click.echo("      questfoundry run story_spark")


def missing(setup: Setup, env: Mapping[str, str]) -> list[str]:
    """What the new config needs from the environment that is not there (a key's variable)."""
    variable = {"openai": "OPENAI_API_KEY", "gemini": "GEMINI_API_KEY"}.get(setup.provider)
    if variable is None or env.get(variable):
        return []
    return [
        f"{variable} is not set: the config reads the key from it, so set it before running "
        f"(export {variable}=...), or run `questfoundry init --force` for another provider"
    ]


def stand_in(setup: Setup) -> str:
    """The command that starts the demo's stand-in where the new config points."""
    from urllib.parse import urlsplit

    address = urlsplit(setup.base_url or DEMO_URL)
    host = "" if address.hostname in (None, "127.0.0.1") else f" --host {address.hostname}"
    port = f" --port {address.port}" if address.port else ""
    return f"python -m questfoundry.testing.fakes openai{port}{host}"


def ask_brief() -> dict[str, Any]:
    """The brief's fields, asked one by one (Enter skips one); each answer is checked as it is
    given, and asked again when it is not valid."""
    from questfoundry.contracts.brief import Brief
    from questfoundry.contracts.errors import StateError

    click.echo("The book's brief. Enter skips a question; `questfoundry brief` changes it later.")
    given: dict[str, Any] = {}
    for name, (_, question) in FIELDS.items():

        def check(answer: str, name: str = name) -> Any:
            value: Any = answer.strip() or None
            if value is None:
                return None
            if name == "sections":
                value = int(value) if value.isdigit() else value
            try:
                Brief().updated({name: value})
            except StateError as exc:
                raise click.UsageError(str(exc)) from None
            return value

        default = {"pov": "second", "language": "en"}.get(name, "")
        answer = click.prompt(
            question, default=default, show_default=bool(default), value_proc=check
        )
        if answer is not None and answer != default:
            given[name] = answer
    return given


def _save_brief(config: Any, app: App, given: Mapping[str, Any]) -> None:
    from questfoundry.cli.brief import save_brief
    from questfoundry.runtime import Runtime

    with Runtime(config, app.manager) as runtime:
        brief = save_brief(runtime.state, given)
    click.echo(f"Saved the brief: {', '.join(brief.shown())}.")


def choose(provider: str, base_url: str | None, env: Mapping[str, str]) -> Setup:
    """The :class:`Setup` for ``provider`` (``auto``: the first this machine offers)."""
    if provider in ("auto", "openai") and (env.get("OPENAI_API_KEY") or provider == "openai"):
        return Setup("openai", "OpenAI, with the key in OPENAI_API_KEY", "gpt-4o-mini", base_url)
    if provider in ("auto", "gemini") and (env.get("GEMINI_API_KEY") or provider == "gemini"):
        reason = "Gemini, with the key in GEMINI_API_KEY"
        return Setup("gemini", reason, "gemini-2.5-flash", base_url)
    if provider in ("auto", "ollama"):
        host = base_url or ollama_url(env)
        models = probe_ollama(host)
        if models is not None or provider == "ollama":
            model = (models or ["llama3.2"])[0]
            return Setup("ollama", f"the Ollama at {host}", model, host)
    reason = "the demo: the bundled stand-in server, whose prose is placeholder text"
    return Setup("demo", reason, "gpt-4o-mini", base_url or DEMO_URL)


def ollama_url(env: Mapping[str, str]) -> str:
    """Where Ollama listens: ``OLLAMA_HOST`` as Ollama reads it (``host``, ``host:port`` or a
    URL; ``0.0.0.0`` means this machine), else 127.0.0.1:11434."""
    from urllib.parse import urlsplit

    value = env.get("OLLAMA_HOST", "").strip() or "127.0.0.1"
    parts = urlsplit(value if "://" in value else f"http://{value}")
    host = parts.hostname or "127.0.0.1"
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}:{parts.port or OLLAMA_PORT}"


def probe_ollama(url: str) -> list[str] | None:
    """The models of the Ollama answering at ``url``, or None when nothing answers in time.

    Asked directly: an HTTP proxy in the environment is not the machine's Ollama.
    """
    import json
    import urllib.request

    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with direct.open(f"{url}/api/tags", timeout=PROBE_SECONDS) as response:
            tags = json.loads(response.read(1 << 20))
    except (OSError, ValueError):
        return None
    models = tags.get("models") if isinstance(tags, dict) else None
    if not isinstance(models, list):
        return None
    return [m["name"] for m in models if isinstance(m, dict) and isinstance(m.get("name"), str)]


def schema_uri() -> str:
    """A ``file:`` URI of the config schema shipped inside the package."""
    from importlib import resources

    return Path(str(resources.files("questfoundry") / "schemas" / "config.schema.json")).as_uri()


def render(setup: Setup, schema: str) -> str:
    """The commented config.yml for ``setup``."""
    text = _PROVIDERS[setup.provider].format(model=setup.text_model, base_url=setup.base_url)
    if setup.base_url and setup.provider in ("openai", "gemini"):
        text += f"      base_url: {setup.base_url}\n"
    images = _IMAGES.get(setup.provider, _NO_IMAGES)
    return f"# yaml-language-server: $schema={schema}\n{_HEADER}{text}{images}{_REST}"


_HEADER = """\
# QuestFoundry project configuration, written by `questfoundry init`.
# Reference: docs/configuration.md, or `questfoundry config schema`.
# Check it: `questfoundry config validate`; see it in effect: `questfoundry config show --sources`;
# each role's provider and model, and why: `questfoundry roles`.
# Any value can be overridden for one run: questfoundry --set roles.gatekeeper.temperature=0.1 ...

"""

_PROVIDERS = {
    "openai": """\
providers:
  text:
    default: openai
    openai:
      api_key: ${{OPENAI_API_KEY}}  # read from the environment; never write the key here
      model: {model}
""",
    "gemini": """\
providers:
  text:
    default: gemini
    gemini:
      api_key: ${{GEMINI_API_KEY}}  # read from the environment; never write the key here
      model: {model}
""",
    "ollama": """\
providers:
  text:
    default: ollama
    ollama:
      base_url: {base_url}
      model: {model}  # any model you have pulled (`ollama list`)
""",
    "demo": """\
# The demo: every role talks to the stand-in OpenAI-compatible server bundled with QuestFoundry.
# Its prose is placeholder text. Start it first (it prints its URL and serves until Ctrl-C):
#   python -m questfoundry.testing.fakes openai --port 8765
# For real prose, run `questfoundry init --force` with OPENAI_API_KEY or GEMINI_API_KEY set,
# or with Ollama running.
providers:
  text:
    default: openai
    openai:
      base_url: {base_url}
      api_key: stand-in  # the stand-in server takes any key
      model: {model}
""",
}

_IMAGES = {
    "openai": """\
  image:
    default: openai  # the illustrator's pictures
    openai:
      model: gpt-image-1
""",
    "gemini": """\
  image:
    default: gemini  # the illustrator's pictures
    gemini:
      model: gemini-2.5-flash-image
""",
    "demo": """\
  image:
    default: openai  # the illustrator's pictures (placeholders too)
    openai:
      model: gpt-image-1
""",
}

_NO_IMAGES = """\
  # image:            # the illustrator needs an image provider, e.g. OpenAI:
  #   default: openai
  #   openai:
  #     api_key: ${OPENAI_API_KEY}
  #     model: gpt-image-1
"""

_REST = """\

# Per-role settings: each role uses providers.<kind>.default unless it says otherwise.
roles:
  gatekeeper:
    temperature: 0.2  # reviews: steady
  scene_smith:
    temperature: 0.8  # prose: livelier
  # plotwright:
  #   provider: ollama
  #   model: llama3.2

caching:
  ttl_seconds: 604800  # a week: asking the same thing again costs nothing

# rate_limiting:
#   global:
#     requests_per_minute: 60
#     cost_per_day: 5  # US dollars; a call that would exceed it is refused
"""
