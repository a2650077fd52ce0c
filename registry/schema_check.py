"""A call's arguments against a version's STORED input schema, and the
parameters whose JSON becomes a DataFrame or an ndarray.

Apart from `derive_signature` (pydantic, at add): a call reads only this,
so checking a call's arguments builds no pydantic model. jsonschema is
imported on the first check that needs it: arguments that plainly satisfy a
plain schema (`_plainly_valid`: types, items, required, no extra names; what
most derived schemas are) pass without it, which spares a one-shot
`toolcrib call` most of its import time; anything else, and every failure,
is jsonschema's to judge and to word.
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any, Literal

from .errors import ArgumentsError

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError as JsonSchemaError

__all__ = [
    "DECLARED_KEY",
    "FORM_KEY",
    "PARAM_FORMS",
    "arg_forms",
    "declared_forms",
    "drop_default_nulls",
    "json_arguments",
    "validate_stored_arguments",
]

# The mark a derived input schema carries on a DataFrame or ndarray parameter.
FORM_KEY = "x-toolcrib-form"
# The mark on a parameter whose form was declared at add (`add --param
# NAME=FORM`), not read from an annotation.
DECLARED_KEY = "x-toolcrib-declared"
# The forms a parameter can be declared to take.
PARAM_FORMS: tuple[str, ...] = ("dataframe", "ndarray")
_CACHE_SIZE = 256


def arg_forms(input_schema: dict[str, Any]) -> dict[str, Literal["dataframe", "ndarray"]]:
    """Parameters whose JSON argument the sandbox turns into a DataFrame or
    an ndarray, read from a (stored) input schema's ``x-toolcrib-form``
    marks, directly on the property or on one of its ``anyOf`` branches
    (an Optional parameter)."""
    forms: dict[str, Literal["dataframe", "ndarray"]] = {}
    properties = input_schema.get("properties")
    if not isinstance(properties, dict):
        return forms
    for name, prop in properties.items():
        if not isinstance(prop, dict):
            continue
        for branch in [prop, *(b for b in prop.get("anyOf") or [] if isinstance(b, dict))]:
            form = branch.get(FORM_KEY)
            if form == "dataframe" or form == "ndarray":
                forms[name] = form
                break
    return forms


def declared_forms(input_schema: dict[str, Any]) -> dict[str, str]:
    """The forms declared at add ({parameter: form}): the parameters of
    `arg_forms` whose property carries ``DECLARED_KEY``. With the source,
    they give the stored schema again (`derive_signature(..., forms=...)`)."""
    properties = input_schema.get("properties")
    if not isinstance(properties, dict):
        return {}
    return {
        name: form
        for name, form in arg_forms(input_schema).items()
        if isinstance(properties.get(name), dict) and properties[name].get(DECLARED_KEY) is True
    }


def _takes_null(prop: Any) -> bool:
    """Whether a stored property schema admits JSON null (no type: any value)."""
    if not isinstance(prop, dict):
        return prop is True
    if "const" in prop:
        return prop["const"] is None
    if "enum" in prop:
        return isinstance(prop["enum"], list) and None in prop["enum"]
    branches = prop.get("anyOf") or prop.get("oneOf")
    if isinstance(branches, list):
        return any(_takes_null(b) for b in branches)
    if "type" in prop:
        kind = prop["type"]
        return kind == "null" or (isinstance(kind, list) and "null" in kind)
    return "$ref" not in prop and "allOf" not in prop


def drop_default_nulls(input_schema: dict[str, Any], args: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """`args` without the nulls given for optional parameters whose type
    takes no null, and their names: such a null means "the tool's default"
    (how OpenAI's strict mode says "not given": every parameter is sent,
    optional ones nullable; docs/formats.md). A null the parameter's own
    type admits is the caller's value and stays."""
    properties = input_schema.get("properties")
    if not isinstance(properties, dict) or not any(v is None for v in args.values()):
        return args, []
    required = set(input_schema.get("required") or [])
    dropped = [
        name
        for name, value in args.items()
        if value is None and name in properties and name not in required and not _takes_null(properties[name])
    ]
    if not dropped:
        return args, []
    return {k: v for k, v in args.items() if k not in dropped}, dropped


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _schema_validator(schema_json: str, key: str | None = None) -> Any:
    """The validator of the schema in ``schema_json`` (under ``key`` in it
    when given: a stored signature's "input_schema"), cached by that text."""
    # Imported here: only calls need it, and `toolcrib --help` should not pay for it.
    import jsonschema.validators

    schema = json.loads(schema_json)
    if key is not None:
        schema = schema[key]
    base = jsonschema.validators.Draft202012Validator
    # JSON Schema counts 1.0 as an integer; the derived (pydantic, strict)
    # contract never did, so a stored schema is read the same way.
    strict = base.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
    )
    return jsonschema.validators.extend(base, type_checker=strict)(schema)


# jsonschema's messages quote the offending value whole: a 10 MB argument
# made a 10 MB message (printed, returned to MCP clients, audited). What a
# message says of one field, and how many fields it names, are capped.
_MAX_PROBLEM_CHARS = 300
_MAX_FIELDS = 20


def _short(text: str, limit: int = _MAX_PROBLEM_CHARS) -> str:
    return text if len(text) <= limit else f"{text[: limit - 30]}... ({len(text)} characters)"


def _schema_problem(error: JsonSchemaError) -> str:
    where = "".join(f"[{_short(json.dumps(step), 60)}]" for step in list(error.absolute_path)[1:8])
    if error.context:
        # anyOf/oneOf: say what each alternative wanted, like the derived validator does.
        why = " or ".join(dict.fromkeys(_short(sub.message) for sub in error.context[:3]))
    else:
        why = _short(error.message)
    return _short(f"{where}: {why}" if where else why)


def json_arguments(args: Any, prefix: str) -> tuple[str, dict[str, Any]]:
    """Call arguments (None: none) as JSON text and as the plain JSON object
    it parses back to; ArgumentsError, its message after `prefix`, for
    anything that is not a JSON object of JSON values."""
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ArgumentsError(f"{prefix}: arguments must be a JSON object, not {type(args).__name__}")
    if any(not isinstance(key, str) for key in args):
        raise ArgumentsError(f"{prefix}: argument names must be strings")
    try:
        text = json.dumps(args, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ArgumentsError(f"{prefix}: arguments must be plain JSON values ({exc})") from None
    except RecursionError:
        raise ArgumentsError(f"{prefix}: arguments are nested too deeply") from None
    plain: dict[str, Any] = json.loads(text)
    return text, plain


# The keywords `_plainly_valid` understands; "title", "description",
# "default", "examples" and FORM_KEY only annotate (they never fail a value).
_ANNOTATIONS = frozenset({"title", "description", "default", "examples", FORM_KEY, DECLARED_KEY})
_PLAIN_KEYWORDS = _ANNOTATIONS | {"type", "items"}
_OBJECT_KEYWORDS = _ANNOTATIONS | {"type", "properties", "required", "additionalProperties"}


def _is_type(value: Any, kind: Any) -> bool:
    """JSON Schema's type check, integers strict (as `_schema_validator`)."""
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    return False  # not a type name: jsonschema's to judge


def _plain_value(schema: Any, value: Any) -> bool:
    """True only when `schema` uses no keyword but `_PLAIN_KEYWORDS` and
    `value` (plain JSON) satisfies it; False means "ask jsonschema"."""
    if not isinstance(schema, dict) or not schema.keys() <= _PLAIN_KEYWORDS:
        return False
    if "type" in schema:
        kind = schema["type"]
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(_is_type(value, k) for k in kinds):
            return False
    if "items" in schema and isinstance(value, list):
        return all(_plain_value(schema["items"], item) for item in value)
    return True


def _plainly_valid(input_schema: dict[str, Any], plain: dict[str, Any]) -> bool:
    """Whether the arguments certainly satisfy the input schema, decided
    without jsonschema: the schema an object of named properties with plain
    schemas, none missing, none unknown unless allowed. False whenever the
    schema says more (anyOf, $ref, bounds, formats, ...) or anything fails:
    then jsonschema decides, with its own words for what is wrong."""
    if not input_schema.keys() <= _OBJECT_KEYWORDS or input_schema.get("type", "object") != "object":
        return False
    properties = input_schema.get("properties", {})
    required = input_schema.get("required", [])
    extra = input_schema.get("additionalProperties", True)
    if not isinstance(properties, dict) or not isinstance(required, list) or (extra is not True and extra is not False):
        return False
    if any(not isinstance(name, str) or name not in plain for name in required):
        return False
    for name, value in plain.items():
        if name in properties:
            if not _plain_value(properties[name], value):
                return False
        elif extra is False:
            return False
    return True


def validate_stored_arguments(
    input_schema: dict[str, Any], args: Any, *, function: str, stored: str | None = None
) -> dict[str, Any]:
    """Check JSON call arguments against a version's STORED input schema.

    The stored schema is what `show`, bundles and the MCP server advertise, so
    it is the one contract a call is held to (Draft 2020-12, with integers
    strict: 1.0 is not an integer). Same result and errors as
    `validate_arguments`: the caller's own values come back unchanged, and
    ArgumentsError names each bad field ("missing required argument",
    "unexpected argument", or what the schema wanted).

    ``stored``: the version's stored signature text (whose "input_schema" is
    `input_schema`), the validator's cache key as it is; without it the
    schema is serialized to make the key.
    """
    prefix = f"bad arguments for {function}"
    _, plain = json_arguments(args, prefix)
    if _plainly_valid(input_schema, plain):
        return plain
    if stored is not None:
        validator = _schema_validator(stored, "input_schema")
    else:
        validator = _schema_validator(json.dumps(input_schema, sort_keys=True))
    declared = list(input_schema.get("properties", {}))
    problems: dict[str, list[str]] = {}
    for error in validator.iter_errors(plain):
        path = list(error.absolute_path)
        if not path and error.validator == "required":
            for name in error.validator_value:
                if name not in plain:
                    problems.setdefault(name, []).append("missing required argument")
        elif not path and error.validator == "additionalProperties" and error.validator_value is False:
            for name in plain:
                if name not in declared:
                    problems.setdefault(name, []).append("unexpected argument")
        else:
            field = str(path[0]) if path else "arguments"
            problems.setdefault(field, []).append(_schema_problem(error))
    if problems:
        ordered = [n for n in declared if n in problems] + sorted(set(problems) - set(declared))
        fields = {
            _short(name, 100): _short(" or ".join(list(dict.fromkeys(problems[name]))[:3]))
            for name in ordered[:_MAX_FIELDS]
        }
        detail = "; ".join(f"{name}: {why}" for name, why in fields.items())
        if len(ordered) > _MAX_FIELDS:
            detail += f"; and {len(ordered) - _MAX_FIELDS} more"
        raise ArgumentsError(f"{prefix}: {detail}", fields)
    return plain
