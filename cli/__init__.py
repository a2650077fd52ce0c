"""toolcrib.cli: the click command line, a thin layer over `toolcrib.Registry`.

Exit codes (the contract scripts rely on; see README "Exit codes"):
0 success · 1 the tool raised or a test failed · 2 usage or bad input ·
3 not found · 4 refused by policy · 5 a resource limit was hit ·
6 the sandbox is unavailable · 70 internal error (a bug: please report it).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click
from pydantic import ValidationError

from ..registry.errors import ToolcribError
from .common import CLIError, State

__all__ = ["cli", "main"]

INTERNAL_ERROR = 70


class ToolcribGroup(click.Group):
    """Maps toolcrib's own exceptions to one-line errors and exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ToolcribError as err:
            raise CLIError.from_error(err) from None
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "input"
            raise CLIError(f"{where}: {first.get('msg', 'invalid')}") from None


@click.group(cls=ToolcribGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="toolcrib")
@click.option(
    "--registry",
    "registry_path",
    type=click.Path(dir_okay=False),
    envvar="TOOLCRIB_REGISTRY",
    help="Registry database file. Default: $TOOLCRIB_REGISTRY, else ~/.local/share/toolcrib/registry.db.",
)
@click.option("--actor", envvar="TOOLCRIB_ACTOR", help="Who is acting, for provenance and the audit log. Default: $TOOLCRIB_ACTOR, else your user name.")
@click.pass_context
def cli(ctx: click.Context, registry_path: str | None, actor: str | None) -> None:
    """toolcrib: a registry and sandbox for LLM-written tools.

    Register a tool with its tests and provenance, verify it in a sandbox,
    then call it; every step lands in a tamper-evident audit log.

    \b
    Examples:
        toolcrib init
        toolcrib add sort_words.py --tests sort_words.tests.json --generator gpt-4
        toolcrib verify sort_words
        toolcrib call sort_words --args '{"words": ["b", "a"]}'
        toolcrib audit verify
    """
    state = State(registry_path, actor)
    ctx.obj = state
    ctx.call_on_close(state.close)


def _register_commands() -> None:
    from . import audit, latm, run, serve, tools

    for module in (tools, run, audit, serve, latm):
        for command in module.COMMANDS:
            cli.add_command(command)
    try:
        from .image import doctor_command, image_group
    except ImportError:  # the Docker image commands ship with the Docker backend
        return
    cli.add_command(image_group)
    cli.add_command(doctor_command)


_register_commands()


def main() -> None:
    """Console-script entry point: never a traceback for the user."""
    try:
        cli.main(prog_name="toolcrib", standalone_mode=True)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        click.echo("Aborted!", err=True)
        sys.exit(130)
    except Exception as err:  # noqa: BLE001 - the last line of defence
        if os.environ.get("TOOLCRIB_DEBUG"):
            raise
        click.echo(f"Error: internal error: {type(err).__name__}: {err} (set TOOLCRIB_DEBUG=1 for a traceback)", err=True)
        sys.exit(INTERNAL_ERROR)
