"""The providers' documented rules for strict tool schemas, written down as
checkers (test code, independent of toolcrib/provider_schemas.py, which
builds the schemas these check).

OpenAI, Structured Outputs "Supported schemas" (function calling with
``strict: true`` follows the same rules):
- types: string, number, boolean, integer, object, array, enum, anyOf (and
  null, for the optional-field recipe ``"type": [T, "null"]``);
- the root is an object, not ``anyOf``;
- every object has ``additionalProperties: false`` and lists every one of
  its properties in ``required`` (optional fields are nullable instead);
- supported keywords: strings ``pattern``, ``format`` (date-time, time, date,
  duration, email, hostname, ipv4, ipv6, uuid); numbers ``multipleOf``,
  ``maximum``, ``exclusiveMaximum``, ``minimum``, ``exclusiveMinimum``;
  arrays ``minItems``, ``maxItems``; definitions ``$defs`` and ``$ref`` (no
  keys beside a ``$ref``); ``description``, ``enum``, ``const``, ``anyOf``;
- at most 5000 object properties, 10 levels of nesting, 1000 enum values.

Anthropic, "Strict tool use" / structured outputs "JSON Schema limitations":
- supported: every basic type, ``enum`` of strings, numbers, booleans or
  nulls, ``const``, ``anyOf``, ``allOf``, local ``$ref``/``$defs``/
  ``definitions``, ``default``, ``required``, ``additionalProperties: false``
  (mandatory on every object), string ``format`` (date-time, time, date,
  duration, email, hostname, uri, ipv4, ipv6, uuid), ``pattern``, and
  ``minItems`` of 0 or 1;
- not supported: numerical constraints (minimum, maximum, multipleOf),
  string lengths, other array constraints, recursive schemas;
- per request: at most 20 strict tools, 24 optional parameters and 16
  parameters using ``anyOf`` or type arrays across them.
"""

from __future__ import annotations

from typing import Any

_TYPES = {"string", "number", "boolean", "integer", "object", "array", "null"}
_OPENAI_COMMON = {"type", "description", "enum", "const", "anyOf", "$ref", "$defs", "definitions"}
_OPENAI_BY_TYPE = {
    "string": {"pattern", "format"},
    "number": {"multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum"},
    "integer": {"multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum"},
    "array": {"items", "minItems", "maxItems"},
    "object": {"properties", "required", "additionalProperties"},
    "boolean": set(),
    "null": set(),
}
_OPENAI_FORMATS = {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
_ANTHROPIC_KEYWORDS = {
    "type",
    "description",
    "enum",
    "const",
    "anyOf",
    "allOf",
    "$ref",
    "$defs",
    "definitions",
    "default",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "format",
    "pattern",
}
_ANTHROPIC_FORMATS = _OPENAI_FORMATS | {"uri"}


def _types(node: dict[str, Any]) -> list[str]:
    kind = node.get("type")
    return [kind] if isinstance(kind, str) else list(kind) if isinstance(kind, list) else []


def openai_strict_violations(schema: dict[str, Any]) -> list[str]:
    """Every way `schema` (a function's ``parameters``) breaks OpenAI's strict rules."""
    found: list[str] = []
    counts = {"properties": 0, "enum": 0, "depth": 0}
    if schema.get("type") != "object" or "anyOf" in schema:
        found.append("root: must be an object, not anyOf")

    def walk(node: Any, where: str, depth: int) -> None:
        if not isinstance(node, dict):
            found.append(f"{where}: not a schema object")
            return
        counts["depth"] = max(counts["depth"], depth)
        if "$ref" in node and len(node) > 1:
            found.append(f"{where}: keys beside $ref")
        if not any(k in node for k in ("type", "anyOf", "enum", "const", "$ref")):
            found.append(f"{where}: no type")
        kinds = _types(node)
        for kind in kinds:
            if kind not in _TYPES:
                found.append(f"{where}: unknown type {kind!r}")
        allowed = set(_OPENAI_COMMON)
        for kind in kinds or list(_OPENAI_BY_TYPE):
            allowed |= _OPENAI_BY_TYPE.get(kind, set())
        for key in node:
            if key not in allowed:
                found.append(f"{where}: keyword {key!r} not supported")
        if "format" in node and node["format"] not in _OPENAI_FORMATS:
            found.append(f"{where}: format {node['format']!r} not supported")
        if isinstance(node.get("enum"), list):
            counts["enum"] += len(node["enum"])
        if "object" in kinds or "properties" in node:
            props = node.get("properties")
            if not isinstance(props, dict):
                found.append(f"{where}: object without properties")
                props = {}
            if node.get("additionalProperties") is not False:
                found.append(f"{where}: additionalProperties must be false")
            if set(node.get("required") or []) != set(props):
                found.append(f"{where}: every property must be required")
            counts["properties"] += len(props)
            for name, sub in props.items():
                walk(sub, f"{where}.{name}", depth + 1)
        if "array" in kinds:
            if not isinstance(node.get("items"), dict):
                found.append(f"{where}: array without an items schema")
            else:
                walk(node["items"], f"{where}[]", depth + 1)
        for index, sub in enumerate(node.get("anyOf") or []):
            walk(sub, f"{where}|{index}", depth)
        for key in ("$defs", "definitions"):
            for name, sub in (node.get(key) or {}).items():
                walk(sub, f"{where}#{name}", depth + 1)

    walk(schema, "parameters", 1)
    if counts["depth"] > 10:
        found.append(f"nesting {counts['depth']} > 10")
    if counts["properties"] > 5000:
        found.append("more than 5000 properties")
    if counts["enum"] > 1000:
        found.append("more than 1000 enum values")
    return found


def anthropic_strict_violations(schema: dict[str, Any]) -> list[str]:
    """Every way `schema` (a tool's ``input_schema``) breaks Anthropic's strict rules."""
    found: list[str] = []
    if schema.get("type") != "object":
        found.append("root: must be an object")

    def walk(node: Any, where: str, refs: tuple[str, ...]) -> None:
        if not isinstance(node, dict):
            found.append(f"{where}: not a schema object")
            return
        if not any(k in node for k in ("type", "anyOf", "allOf", "enum", "const", "$ref")):
            found.append(f"{where}: no type")
        for kind in _types(node):
            if kind not in _TYPES:
                found.append(f"{where}: unknown type {kind!r}")
        for key in node:
            if key not in _ANTHROPIC_KEYWORDS:
                found.append(f"{where}: keyword {key!r} not supported")
        if "format" in node and node["format"] not in _ANTHROPIC_FORMATS:
            found.append(f"{where}: format {node['format']!r} not supported")
        if "minItems" in node and node["minItems"] not in (0, 1):
            found.append(f"{where}: minItems other than 0 or 1")
        if any(isinstance(v, (dict, list)) for v in node.get("enum") or []):
            found.append(f"{where}: enum of complex values")
        ref = node.get("$ref")
        if isinstance(ref, str):
            if not ref.startswith("#/"):
                found.append(f"{where}: external $ref")
            if ref in refs:
                found.append(f"{where}: recursive schema")
        if "object" in _types(node) or "properties" in node:
            if node.get("additionalProperties") is not False:
                found.append(f"{where}: additionalProperties must be false")
            for name, sub in (node.get("properties") or {}).items():
                walk(sub, f"{where}.{name}", refs)
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{where}[]", refs)
        elif "items" in node:
            found.append(f"{where}: items is not a schema")
        for key in ("anyOf", "allOf"):
            for index, sub in enumerate(node.get(key) or []):
                walk(sub, f"{where}|{index}", refs)
        for key in ("$defs", "definitions"):
            for name, sub in (node.get(key) or {}).items():
                walk(sub, f"{where}#{name}", (*refs, f"#/{key}/{name}"))

    walk(schema, "input_schema", ())
    return found


def anthropic_request_violations(tools: list[dict[str, Any]]) -> list[str]:
    """The per-request caps over the tools sent with ``strict: true``."""
    strict = [t for t in tools if t.get("strict")]
    optional = unions = 0
    for tool in strict:
        schema = tool["input_schema"]
        props = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        optional += sum(1 for name in props if name not in required)
        unions += sum(1 for p in props.values() if "anyOf" in p or isinstance(p.get("type"), list))
    found = []
    if len(strict) > 20:
        found.append(f"{len(strict)} strict tools > 20")
    if optional > 24:
        found.append(f"{optional} optional parameters > 24")
    if unions > 16:
        found.append(f"{unions} union parameters > 16")
    return found
