"""The CLI reference is generated from the code and must be current, and
every command must be documented with an example."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
from toolcrib.cli import cli
from toolcrib.cli.reference import iter_commands

ROOT = Path(__file__).resolve().parents[2]


def test_cli_reference_is_current() -> None:
    # A fresh process: click caches each command's help option on first use,
    # so a render inside a test session can depend on which tests ran before.
    fresh = subprocess.run([sys.executable, "-m", "toolcrib.cli.reference"], capture_output=True, text=True, check=True)
    committed = (ROOT / "docs" / "cli.md").read_text()
    assert committed == fresh.stdout, "docs/cli.md is stale: run `python -m toolcrib.cli.reference > docs/cli.md`"


def test_every_command_has_help_and_an_example() -> None:
    for path, command in iter_commands(cli):
        assert command.help, f"toolcrib {' '.join(path)} has no help text"
        is_bare_group = isinstance(command, click.Group) and not command.invoke_without_command
        if not is_bare_group:  # a group that only holds subcommands shows theirs
            assert "Example" in command.help, f"toolcrib {' '.join(path)} has no example in its help"


def test_readme_names_every_top_level_command() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in cli.list_commands(click.Context(cli)):
        assert f"toolcrib {name}" in readme, f"README does not mention `toolcrib {name}`"
