"""`toolcrib prelude`: named preludes, the shared code (a library's import
block) that `add --prelude NAME` copies into each version it registers."""

from __future__ import annotations

import click

from ..registry.models import Prelude
from .common import echo_json, echo_table, json_option, open_registry, read_text_argument

__all__ = ["COMMANDS", "prelude_group"]


def _lines(prelude: Prelude) -> int:
    return prelude.text.count("\n")


@click.group(name="prelude")
def prelude_group() -> None:
    """Store and read named preludes: code run before each tool of a library.

    A version added with '--prelude NAME' stores a copy of the prelude's text
    (hashed with the version) and gets its requirements; replacing a prelude
    later changes no stored version.

    \b
    Examples:
        toolcrib prelude add mathlib header.py --requires "sympy>=1.12"
        toolcrib prelude list
        toolcrib add tools/ --prelude mathlib --namespace mathlib
    """


@prelude_group.command(name="add")
@click.argument("name")
@click.argument("path", metavar="FILE|-")
@click.option(
    "requires",
    "--requires",
    multiple=True,
    metavar="REQUIREMENT",
    help="A package the prelude needs (PEP 508); versions using it get it too. Repeatable.",
)
@json_option
def add_prelude(name: str, path: str, requires: tuple[str, ...], json_output: bool) -> None:
    """Store a prelude under NAME (replacing one of that name). Audited.

    \b
    Examples:
        toolcrib prelude add tablelib header.py --requires pandas
        printf 'from math import *\\n' | toolcrib prelude add mathstar -
    """
    text = read_text_argument(path, "prelude")
    stored = open_registry(create=True).set_prelude(name, text, requires=requires)
    if json_output:
        echo_json(stored.model_dump(mode="json"))
        return
    extra = f", requires {', '.join(stored.requires)}" if stored.requires else ""
    click.echo(f"Stored prelude {stored.name} (sha256:{stored.sha256[:12]}, {_lines(stored)} line(s){extra})")


@prelude_group.command(name="list")
@json_option
def list_preludes(json_output: bool) -> None:
    """List the stored preludes.

    \b
    Examples:
        toolcrib prelude list
        toolcrib prelude list --json
    """
    preludes = open_registry().preludes()
    if json_output:
        echo_json([p.model_dump(mode="json") for p in preludes])
        return
    echo_table(
        ["NAME", "SHA256", "LINES", "REQUIRES", "UPDATED"],
        [(p.name, p.sha256[:12], _lines(p), " ".join(p.requires), p.updated_at) for p in preludes],
    )


@prelude_group.command(name="show")
@click.argument("name")
@json_option
def show_prelude(name: str, json_output: bool) -> None:
    """Print a stored prelude's text (with --json: text, hash, requirements).

    \b
    Examples:
        toolcrib prelude show mathlib
        toolcrib prelude show mathlib --json
    """
    stored = open_registry().get_prelude(name)
    if json_output:
        echo_json(stored.model_dump(mode="json"))
        return
    click.echo(stored.text, nl=False)


COMMANDS = [prelude_group]
