"""A stored input schema in the form each provider's strict mode accepts, or
the reasons it cannot be (toolcrib/exports.py uses these; docs/formats.md,
"Strict mode", says what each provider documents).

The stored schema stays the contract: a call's arguments are checked
against it whatever the export said (registry/calls.py). So a constraint a
provider's strict mode cannot express (``uniqueItems``, ``minLength``, a
default) is moved into the description, as the providers' own SDKs do, and
still enforced by the registry; only what the model could not be told at all
(a value of any type, an object with open-ended keys, a tuple's positions)
turns strict mode off.

OpenAI (Structured Outputs): every object closed (``additionalProperties:
false``) with every property required; an optional parameter becomes
required and nullable (``"type": [T, "null"]``), and the registry drops a
null sent for an optional parameter whose type does not take null, so the
tool's own default applies (`registry.schema_check.drop_default_nulls`).
Anthropic (strict tool use): objects closed, optional parameters allowed
(at most 24 across a request's strict tools, and 16 that are unions), no
numeric, length or item-count constraints beyond ``minItems`` 0 or 1.
"""

from __future__ import annotations

import copy
import json
from typing import Any

__all__ = [
    "ANTHROPIC_MAX_OPTIONAL",
    "ANTHROPIC_MAX_STRICT_TOOLS",
    "ANTHROPIC_MAX_UNIONS",
    "accepts_null",
    "anthropic_budget",
    "anthropic_strict",
    "openai_strict",
    "provider_schema",
]

# Keys whose value is a map of names to schemas / a list of schemas / one schema.
_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "allOf", "oneOf", "prefixItems")
_SCHEMA_ONE = ("items", "additionalProperties", "not", "contains", "if", "then", "else", "propertyNames")

_OPENAI_FORMATS = frozenset({"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"})
_ANTHROPIC_FORMATS = _OPENAI_FORMATS | {"uri"}

# What each strict mode accepts, keyword by keyword: what both do, and each one's own.
_BOTH_KEYWORDS = frozenset(
    {
        "type",
        "description",
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
        "pattern",
        "format",
        "minItems",
    }
)
_OPENAI_KEYWORDS = _BOTH_KEYWORDS | {
    "multipleOf",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "maxItems",
}
# ("default" is documented as supported, but the anthropic SDK's own
# transform_schema says it in the description instead; so does this.)
_ANTHROPIC_KEYWORDS = _BOTH_KEYWORDS | {"allOf"}
# Keywords that change what a value may be in a way no description can carry
# to a constrained decoder: with one of these, strict mode is off.
_STRUCTURAL = frozenset(
    {
        "prefixItems",
        "patternProperties",
        "not",
        "if",
        "then",
        "else",
        "dependentSchemas",
        "dependentRequired",
        "propertyNames",
        "unevaluatedProperties",
        "unevaluatedItems",
        "contains",
        "oneOf",
    }
)
_OPENAI_MAX_DEPTH = 10
_OPENAI_MAX_PROPERTIES = 5000
_OPENAI_MAX_ENUM_VALUES = 1000
ANTHROPIC_MAX_OPTIONAL = 24
ANTHROPIC_MAX_UNIONS = 16
ANTHROPIC_MAX_STRICT_TOOLS = 20


def provider_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of a stored schema for a provider: without titles (the name
    says it) and without toolcrib's own ``x-`` marks (the registry reads
    those from the stored schema, never from an export)."""

    def clean(node: Any) -> Any:
        if isinstance(node, list):
            return [clean(item) for item in node]
        if not isinstance(node, dict):
            return node
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "title" or key.startswith("x-"):
                continue
            if key in _SCHEMA_MAPS and isinstance(value, dict):
                out[key] = {name: clean(sub) for name, sub in value.items()}
            elif key in ("default", "const", "enum", "examples"):
                out[key] = copy.deepcopy(value)  # values, not schemas
            else:
                out[key] = clean(value)
        return out

    cleaned: dict[str, Any] = clean(schema)
    return cleaned


def accepts_null(node: Any) -> bool:
    """Whether a (stored, derived) property schema admits JSON null."""
    if not isinstance(node, dict):
        return node is True
    if "const" in node:
        return node["const"] is None
    if "enum" in node:
        return None in node["enum"]
    if "anyOf" in node or "oneOf" in node:
        return any(accepts_null(b) for b in node.get("anyOf") or node.get("oneOf") or [])
    if "type" in node:
        kind = node["type"]
        return kind == "null" or (isinstance(kind, list) and "null" in kind)
    return "$ref" not in node and "allOf" not in node  # no type at all: any value


def _typed(node: dict[str, Any]) -> bool:
    return any(key in node for key in ("type", "anyOf", "allOf", "enum", "const", "$ref"))


def _note(node: dict[str, Any], moved: dict[str, Any]) -> None:
    """Constraints strict mode cannot hold, said in the description instead."""
    if not moved:
        return
    said = ", ".join(
        "items must be unique"
        if key == "uniqueItems" and value is True
        else f"{key}: {json.dumps(value, ensure_ascii=False)}"
        for key, value in moved.items()
    )
    text = node.get("description")
    node["description"] = f"{text} ({said})" if text else f"({said})"


def _nullable(node: dict[str, Any]) -> dict[str, Any]:
    """`node` that also admits null (for OpenAI's optional-parameter recipe)."""
    if accepts_null(node):
        return node
    out = dict(node)
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        return out
    if "anyOf" in out:
        out["anyOf"] = [*out["anyOf"], {"type": "null"}]
        return out
    if isinstance(out.get("type"), str) and "const" not in out:
        out["type"] = [out["type"], "null"]
        return out
    if isinstance(out.get("type"), list):
        out["type"] = [*out["type"], "null"]
        return out
    description = out.pop("description", None)
    wrapped: dict[str, Any] = {"anyOf": [out, {"type": "null"}]}
    if description is not None:
        wrapped["description"] = description
    return wrapped


def _same_typed_tuple(node: dict[str, Any]) -> None:
    """A tuple whose positions all have one schema (``tuple[str, str]``) as
    an array of that schema with its exact length: the same values, in the
    keywords strict modes know. A tuple of mixed positions stays as it is
    (strict mode cannot say which position takes what)."""
    prefix = node.get("prefixItems")
    if not isinstance(prefix, list) or not prefix or node.get("items") not in (None, False):
        return
    first = json.dumps(prefix[0], sort_keys=True)
    if any(json.dumps(p, sort_keys=True) != first for p in prefix[1:]):
        return
    node.pop("prefixItems")
    node["items"] = copy.deepcopy(prefix[0])
    node["minItems"] = node["maxItems"] = len(prefix)


class _Walk:
    """One pass over a provider copy of a schema, closing objects and moving
    what the provider's strict mode does not take into descriptions."""

    def __init__(self, keywords: frozenset[str], formats: frozenset[str], provider: str) -> None:
        self.keywords = keywords
        self.formats = formats
        self.provider = provider
        self.reasons: list[str] = []
        self.properties = 0
        self.enum_values = 0
        self.depth = 0

    def walk(self, node: Any, where: str, depth: int, *, top: bool = False) -> None:
        if not isinstance(node, dict):
            if node is True or node == {}:
                self.reasons.append(f"{where} takes any JSON value, which strict mode cannot express")
            return
        self.depth = max(self.depth, depth)
        label = where or "parameters"
        _same_typed_tuple(node)
        for key in [k for k in node if k in _STRUCTURAL]:
            self.reasons.append(f"{label} uses {key!r}, which strict mode cannot express")
        if self.provider == "openai" and "$ref" in node and len(node) > 1:
            self.reasons.append(f"{label} has keys beside '$ref', which strict mode does not allow")
        if not _typed(node):
            self.reasons.append(f"{label} takes any JSON value (no type), which strict mode cannot express")
        moved: dict[str, Any] = {}
        for key in list(node):
            if key in self.keywords or key in _STRUCTURAL:
                continue
            if key in _SCHEMA_MAPS or key in _SCHEMA_LISTS or key in _SCHEMA_ONE:
                self.reasons.append(f"{label} uses {key!r}, which strict mode does not support")
                continue
            moved[key] = node.pop(key)  # a constraint: said in the description, checked by the registry
        if node.get("format") is not None and node["format"] not in self.formats:
            moved["format"] = node.pop("format")
        if self.provider == "anthropic" and node.get("minItems") not in (None, 0, 1):
            moved["minItems"] = node.pop("minItems")
        if self.provider == "anthropic" and isinstance(node.get("enum"), list):
            if any(isinstance(v, (dict, list)) for v in node["enum"]):
                self.reasons.append(f"{label} has an enum of objects or arrays")
        if isinstance(node.get("enum"), list):
            self.enum_values += len(node["enum"])
        _note(node, moved)
        kind = node.get("type")
        if kind == "object" or (isinstance(kind, list) and "object" in kind) or "properties" in node:
            props = node.get("properties") or {}
            extra = node.get("additionalProperties", False)
            if extra is not False:
                self.reasons.append(f"{label} is an object with open-ended keys")
            elif not props:
                self.reasons.append(f"{label} is an object with no named keys")
            node["additionalProperties"] = False
            self.properties += len(props)
            if not top:
                missing = [name for name in props if name not in (node.get("required") or [])]
                if missing and self.provider == "openai":
                    self.reasons.append(f"{label} has optional key(s) {', '.join(missing)}")
            for name, sub in props.items():
                self.walk(sub, f"{where}.{name}" if where else str(name), depth + 1)
        for key in ("items",):
            if key in node:
                if node[key] is True or node[key] == {}:
                    self.reasons.append(f"{label} is an array of any JSON values, which strict mode cannot express")
                else:
                    self.walk(node[key], f"{label}[]", depth + 1)
        if kind == "array" and "items" not in node and "prefixItems" not in node:
            self.reasons.append(f"{label} is an array of any JSON values, which strict mode cannot express")
        for key in ("anyOf", "allOf"):
            for index, sub in enumerate(node.get(key) or []):
                self.walk(sub, f"{label}.{key}[{index}]", depth + (0 if key == "anyOf" else 1))
        for key in ("$defs", "definitions"):
            for name, sub in (node.get(key) or {}).items():
                self.walk(sub, f"{label}#{name}", depth + 1)

    def unique(self) -> list[str]:
        return list(dict.fromkeys(self.reasons))


def openai_strict(
    schema: dict[str, Any],
) -> tuple[dict[str, Any] | None, list[str], list[str]]:
    """(the schema for OpenAI strict mode or None, why not, notes): notes
    say where a null does not mean "the default" (a parameter whose own type
    takes null has it passed on)."""
    out = provider_schema(schema)
    notes: list[str] = []
    if out.get("type") != "object":
        return None, ["the parameters are not an object"], notes
    for prop in (out.get("properties") or {}).values():
        if isinstance(prop, dict):
            prop.pop("default", None)  # said with the null below
    walk = _Walk(_OPENAI_KEYWORDS, _OPENAI_FORMATS, "openai")
    walk.walk(out, "", 1, top=True)
    props: dict[str, Any] = out.get("properties") or {}
    required = list(out.get("required") or [])
    for name, prop in list(props.items()):
        if name in required or not isinstance(prop, dict):
            continue
        # Optional: required and nullable; the registry drops the null so the tool's default applies.
        default = schema.get("properties", {}).get(name, {}).get("default", ...)
        if accepts_null(prop):
            if default is not ... and default is not None:
                notes.append(f"{name}: null is passed to the tool as None (its default is {json.dumps(default)})")
            props[name] = prop
        else:
            said = f"the default, {json.dumps(default)}" if default is not ... else "the tool's default"
            nullable = _nullable(prop)
            text = nullable.get("description")
            nullable["description"] = f"{text} (null: {said})" if text else f"(null: {said})"
            props[name] = nullable
    if props:
        out["required"] = list(props)
    if walk.depth > _OPENAI_MAX_DEPTH:
        walk.reasons.append(f"the schema nests {walk.depth} levels (strict mode takes {_OPENAI_MAX_DEPTH})")
    if walk.properties > _OPENAI_MAX_PROPERTIES:
        walk.reasons.append(f"{walk.properties} properties (strict mode takes {_OPENAI_MAX_PROPERTIES})")
    if walk.enum_values > _OPENAI_MAX_ENUM_VALUES:
        walk.reasons.append(f"{walk.enum_values} enum values (strict mode takes {_OPENAI_MAX_ENUM_VALUES})")
    reasons = walk.unique()
    return (None, reasons, notes) if reasons else (out, [], notes)


def anthropic_strict(schema: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """(the schema for Anthropic strict tool use or None, why not)."""
    out = provider_schema(schema)
    if out.get("type") != "object":
        return None, ["the parameters are not an object"]
    walk = _Walk(_ANTHROPIC_KEYWORDS, _ANTHROPIC_FORMATS, "anthropic")
    walk.walk(out, "", 1, top=True)
    optional, unions = anthropic_budget(out)
    if optional > ANTHROPIC_MAX_OPTIONAL:
        walk.reasons.append(f"{optional} optional parameters (strict tool use takes {ANTHROPIC_MAX_OPTIONAL})")
    if unions > ANTHROPIC_MAX_UNIONS:
        walk.reasons.append(f"{unions} union-typed parameters (strict tool use takes {ANTHROPIC_MAX_UNIONS})")
    reasons = walk.unique()
    return (None, reasons) if reasons else (out, [])


def anthropic_budget(schema: dict[str, Any]) -> tuple[int, int]:
    """(optional parameters, parameters using anyOf or a type array) of a
    strict schema: Anthropic caps both across a request's strict tools."""
    props = schema.get("properties")
    if not isinstance(props, dict):
        return 0, 0
    required = set(schema.get("required") or [])
    optional = sum(1 for name in props if name not in required)
    unions = sum(1 for p in props.values() if isinstance(p, dict) and ("anyOf" in p or isinstance(p.get("type"), list)))
    return optional, unions
