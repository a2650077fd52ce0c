"""The commands that read one page or one version: list and show (and the
table helpers search and history share).

Their plain text goes through registry/plain_reads.py on a plain sqlite3
connection (`open_reader`): no pydantic, sqlite-utils or `Registry` on
the way (issue 21: a first page of `list` and a `show` in well under
150 ms; tests/cli/test_startup.py keeps them so). ``--json`` (the models'
own dump) and ``--stats`` read through `Registry`.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeAlias

import click

from ..registry.schema_check import DECLARED_KEY, arg_forms
from .checks import echo_check_line
from .common import echo_json, echo_text, json_option, open_reader, open_registry
from .streaming import echo_json_array, echo_table_stream

if TYPE_CHECKING:
    from ..registry import Registry, ToolVersion
    from ..registry.plain_reads import Listed, Usage, VersionView
    from ..registry.stats import UsageStats
    from ..sandbox.contract import Limits

    Listable: TypeAlias = ToolVersion | Listed | VersionView

__all__ = ["COMMANDS", "flags_text", "print_tools", "summary_text", "tool_json"]


def flags_text(tool: Listable) -> str:
    flags = []
    if tool.deprecated is not None:
        flags.append("deprecated")
    if tool.yanked is not None:
        flags.append("yanked")
    return ",".join(flags)


def summary_text(tool: Listable) -> str:
    return (tool.signature.description or "").strip().splitlines()[0] if tool.signature.description else ""


def tool_json(tool: ToolVersion, *, full: bool = True) -> dict[str, Any]:
    data = tool.model_dump(mode="json")
    data["ref"] = tool.ref
    data["requires"] = tool.requires
    if not full:
        data.pop("source", None)
        data["provenance"].pop("prompt", None)
    return data


def print_tools(tools: Iterable[Listable], json_output: bool) -> None:
    """Tools as a table or a JSON array (of ToolVersions), written as they come."""
    if json_output:
        echo_json_array(tool_json(t, full=False) for t in tools)  # type: ignore[arg-type]
        return
    echo_table_stream(
        ["NAME", "VERSION", "STATUS", "FLAGS", "DESCRIPTION"],
        ((t.name, t.version, t.status, flags_text(t), summary_text(t)) for t in tools),
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _usage_line(stats: UsageStats | Usage) -> str:
    if not stats.calls:
        return "never called"
    line = (
        f"{stats.calls} call(s): {stats.successes} ok, {stats.errors} error, {stats.blocked} blocked, "
        f"{stats.limit_hits} limit, {stats.refused} refused"
    )
    if stats.unavailable:
        line += f", {stats.unavailable} unavailable"
    if stats.median_ms is not None:
        line += f"; median {_ms(stats.median_ms)} ms, p95 {_ms(stats.p95_ms)} ms"
    return f"{line}; last {stats.last_used}"


@click.command(name="list")
@click.option("include_yanked", "--all", is_flag=True, help="Include tools whose every version is yanked.")
@click.option(
    "with_stats",
    "--stats",
    is_flag=True,
    help="Add each version's usage from the audit log: calls, outcomes, median and p95 duration, last use.",
)
@click.option("--limit", "limit", type=click.IntRange(0), help="At most N tools (a page).")
@click.option("--offset", "offset", type=click.IntRange(0), default=0, help="Skip the first N tools.")
@click.option(
    "--after", "after", metavar="NAME", help="Only tools whose name sorts after NAME (a cursor: the last of a page)."
)
@click.option(
    "--status", "status", type=click.Choice(["verified", "unverified", "failed"]), help="Only tools with this status."
)
@click.option("--name", "name_glob", metavar="GLOB", help="Only names matching GLOB (*, ?, [...]; case-sensitive).")
@json_option
def list_(
    include_yanked: bool,
    with_stats: bool,
    limit: int | None,
    offset: int,
    after: str | None,
    status: str | None,
    name_glob: str | None,
    json_output: bool,
) -> None:
    """List the newest version of every tool.

    Written as it is read, by name, in constant memory (--json: one JSON
    array). Page with --limit and --offset, or --limit and --after with the
    last name of the previous page.

    \b
    Examples:
        toolcrib list
        toolcrib list --stats
        toolcrib list --json --stats
        toolcrib list --status verified --name 'sort_*' --limit 50
        toolcrib list --limit 50 --after sort_words
    """
    page: dict[str, Any] = {
        "include_yanked": include_yanked,
        "status": status,
        "name_glob": name_glob,
        "after": after,
        "limit": limit,
        "offset": offset,
    }
    if not with_stats and not json_output:  # the table: plain rows, no Registry (registry/plain_reads.py)
        print_tools(open_reader().listed(**page), False)
        return
    reg = open_registry()
    tools = reg.iter_list(**page)
    if not with_stats:
        print_tools(tools, json_output)
        return
    with_usage = _with_usage(reg, tools)
    if json_output:
        echo_json_array({**tool_json(t, full=False), "usage": u.model_dump(mode="json")} for t, u in with_usage)
        return
    echo_table_stream(
        [
            "NAME",
            "VERSION",
            "STATUS",
            "CALLS",
            "OK",
            "ERROR",
            "BLOCKED",
            "LIMIT",
            "REFUSED",
            "P50_MS",
            "P95_MS",
            "LAST_USED",
        ],
        (
            (
                t.name,
                t.version,
                t.status,
                u.calls,
                u.successes,
                u.errors,
                u.blocked,
                u.limit_hits,
                u.refused,
                _ms(u.median_ms),
                _ms(u.p95_ms),
                u.last_used or "-",
            )
            for t, u in with_usage
        ),
    )


def _with_usage(reg: Registry, tools: Iterable[ToolVersion]) -> Iterator[tuple[ToolVersion, UsageStats]]:
    """Each tool with its usage, read a page at a time (usage is kept as calls
    are audited: one indexed read per page)."""
    it = iter(tools)
    while page := list(itertools.islice(it, 200)):
        stats = reg.usage(t.ref for t in page)
        for tool in page:
            yield tool, stats[tool.ref]


def _granted_json(declared: Limits | None, maxima: Limits) -> dict[str, Any]:
    from ..registry.limits import granted

    gets, lowered = granted(declared, maxima)
    return {"limits": gets.to_json(), "clamped": sorted(lowered)}


def _echo_limits(declared: Limits | None, maxima: Limits) -> None:
    """What the version declared and, where this registry's maxima (the
    operator's, `toolcrib limits`) lower it, what its calls get instead."""
    from ..registry.limits import granted

    if declared:
        echo_text(f"  limits:     {', '.join(f'{k}={v}' for k, v in declared.to_json().items())}")
    gets, lowered = granted(declared, maxima)
    if lowered:
        capped = ", ".join(f"{k}={getattr(gets, k)} (declared {v})" for k, v in lowered.items())
        echo_text(f"  clamped:    {capped}: this registry's maximum (toolcrib limits)")


def _describe_param(name: str, schema: dict[str, Any], required: bool) -> str:
    form = arg_forms({"properties": {name: schema}}).get(name)
    kind = form or (
        schema.get("type")
        or (
            "any"
            if not schema
            else "/".join(s.get("type", "?") for s in schema.get("anyOf", []) if isinstance(s, dict)) or "any"
        )
    )
    if form is not None and schema.get(DECLARED_KEY) is True:
        kind += " (declared)"
    default = f" = {json.dumps(schema['default'])}" if "default" in schema else ""
    return f"{name}: {kind}{'' if required else ' (optional)'}{default}"


@click.command()
@click.argument("ref")
@click.option("--source", "source_only", is_flag=True, help="Print only the source.")
@json_option
def show(ref: str, source_only: bool, json_output: bool) -> None:
    """Show one version: signature, tests, provenance, verification, usage.

    REF is NAME (newest active version), NAME@1.2.0 or NAME@sha256:PREFIX.

    \b
    Examples:
        toolcrib show sort_words
        toolcrib show sort_words@1.0.0 --source
        toolcrib show sort_words@sha256:3f2a9c1 --json
    """
    if json_output and not source_only:
        _show_json(ref)
        return
    # The text: plain rows, no Registry (registry/plain_reads.py).
    shown = open_reader().shown(ref)
    tool, evidence, stats = shown.tool, shown.evidence, shown.usage
    if source_only:
        click.echo(tool.source, nl=not tool.source.endswith("\n"))
        return
    sig = tool.signature
    props = sig.input_schema.get("properties", {})
    required = set(sig.input_schema.get("required", []))
    echo_text(f"{tool.ref}  [{tool.status}{', ' + flags_text(tool) if flags_text(tool) else ''}]")
    echo_text(f"  sha256:     {tool.sha256}")
    echo_text(
        f"  entrypoint: {tool.entrypoint}({', '.join(_describe_param(n, s, n in required) for n, s in props.items())})"
    )
    if sig.output_schema:
        echo_text(f"  returns:    {json.dumps(sig.output_schema, sort_keys=True)}")
    if sig.untyped:
        echo_text(f"  untyped:    {', '.join(sig.untyped)}")
    if sig.description:
        echo_text(f"  about:      {summary_text(tool)}")
    if tool.deprecated is not None:
        echo_text(f"  deprecated: {tool.deprecated}")
    if tool.yanked is not None:
        echo_text(f"  yanked:     {tool.yanked}")
    _echo_limits(tool.limits, shown.max_limits)
    echo_text(f"  policy:     {tool.policy}")
    if tool.lock:
        echo_text(f"  requires:   {', '.join(tool.requires)}")
        echo_text(f"  lock:       {tool.lock.digest()[:12]} ({tool.lock.python})")
        for pkg in tool.lock.packages:
            echo_text(f"    {pkg.name}=={pkg.version}  {pkg.filename}  sha256:{pkg.sha256[:16]}")
    if tool.prelude is not None:
        from ..registry.versions import sha256_text

        lines = tool.prelude.count("\n")
        echo_text(f"  prelude:    sha256:{sha256_text(tool.prelude)[:12]} ({lines} line(s))")
    prov = tool.provenance
    echo_text(f"  registered: {prov.registered_at} by {prov.registered_by}")
    echo_text(f"  generator:  {prov.generator or '-'}")
    if prov.prompt_sha256:
        echo_text(f"  prompt:     sha256:{prov.prompt_sha256[:12]} ({len(prov.prompt or '')} chars)")
    if prov.parent:
        echo_text(f"  parent:     {prov.parent}")
    for key, value in sorted(prov.metadata.items()):
        echo_text(f"  meta:       {key}={value}")
    echo_text(f"  tests:      {len(tool.tests)}")
    for i, case in enumerate(tool.tests, 1):
        call = json.dumps(case.args, sort_keys=True) if case.args is not None else "snippet"
        label = f" {case.name}:" if case.name else ""
        echo_text(f"    {i}.{label} {call} -> {json.dumps(case.expected)} [{case.comparator}]")
    if evidence:
        echo_text(
            f"  verified:   {evidence.status} {evidence.passed}/{evidence.passed + evidence.failed} "
            f"on {evidence.backend}{f' ({evidence.policy} policy)' if evidence.policy else ''} at {evidence.verified_at}"
        )
        if evidence.layers:
            echo_text(f"  isolation:  {', '.join(evidence.layers)}")
    echo_text(f"  usage:      {_usage_line(stats)}")
    for run in shown.checks:
        echo_check_line(run)


def _show_json(ref: str) -> None:
    """`show --json`: the models' own dump, through Registry."""
    reg = open_registry()
    tool = reg.get(ref)
    evidence = reg.verification(tool.ref)
    stats = reg.usage([tool.ref])[tool.ref]
    data = tool_json(tool)
    data["granted_limits"] = _granted_json(tool.limits, reg.max_limits)
    data["verification"] = evidence.model_dump(mode="json") if evidence else None
    data["usage"] = stats.model_dump(mode="json")
    data["checks"] = [run.model_dump(mode="json") for run in reg.checks(tool.ref)]
    echo_json(data)


COMMANDS = [list_, show]
