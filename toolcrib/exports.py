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
  ``{"type": "function", "name", "description", "parameters", "strict"}``
- ``anthropic`` (Messages API ``tools``): ``{"name", "description", "input_schema"}``
- ``mcp`` (a Model Context Protocol ``Tool``):
  ``{"name", "title", "description", "inputSchema", "outputSchema", "annotations"}``

Names must match ``^[a-zA-Z0-9_-]{1,64}$`` everywhere; toolcrib names already
do, and two versions of one tool exported together get their version as a
suffix. OpenAI strict mode is on only where the schema can honour it (every
property required, no open-ended objects, only supported keywords); a warning
says why where it is off. MCP's ``outputSchema`` must describe an object, so
it is the tool's return value under ``"result"``: what ``toolcrib serve``
advertises and returns as ``structuredContent``.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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

# The JSON Schema keywords OpenAI's strict mode (Structured Outputs) accepts;
# anything else in a schema turns strict mode off for that tool.
_STRICT_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "const",
        "anyOf",
        "$ref",
        "$defs",
        "definitions",
        "description",
        "title",
        "pattern",
        "format",
        "multipleOf",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minItems",
        "maxItems",
    }
)


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
    """The schema for OpenAI strict mode (every object closed with
    ``additionalProperties: false``), or None and the reasons it cannot be."""
    reasons: list[str] = []
    strict = copy.deepcopy(schema)

    def walk(node: Any, where: str) -> None:
        if isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{where}[{i}]")
            return
        if not isinstance(node, dict):
            return
        for key in node:
            if key not in _STRICT_KEYWORDS:
                if key == "default":
                    reasons.append(
                        f"{where or 'parameters'} has a default (strict mode makes every parameter required)"
                    )
                else:
                    reasons.append(f"{where or 'parameters'} uses {key!r}, which strict mode does not support")
        if node.get("type") == "object" or "properties" in node:
            props = node.get("properties") or {}
            extra = node.get("additionalProperties", False)
            if extra is not False:
                reasons.append(f"{where or 'parameters'} is an object with open-ended keys")
            missing = sorted(set(props) - set(node.get("required") or []))
            if missing:
                reasons.append(
                    f"optional parameter(s) {', '.join(missing)}"
                    if not where
                    else f"{where} has optional key(s) {', '.join(missing)}"
                )
            node["additionalProperties"] = False
            for name, sub in props.items():
                walk(sub, f"{where}.{name}" if where else str(name))
        for key in ("items", "anyOf", "$defs", "definitions"):
            if key in node:
                sub = node[key]
                if key in ("$defs", "definitions") and isinstance(sub, dict):
                    for name, value in sub.items():
                        walk(value, f"{where}#{name}")
                else:
                    walk(sub, f"{where}.{key}" if where else key)

    walk(strict, "")
    if strict.get("type") != "object":
        reasons.append("the parameters are not an object")
    # The same reason found on several paths is said once.
    unique = list(dict.fromkeys(reasons))
    return (None, unique) if unique else (strict, [])


def _description(tool: ToolVersion) -> str:
    text = (tool.signature.description or "").strip()
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
    strict, reasons = strict_parameters(parameters)
    if strict is None:
        warnings.append(f"{tool.ref}: strict mode off: {'; '.join(reasons)}")
    return {
        "name": name,
        "description": _description(tool),
        "parameters": strict or parameters,
        "strict": strict is not None,
    }


def _openai(tool: ToolVersion, name: str, warnings: list[str]) -> dict[str, Any]:
    return {"type": "function", "function": _openai_body(tool, name, warnings)}


def _openai_responses(tool: ToolVersion, name: str, warnings: list[str]) -> dict[str, Any]:
    return {"type": "function", **_openai_body(tool, name, warnings)}


def _anthropic(tool: ToolVersion, name: str, warnings: list[str]) -> dict[str, Any]:
    return {"name": name, "description": _description(tool), "input_schema": _parameters(tool)}


def _mcp(tool: ToolVersion, name: str, warnings: list[str]) -> dict[str, Any]:
    return mcp_tool(tool, name)


@dataclass(frozen=True)
class Exporter:
    """One export format: ``build(tool, portable name, warnings)`` makes one
    definition (appending a warning for each compromise made); the
    description is the format's line in ``export-schema --help``."""

    description: str
    build: Callable[[ToolVersion, str, list[str]], dict[str, Any]]


# Every export format, by the name ``--format`` takes. The first is the default.
EXPORTERS: dict[str, Exporter] = {
    "openai": Exporter("Chat Completions tools", _openai),
    "openai-responses": Exporter("Responses API tools", _openai_responses),
    "anthropic": Exporter("Messages API tools", _anthropic),
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
    return out
