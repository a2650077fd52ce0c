"""The command line before and after click reads it: the global options
(``--registry``, ``--actor``) accepted after the subcommand too, and the
one refusal JSON (`registry.outcome.refusal`) on stdout when a ``--json``
command fails (bad arguments, an unknown tool, a usage error), so a script
reading stdout always gets JSON. Imports click only: `toolcrib --help`
stays fast."""

from __future__ import annotations

from typing import Any

import click

__all__ = ["GLOBAL_OPTIONS", "hoist_global_options", "json_failure"]

# The group's options that take a value (cli/__init__.py).
GLOBAL_OPTIONS = ("--registry", "--actor")


def _subcommand_index(args: list[str]) -> int:
    """Where the subcommand's name is in `args` (len(args) if none)."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return i + 1
        if arg in GLOBAL_OPTIONS:
            i += 2
        elif arg.startswith("-"):
            i += 1
        else:
            return i
    return i


def hoist_global_options(args: list[str]) -> list[str]:
    """`args` with any global option written after the subcommand moved in
    front of it (``toolcrib call t --registry r.db`` = ``toolcrib --registry
    r.db call t``). Nothing after a ``--`` is touched."""
    start = _subcommand_index(args)
    if start >= len(args):
        return args
    head, name, rest = args[:start], args[start], args[start + 1 :]
    moved: list[str] = []
    kept: list[str] = []
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg == "--":
            kept += rest[i:]
            break
        if arg in GLOBAL_OPTIONS and i + 1 < len(rest):
            moved += rest[i : i + 2]
            i += 2
            continue
        if any(arg.startswith(option + "=") for option in GLOBAL_OPTIONS):
            moved.append(arg)
        else:
            kept.append(arg)
        i += 1
    return [*head, *moved, name, *kept] if moved else args


def _positional(command: click.Command | None, rest: list[str]) -> tuple[str | None, int]:
    """The first positional argument in `rest` (a REF, mostly) and where it
    is, skipping the values of the command's options."""
    takes_value: set[str] = set()
    if command is not None:
        for param in command.params:
            if isinstance(param, click.Option) and not param.is_flag and not param.count:
                takes_value.update(param.opts)
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg == "--":
            return (rest[i + 1], i + 1) if i + 1 < len(rest) else (None, i)
        if arg.startswith("-"):
            i += 2 if arg in takes_value else 1
            continue
        return arg, i
    return None, len(rest)


def _reference(group: click.Group, ctx: click.Context, name: str, rest: list[str]) -> str | None:
    """The REF a command line names: the first positional argument of the
    (innermost) command, through nested groups (``audit verify``, ``key
    trust``)."""
    try:
        command = group.get_command(ctx, name)
    except click.ClickException:
        return None
    for _depth in range(4):
        found, index = _positional(command, rest)
        if not isinstance(command, click.Group) or found is None:
            return found
        try:
            command = command.get_command(ctx, found)
        except click.ClickException:
            return None
        rest = rest[index + 1 :]
    return None


def json_failure(group: click.Group, ctx: click.Context, args: list[str], err: Any) -> None:
    """If the subcommand in `args` was given ``--json``, the refusal JSON
    for `err` (a ToolcribError) on stdout; the one-line error and its exit
    code follow as without --json."""
    start = _subcommand_index(args)
    if start >= len(args):
        return
    rest = args[start + 1 :]
    options = rest[: rest.index("--")] if "--" in rest else rest
    if "--json" not in options:
        return
    from ..registry.outcome import refusal
    from .common import echo_json

    echo_json(refusal(_reference(group, ctx, args[start], rest), err))
