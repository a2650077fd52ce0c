"""The `limits` command: the registry's maximum limits, the operator's choice."""

from __future__ import annotations

from typing import Any

import click

from ..sandbox.contract import LIMIT_NAMES, Limits
from .common import echo_json, echo_table, json_option, open_registry, parse_limits

__all__ = ["COMMANDS"]

_UNITS = {"cpu": "s", "wall": "s", "memory": "MiB", "output": "KiB", "pids": "", "disk": "MiB"}


@click.command()
@click.option(
    "maxima",
    "--max",
    multiple=True,
    metavar="NAME=VALUE",
    help="Set the registry's maximum for one limit: cpu (s), wall (s), memory (MiB), output (KiB), "
    "pids, disk (MiB). Repeatable.",
)
@click.option(
    "unset",
    "--unset",
    multiple=True,
    type=click.Choice(LIMIT_NAMES),
    metavar="NAME",
    help="Return one maximum to its default. Repeatable.",
)
@json_option
def limits(maxima: tuple[str, ...], unset: tuple[str, ...], json_output: bool) -> None:
    """Show or set the registry's maximum limits (the operator's choice).

    A version's declared limits (add --limit, a bundle) and a caller's
    (call --limit) are capped by these maxima: a version that declares more
    is clamped at call time (show prints what it gets; the call's audit
    entry names what was lowered). The output maximum also bounds the
    host's memory for one call (a small multiple of it). Each change is an
    audit entry (event 'setting').

    \b
    Examples:
        toolcrib limits
        toolcrib limits --max output=4096 --max wall=300
        toolcrib limits --unset output --json
    """
    from ..registry.limits import DEFAULT_MAX_LIMITS

    changing = bool(maxima or unset)
    reg = open_registry(create=changing)
    if changing:
        current = reg.set_maxima(parse_limits(maxima, "--max") or {}, unset=unset)
    else:
        current = reg.max_limits
    set_by = reg.operator_maxima()
    if json_output:
        echo_json(_as_json(current, DEFAULT_MAX_LIMITS, set_by))
        return
    rows = []
    for name in LIMIT_NAMES:
        who = set_by.get(name)
        rows.append(
            (
                name,
                _UNITS[name],
                getattr(Limits(), name),
                getattr(current, name),
                f"{who['set_by']} at {who['set_at']}" if who else "default",
            )
        )
    echo_table(["LIMIT", "UNIT", "DEFAULT", "MAXIMUM", "SET BY"], rows)


def _as_json(current: Limits, defaults: Limits, set_by: dict[str, Any]) -> dict[str, Any]:
    return {
        "maxima": current.to_json(),
        "default_maxima": defaults.to_json(),
        "defaults": Limits().to_json(),
        "set_by": set_by,
    }


COMMANDS = [limits]
