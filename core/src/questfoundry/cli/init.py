"""``questfoundry init``: write a commented ``.questfoundry/config.yml`` for what this machine has.

Each installed provider plugin offers itself (its registration's ``setup``, asked in the order of
their ``priority``): with the repository's plugins, ``OPENAI_API_KEY`` → OpenAI, ``GEMINI_API_KEY``
→ Gemini, an Ollama answering at ``OLLAMA_HOST`` → Ollama with the first model it has. The first
that answers wins; else the demo: the stand-in OpenAI-compatible server bundled with QuestFoundry
(``python -m questfoundry.testing.fakes openai``). A key's value is never written, only
``${OPENAI_API_KEY}``. The file starts with a ``yaml-language-server`` line naming
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
from typing import TYPE_CHECKING, Any

import click

from questfoundry.cli.app import App, cli, pass_app
from questfoundry.cli.brief import FIELDS, brief_options, changes
from questfoundry.contracts.backends import ProviderSetup

if TYPE_CHECKING:
    from questfoundry.registry import PluginManager

#: where the demo's stand-in server listens (``python -m questfoundry.testing.fakes openai``)
DEMO_URL = "http://127.0.0.1:8765/v1"
#: the provider the demo's config uses (against the stand-in)
DEMO_PROVIDER = "openai"


@dataclass(frozen=True)
class Choice:
    """The provider a new config uses (``demo``: the stand-in), and what init writes for it."""

    provider: str
    setup: ProviderSetup
    base_url: str | None = None


@cli.command()
@click.option("--force", is_flag=True, help="Replace a config.yml that exists.")
@click.option(
    "--provider",
    default="auto",
    show_default=True,
    help="What to set up: a provider's name (`questfoundry plugins` lists them), demo, or auto: "
    "the first installed provider this machine offers (an API key in the environment, a local "
    "Ollama), else the demo.",
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
    chosen = choose(provider, base_url, os.environ, app.manager)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(chosen, schema_uri()), encoding="utf-8")
    config = load_config(path, manager=app.manager)  # what init writes validates, or a bug
    click.echo(f"Wrote {path}: {chosen.setup.reason}.")
    for warning in missing(chosen.setup, os.environ):
        click.echo(f"Warning: {warning}", err=True)
    if not given and not no_input and sys.stdin is not None and sys.stdin.isatty():
        given = ask_brief()
    if given:
        _save_brief(config, app, given)
    if chosen.provider == "demo":
        click.echo(f"Start the stand-in first (it serves until Ctrl-C): {stand_in(chosen)}")
    click.echo("Next: questfoundry roles   # each role's provider and model")
    click.echo("      questfoundry run story_spark")


def missing(setup: ProviderSetup, env: Mapping[str, str]) -> list[str]:
    """What the new config needs from the environment that is not there (a key's variable)."""
    return [
        f"{variable} is not set: the config reads the key from it, so set it before running "
        f"(export {variable}=...), or run `questfoundry init --force` for another provider"
        for variable in setup.needs
        if not env.get(variable)
    ]


def stand_in(chosen: Choice) -> str:
    """The command that starts the demo's stand-in where the new config points."""
    from urllib.parse import urlsplit

    address = urlsplit(chosen.base_url or DEMO_URL)
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


def choose(
    provider: str, base_url: str | None, env: Mapping[str, str], manager: PluginManager
) -> Choice:
    """What init sets up for ``provider`` (``auto``: the first installed provider this machine
    offers, by priority; ``demo``, or nothing offered: the stand-in)."""
    offers = sorted(
        (-reg.priority, name, reg.setup)
        for name, reg in manager.backends("provider").items()
        if reg.setup is not None
    )
    names = [name for _, name, _ in offers]
    if provider not in ("auto", "demo", *names):
        choices = ", ".join(["auto", *names, "demo"])
        raise click.UsageError(f"--provider {provider!r} is none of: {choices}")
    for _, name, offer in offers:
        if provider in ("auto", name):
            setup = offer(env, base_url, provider == name)
            if setup is not None:
                return Choice(name, setup)
    return Choice("demo", demo(base_url or DEMO_URL), base_url or DEMO_URL)


def demo(url: str) -> ProviderSetup:
    """The stand-in's config: the OpenAI provider at ``url``, with a key it does not check."""
    reason = "the demo: the bundled stand-in server, whose prose is placeholder text"
    text = f"base_url: {url}\napi_key: stand-in  # the stand-in takes any key\nmodel: gpt-4o-mini"
    image = "model: gpt-image-1  # placeholders too"
    return ProviderSetup(reason, text, image)


def schema_uri() -> str:
    """A ``file:`` URI of the config schema shipped inside the package."""
    from importlib import resources

    return Path(str(resources.files("questfoundry") / "schemas" / "config.schema.json")).as_uri()


def render(chosen: Choice, schema: str) -> str:
    """The commented config.yml for ``chosen``."""
    name = DEMO_PROVIDER if chosen.provider == "demo" else chosen.provider
    lines = [
        "providers:",
        "  text:",
        f"    default: {name}",
        f"    {name}:",
        _indented(chosen.setup.text),
    ]
    if chosen.setup.image is None:
        lines.append(_NO_IMAGES.rstrip("\n"))
    else:
        lines += ["  image:", f"    default: {name}  # the illustrator's pictures", f"    {name}:"]
        lines.append(_indented(chosen.setup.image))
    intro = _DEMO if chosen.provider == "demo" else ""
    body = "\n".join(lines) + "\n"
    return f"# yaml-language-server: $schema={schema}\n{_HEADER}{intro}{body}{_REST}"


def _indented(block: str) -> str:
    return "\n".join(f"      {line}" for line in block.splitlines())


_HEADER = """\
# QuestFoundry project configuration, written by `questfoundry init`.
# Reference: docs/configuration.md, or `questfoundry config schema`.
# Check it: `questfoundry config validate`; see it in effect: `questfoundry config show --sources`;
# each role's provider and model, and why: `questfoundry roles`.
# Any value can be overridden for one run: questfoundry --set roles.gatekeeper.temperature=0.1 ...

"""

_DEMO = """\
# The demo: every role talks to the stand-in OpenAI-compatible server bundled with QuestFoundry.
# Its prose is placeholder text. Start it first (it prints its URL and serves until Ctrl-C):
#   python -m questfoundry.testing.fakes openai --port 8765
# For real prose, run `questfoundry init --force` with OPENAI_API_KEY or GEMINI_API_KEY set,
# or with Ollama running.
"""

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
