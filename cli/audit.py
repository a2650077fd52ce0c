"""Reading and checking the audit log: audit, audit verify."""

from __future__ import annotations

import sys
from typing import Any

import click

from .common import echo_json, echo_table, json_option, open_registry

__all__ = ["COMMANDS"]


def _summary(details: dict[str, Any]) -> str:
    keys = ("status", "limit", "backend", "verdict", "reason", "message", "duration_ms")
    return " ".join(f"{k}={details[k]}" for k in keys if details.get(k) not in (None, ""))


@click.group(invoke_without_command=True)
@click.option("--tool", help="Only entries about this NAME or NAME@VERSION.")
@click.option("--event", help="Only this event (add, verify, call, deprecate, yank, import, ...).")
@click.option("--since", metavar="WHEN", help="Only entries at or after this ISO date or time (UTC).")
@click.option("--limit", "limit", type=click.IntRange(1), help="Only the newest N entries.")
@json_option
@click.pass_context
def audit(
    ctx: click.Context, tool: str | None, event: str | None, since: str | None, limit: int | None, json_output: bool
) -> None:
    """List the audit log: every add, verify, call and lifecycle change.

    Entries are hash-chained; 'toolcrib audit verify' checks the chain.

    \b
    Examples:
        toolcrib audit --limit 20
        toolcrib audit --tool sort_words --event call --json
        toolcrib audit --since 2026-11-01
    """
    if ctx.invoked_subcommand is not None:
        return
    entries = open_registry().audit(tool=tool, event=event, since=since, limit=limit)
    if json_output:
        echo_json([e.model_dump(mode="json") for e in entries])
        return
    echo_table(
        ["SEQ", "AT", "ACTOR", "EVENT", "TOOL", "DETAILS"],
        [(e.seq, e.at, e.actor, e.event, e.tool, _summary(e.details)) for e in entries],
    )


@audit.command(name="verify")
@json_option
def audit_verify(json_output: bool) -> None:
    """Recompute the audit hash chain; exit 1 naming the first bad entry.

    \b
    Example:
        toolcrib audit verify
    """
    report = open_registry().audit_verify()
    if json_output:
        echo_json(report.model_dump(mode="json"))
    elif report.ok:
        click.echo(f"audit log intact: {report.entries} entries")
    else:
        click.echo(f"Error: audit log broken at entry {report.first_bad}: {report.problem}", err=True)
    if not report.ok:
        sys.exit(1)


COMMANDS = [audit]
