"""``questfoundry ask``: one call through the gateway."""

from __future__ import annotations

import click

from questfoundry.cli.app import App, cli, json_option, pass_app, print_json
from questfoundry.cli.cache import _request


@cli.command()
@click.argument("prompt")
@click.option("--role", help="Role whose provider, model and parameters apply.")
@click.option("--provider", help="Provider to use (with --model) instead of a role's.")
@click.option("--model", help="Model to use.")
@click.option("--system", metavar="TEXT", help="A system message sent before PROMPT.")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A generation parameter, VALUE read as YAML, e.g. temperature=0.2 (repeatable).",
)
@click.option(
    "--cache",
    type=click.Choice(["default", "refresh", "no-store", "off"]),
    default="default",
    show_default=True,
    help="How this request uses the cache.",
)
@json_option
@pass_app
def ask(
    app: App,
    prompt: str,
    role: str | None,
    provider: str | None,
    model: str | None,
    system: str | None,
    params: tuple[str, ...],
    cache: str,
    as_json: bool,
) -> None:
    """Send PROMPT ("-": read it from stdin) through the gateway and print the reply, then one
    line about the call on stderr (with --json: one JSON object holding both)."""
    import sys
    from dataclasses import replace

    from questfoundry.contracts.errors import QuestFoundryError
    from questfoundry.kit.money import usd

    if prompt == "-":
        prompt = sys.stdin.read()
    if not prompt.strip():
        raise QuestFoundryError("the prompt is empty")
    request = replace(_request(app, prompt, role, provider, model, params, system), cache=cache)
    reply = app.runtime.gateway.generate(request)
    if as_json:
        print_json(
            {
                "text": reply.text,
                "image_bytes": None if reply.image is None else len(reply.image),
                "role": reply.role,
                "provider": reply.provider,
                "model": reply.model,
                "cache_hit": reply.cache_hit,
                "input_tokens": reply.usage.input_tokens,
                "output_tokens": reply.usage.output_tokens,
                "cost": reply.cost,  # a decimal string, or null when the price is unknown
                "saved": reply.saved,
                "retries": reply.retries,
                "waited_seconds": round(reply.waited, 3),
                "latency_ms": round(reply.latency * 1000),
            }
        )
        return
    if reply.image is not None:
        click.echo(f"<image: {len(reply.image)} bytes>")
    else:
        click.echo(reply.text)
    cost = "unknown" if reply.cost is None else usd(reply.cost)
    status = "cached" if reply.cache_hit else "not cached"
    tokens = f"{reply.usage.input_tokens} in / {reply.usage.output_tokens} out"
    click.echo(
        f"[{reply.provider} {reply.model} · {status} · {tokens} tokens · {cost} · "
        f"{reply.latency * 1000:.0f} ms]",
        err=True,
    )
