"""Render the CLI reference (docs/cli.md) from the commands' own help text,
so the reference cannot drift from the code: a test regenerates it and
compares.

    python -m toolcrib.cli.reference > docs/cli.md
"""

from __future__ import annotations

import click

__all__ = ["iter_commands", "render"]

HEADER = """\
# CLI reference

Generated from the commands' own `--help` by `python -m toolcrib.cli.reference > docs/cli.md`;
`tests/cli/test_cli_docs.py` fails when this file is out of date.

Every read command takes `--json`. Errors are one line on stderr, `Error: ...`,
with the exit codes in the [README](../README.md#exit-codes).
"""


def iter_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    """Every command under `group`, depth first, as (path, command)."""
    found: list[tuple[tuple[str, ...], click.Command]] = []
    ctx = click.Context(group)  # through click's API: the top group loads its commands lazily
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        path = (*prefix, name)
        found.append((path, command))
        if isinstance(command, click.Group):
            found.extend(iter_commands(command, path))
    return found


def _help(path: tuple[str, ...], command: click.Command, parent: click.Context) -> str:
    ctx = click.Context(command, info_name=path[-1], parent=parent, terminal_width=100, max_content_width=100)
    return command.get_help(ctx)


def render() -> str:
    from . import cli

    root = click.Context(cli, info_name="toolcrib", terminal_width=100, max_content_width=100, **cli.context_settings)
    parts = [HEADER, "## toolcrib\n", "```", cli.get_help(root), "```\n"]
    for path, command in iter_commands(cli):
        parent = root
        for name in path[:-1]:
            command_group = (
                parent.command.get_command(parent, name) if isinstance(parent.command, click.Group) else None
            )
            assert command_group is not None, name
            parent = click.Context(command_group, info_name=name, parent=parent)
        parts += [f"## toolcrib {' '.join(path)}\n", "```", _help(path, command, parent), "```\n"]
    return "\n".join(parts)


if __name__ == "__main__":
    click.echo(render(), nl=False)
