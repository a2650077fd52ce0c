"""Tool definitions in the formats models consume, from the one stored signature.

    from toolcrib import Registry
    from toolcrib.exports import export_definitions
    with Registry("tools.db") as reg:
        out = export_definitions([reg.get("sort_words")], "openai")
    out.definitions  # paste into the request's "tools"
    out.warnings     # why a definition could not be strict

Formats, one entry each in `EXPORTERS` (the shapes are the providers'
documented ones; tests/doors/test_exports.py checks each):

- ``openai`` (Chat Completions ``tools``):
  ``{"type": "function", "function": {"name", "description", "parameters", "strict"}}``
- ``openai-responses`` (Responses API ``tools``):
  ``{"type": "function", "name", "description", "parameters", "strict", "output_schema"?}``
- ``anthropic`` (Messages API ``tools``):
  ``{"name", "description", "input_schema", "input_examples"?, "strict"}``
- ``mcp`` (a Model Context Protocol ``Tool``):
  ``{"name", "title", "description", "inputSchema", "outputSchema", "annotations"}``

Names must match ``^[a-zA-Z0-9_-]{1,64}$`` everywhere; toolcrib names already
do, and two versions of one tool exported together get their version as a
suffix. Strict mode (OpenAI's and Anthropic's) is on only where the schema
meets that provider's documented rules (toolcrib/provider_schemas.py); a
warning says why where it is off. For OpenAI an optional parameter is sent
required and nullable, and a null for it means "the tool's default" (the
registry drops it before the call). Descriptions are the docstring without
its parameter section (each parameter's schema has its own description);
Anthropic's ``input_examples`` are the version's own test arguments.
MCP's ``outputSchema`` must describe an object, so
it is the tool's return value under ``"result"``: what ``toolcrib serve``
advertises and returns as ``structuredContent``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from toolcrib.provider_schemas import (
    ANTHROPIC_MAX_OPTIONAL,
    ANTHROPIC_MAX_STRICT_TOOLS,
    ANTHROPIC_MAX_UNIONS,
    anthropic_budget,
    anthropic_strict,
    openai_strict,
    provider_schema,
)
from toolcrib.registry.docstrings import without_parameter_sections

if TYPE_CHECKING:  # only annotations: importing this module (the CLI does) loads no pydantic
    from toolcrib.registry.models import ToolVersion

__all__ = [
    "EXPORTERS",
    "FORMATS",
    "NAME_PATTERN",
    "Export",
    "Exporter",
    "describe_formats",
    "export_definitions",
    "mcp_tool",
    "portable_name",
    "strict_parameters",
]

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_MAX_EXAMPLES = 5
_MAX_EXAMPLE_CHARS = 2000


@dataclass
class Export:
    """Definitions ready to paste, and a warning for each compromise made."""

    definitions: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def portable_name(name: str) -> str:
    """`name` as ``^[a-zA-Z0-9_-]{1,64}$``: other characters become "_", and a
    name too long keeps its start plus 8 hex digits of its sha256 (so two long
    names stay apart)."""
    clean = re.sub(r"[^a-zA-Z0-9_-]", "_", name) or "tool"
    if len(clean) > 64:
        clean = clean[:55] + "_" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return clean


def strict_parameters(schema: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """The schema for OpenAI strict mode, or None and the reasons it cannot
    be (`provider_schemas.openai_strict`: objects closed, every property
    required, optional parameters nullable)."""
    strict, reasons, _notes = openai_strict(schema)
    return strict, reasons


def _description(tool: ToolVersion) -> str:
    # The docstring without its Args/Parameters section: each parameter's
    # schema carries its own description already.
    text = without_parameter_sections(tool.signature.description)
    return text or f"{tool.name} (no docstring)"


def _parameters(tool: ToolVersion) -> dict[str, Any]:
    schema = copy.deepcopy(tool.signature.input_schema)
    # The docstring is the tool's description; a copy inside the parameters
    # would only spend the model's context twice.
    schema.pop("description", None)
    return schema


def _mcp_output(tool: ToolVersion) -> dict[str, Any]:
    # What `toolcrib serve` advertises and returns: the value under "result"
    # (structuredContent is {"result": value} for every tool, objects included).
    inner = copy.deepcopy(tool.signature.output_schema or {})
    wrapper: dict[str, Any] = {"type": "object", "properties": {"result": inner}, "required": ["result"]}
    # fastmcp's Client unwraps {"result": value} to the plain value only when
    # the schema carries fastmcp's own marker (fastmcp/client/mixins/tools.py).
    wrapper["x-fastmcp-wrap-result"] = True
    if "$defs" in inner:  # keep "#/$defs/..." references resolvable from the new root
        wrapper["$defs"] = inner.pop("$defs")
    return wrapper


def _names(tools: list[ToolVersion]) -> list[str]:
    counts: dict[str, int] = {}
    for tool in tools:
        counts[tool.name] = counts.get(tool.name, 0) + 1
    names = []
    for tool in tools:
        raw = tool.name if counts[tool.name] == 1 else f"{tool.name}_v{tool.version}"
        names.append(portable_name(raw))
    return names


def mcp_tool(tool: ToolVersion, name: str | None = None, *, backend: str | None = None) -> dict[str, Any]:
    """`tool` as an MCP ``Tool`` (JSON, camelCase keys): the one shape both
    ``--format mcp`` and ``toolcrib serve``'s tools/list give (the server
    names the backend it runs on in the annotations' title, and adds _meta)."""
    sandboxed = f"sandboxed, {backend}" if backend else "sandboxed"
    return {
        "name": name or tool.name,
        "title": f"{tool.name} {tool.version}",
        "description": _description(tool),
        "inputSchema": copy.deepcopy(tool.signature.input_schema),  # exactly what a client sends is checked against
        "outputSchema": _mcp_output(tool),
        # The sandbox has no network and nothing it writes outlives the call,
        # and a version never changes.
        "annotations": {
            "title": f"{tool.name} {tool.version} ({sandboxed})",
            "readOnlyHint": True,
            "destructiveHint": False,
            "idempotentHint": True,
            "openWorldHint": False,
        },
    }


def _openai_body(tool: ToolVersion, name: str, warnings: list[str]) -> dict[str, Any]:
    parameters = _parameters(tool)
    strict, reasons, notes = openai_strict(parameters)
    if strict is None:
        warnings.append(f"{tool.ref}: strict mode off: {'; '.join(reasons)}")
    else:
        warnings.extend(f"{tool.ref}: {note}" for note in notes)
    return {
        "name": name,
        "description": _description(tool),
        "parameters": strict or provider_schema(parameters),
        "strict": strict is not None,
    }


def _openai(tool: ToolVersion, name: str, warnings: list[str]) -> dict[str, Any]:
    return {"type": "function", "function": _openai_body(tool, name, warnings)}


def _openai_responses(tool: ToolVersion, name: str, warnings: list[str]) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "function", **_openai_body(tool, name, warnings)}
    if tool.signature.output_schema is not None:
        # What the function's output (the tool's result, as JSON) holds.
        body["output_schema"] = provider_schema(tool.signature.output_schema)
    return body


def _input_examples(tool: ToolVersion, schema: dict[str, Any]) -> list[dict[str, Any]]:
    """Arguments of the version's own test cases (those that call it), as
    Anthropic's ``input_examples``: at most `_MAX_EXAMPLES`, each small, each
    naming only parameters the schema has."""
    props = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    examples: list[dict[str, Any]] = []
    for case in tool.tests:
        args = case.args
        if args is None or not set(args) <= set(props) or not required <= set(args):
            continue
        if args in examples or len(json.dumps(args)) > _MAX_EXAMPLE_CHARS:
            continue
        examples.append(copy.deepcopy(args))
        if len(examples) == _MAX_EXAMPLES:
            break
    return examples


def _anthropic(tool: ToolVersion, name: str, warnings: list[str]) -> dict[str, Any]:
    parameters = _parameters(tool)
    strict, reasons = anthropic_strict(parameters)
    if strict is None:
        warnings.append(f"{tool.ref}: strict tool use off: {'; '.join(reasons)}")
    schema = strict or provider_schema(parameters)
    out: dict[str, Any] = {"name": name, "description": _description(tool), "input_schema": schema}
    examples = _input_examples(tool, schema)
    if examples:
        out["input_examples"] = examples
    out["strict"] = strict is not None
    return out


def _anthropic_request(definitions: list[dict[str, Any]], warnings: list[str]) -> None:
    """Anthropic caps strict tools per request (their number, and their
    optional and union-typed parameters together): past a cap, a tool is
    sent without strict, in order, with a warning."""
    tools = optional = unions = 0
    for definition in definitions:
        if not definition.get("strict"):
            continue
        more_optional, more_unions = anthropic_budget(definition["input_schema"])
        if (
            tools + 1 > ANTHROPIC_MAX_STRICT_TOOLS
            or optional + more_optional > ANTHROPIC_MAX_OPTIONAL
            or unions + more_unions > ANTHROPIC_MAX_UNIONS
        ):
            definition["strict"] = False
            warnings.append(
                f"{definition['name']}: strict tool use off: a request takes at most {ANTHROPIC_MAX_STRICT_TOOLS} "
                f"strict tools, {ANTHROPIC_MAX_OPTIONAL} optional and {ANTHROPIC_MAX_UNIONS} union-typed "
                "parameters among them"
            )
            continue
        tools, optional, unions = tools + 1, optional + more_optional, unions + more_unions


def _mcp(tool: ToolVersion, name: str, warnings: list[str]) -> dict[str, Any]:
    return mcp_tool(tool, name)


@dataclass(frozen=True)
class Exporter:
    """One export format: ``build(tool, portable name, warnings)`` makes one
    definition (appending a warning for each compromise made); the
    description is the format's line in ``export-schema --help``."""

    description: str
    build: Callable[[ToolVersion, str, list[str]], dict[str, Any]]
    # Rules over a whole request's definitions (run after every build), if the provider has any.
    request: Callable[[list[dict[str, Any]], list[str]], None] | None = None


# Every export format, by the name ``--format`` takes. The first is the default.
EXPORTERS: dict[str, Exporter] = {
    "openai": Exporter("Chat Completions tools", _openai),
    "openai-responses": Exporter("Responses API tools", _openai_responses),
    "anthropic": Exporter("Messages API tools", _anthropic, _anthropic_request),
    "mcp": Exporter("MCP Tool objects, as toolcrib serve lists them", _mcp),
}

# The names, for a CLI choice (taken when this module is imported).
FORMATS: tuple[str, ...] = tuple(EXPORTERS)


def describe_formats() -> str:
    """Every format and its description, for help text: "name (what), ..."."""
    return ", ".join(f"{name} ({exporter.description})" for name, exporter in EXPORTERS.items())


def export_definitions(tools: Iterable[ToolVersion], fmt: str) -> Export:
    """Definitions of `tools` in format `fmt` (a name in EXPORTERS), in order.

    Raises ValueError for an unknown format. The caller decides which versions
    may be exported (the CLI exports verified, non-yanked versions only).
    """
    exporter = EXPORTERS.get(fmt)
    if exporter is None:
        raise ValueError(f"unknown format {fmt!r} (choose {', '.join(EXPORTERS)})")
    chosen = list(tools)
    out = Export()
    for tool, name in zip(chosen, _names(chosen)):
        if name != tool.name:
            out.warnings.append(f"{tool.ref}: exported as {name!r}")
        out.definitions.append(exporter.build(tool, name, out.warnings))
    if exporter.request is not None:
        exporter.request(out.definitions, out.warnings)
    return out
