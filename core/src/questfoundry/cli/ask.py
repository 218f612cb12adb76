"""``questfoundry ask``: one call through the gateway."""

from __future__ import annotations

import click

from questfoundry.cli.app import App, cli, pass_app
from questfoundry.cli.cache import _request


@cli.command()
@click.argument("prompt")
@click.option("--role", help="Role whose provider, model and parameters apply.")
@click.option("--provider", help="Provider to use (with --model) instead of a role's.")
@click.option("--model", help="Model to use.")
@click.option(
    "--cache",
    type=click.Choice(["default", "refresh", "no-store", "off"]),
    default="default",
    show_default=True,
    help="How this request uses the cache.",
)
@pass_app
def ask(
    app: App, prompt: str, role: str | None, provider: str | None, model: str | None, cache: str
) -> None:
    """Send PROMPT through the gateway and print the reply, then one line about the call."""
    from dataclasses import replace

    request = replace(_request(prompt, role, provider, model), cache=cache)
    reply = app.runtime.gateway.generate(request)
    if reply.image is not None:
        click.echo(f"<image: {len(reply.image)} bytes>")
    else:
        click.echo(reply.text)
    cost = "unknown" if reply.cost is None else f"${reply.cost:.6f}"
    status = "cached" if reply.cache_hit else "not cached"
    tokens = f"{reply.usage.input_tokens} in / {reply.usage.output_tokens} out"
    click.echo(
        f"[{reply.provider} {reply.model} · {status} · {tokens} tokens · {cost} · "
        f"{reply.latency * 1000:.0f} ms]",
        err=True,
    )
