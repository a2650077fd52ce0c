"""export-schema: verified tools as function-calling definitions (toolcrib/exports.py)."""

from __future__ import annotations

import click

from ..exports import EXPORTERS, describe_formats, export_definitions
from ..registry.errors import PolicyRefused
from .common import TableChoice, echo_json, open_registry

__all__ = ["COMMANDS", "export_schema"]


@click.command(name="export-schema")
@click.argument("refs", nargs=-1, required=True, metavar="REF...")
@click.option(
    "--format",
    "fmt",
    type=TableChoice(EXPORTERS),
    default="openai",
    show_default=True,
    help=f"{describe_formats()}.",
)
def export_schema(refs: tuple[str, ...], fmt: str) -> None:
    """Print ready-to-paste tool definitions of verified versions (always JSON).

    Each definition comes from the version's stored signature: the docstring
    is the description, the input schema the parameters. Only verified,
    non-yanked versions are exported (exit 4 otherwise). Names are made
    portable (^[a-zA-Z0-9_-]{1,64}$). For OpenAI, strict mode is on where the
    schema allows it; where it does not (optional parameters, open-ended
    objects, unsupported keywords) a warning on stderr says why.

    \b
    Examples:
        toolcrib export-schema sort_words days_between
        toolcrib export-schema sort_words@1.0.0 --format anthropic
        toolcrib export-schema sort_words --format mcp > tools.json
    """
    reg = open_registry()
    tools = []
    for ref in refs:
        tool = reg.get(ref, allow_yanked=False)
        if tool.status != "verified":
            raise PolicyRefused(
                f"{tool.ref} is {tool.status}: only verified versions are exported (run 'toolcrib verify {tool.ref}')"
            )
        tools.append(tool)
    out = export_definitions(tools, fmt)
    for warning in out.warnings:
        click.echo(f"warning: {warning}", err=True)
    echo_json(out.definitions)


COMMANDS = [export_schema]
