"""The call's argument check without jsonschema (issue 21: a one-shot
`toolcrib call` should not import it for a plain schema): what
`_plainly_valid` passes, jsonschema (with integers strict, as the stored
contract reads them) passes too, and every value jsonschema passes under a
plain schema is passed without it. Anything it does not pass goes to
jsonschema, whose verdict and words are the answer."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from toolcrib.registry.errors import ArgumentsError
from toolcrib.registry.schema_check import _plainly_valid, _schema_validator, validate_stored_arguments

TYPES = ["integer", "number", "string", "boolean", "null", "array", "object"]

_type = st.one_of(st.sampled_from(TYPES), st.lists(st.sampled_from(TYPES), min_size=1, max_size=3, unique=True))
_plain_schemas = st.recursive(
    st.fixed_dictionaries({}, optional={"type": _type, "title": st.text(max_size=3), "default": st.integers()}),
    lambda inner: st.fixed_dictionaries({"type": st.just("array"), "items": inner}),
    max_leaves=4,
)
# A few keywords outside the plain subset: those go to jsonschema.
_other_schemas = st.one_of(
    st.just({"type": "integer", "minimum": 0}),
    st.just({"anyOf": [{"type": "integer"}, {"type": "null"}]}),
    st.just({"enum": [1, "a"]}),
    st.just({"type": "string", "format": "date"}),
)
_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text()),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=2), inner, max_size=2)),
    max_leaves=6,
)
_names = st.sampled_from(["a", "b", "c"])


@st.composite
def _object_schemas(draw: st.DrawFn) -> dict[str, Any]:
    props = draw(st.dictionaries(_names, st.one_of(_plain_schemas, _other_schemas), max_size=3))
    schema: dict[str, Any] = {"type": "object", "properties": props, "title": "f"}
    schema["required"] = draw(st.lists(st.sampled_from(["a", "b", "c"]), unique=True, max_size=3))
    extra = draw(st.sampled_from([None, False, True, {"type": "integer"}]))
    if extra is not None:
        schema["additionalProperties"] = extra
    return schema


def _jsonschema_valid(schema: dict[str, Any], args: dict[str, Any]) -> bool:
    return not list(_schema_validator(json.dumps(schema, sort_keys=True)).iter_errors(args))


def _plain(schema: Any) -> bool:
    if not isinstance(schema, dict) or not schema.keys() <= {"type", "title", "default", "items"}:
        return False
    return "items" not in schema or _plain(schema["items"])


@settings(max_examples=400, deadline=None)
@given(_object_schemas(), st.dictionaries(_names | st.just("d"), _values, max_size=4))
def test_the_plain_check_agrees_with_jsonschema(schema: dict[str, Any], args: dict[str, Any]) -> None:
    args = json.loads(json.dumps(args))  # what a call's arguments are: plain JSON
    expected = _jsonschema_valid(schema, args)
    plainly = _plainly_valid(schema, args)
    if plainly:  # never passes what jsonschema refuses
        assert expected, (schema, args)
    everything_plain = all(_plain(p) for p in schema["properties"].values()) and schema.get(
        "additionalProperties", True
    ) in (True, False)
    if expected and everything_plain:  # and needs jsonschema for no valid call of a plain schema
        assert plainly, (schema, args)
    # Either way the answer is the one jsonschema gives.
    try:
        validate_stored_arguments(schema, args, function="f")
    except ArgumentsError:
        assert not expected
    else:
        assert expected


def test_integers_stay_strict_and_booleans_are_not_numbers() -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}, "x": {"type": "number"}},
        "required": ["n"],
        "additionalProperties": False,
    }
    assert _plainly_valid(schema, {"n": 1, "x": 1.5})
    for bad in ({"n": 1.0}, {"n": True}, {"n": 1, "x": False}, {"n": 1, "y": 2}, {}):
        assert not _plainly_valid(schema, bad), bad
        assert not _jsonschema_valid(schema, bad), bad


def test_a_refusal_still_names_each_field_in_jsonschema_words() -> None:
    schema = {
        "type": "object",
        "properties": {"words": {"type": "array", "items": {"type": "string"}}},
        "required": ["words"],
        "additionalProperties": False,
    }
    try:
        validate_stored_arguments(schema, {"words": ["a", 2], "extra": 1}, function="f")
    except ArgumentsError as err:
        assert err.message == "bad arguments for f: words: [1]: 2 is not of type 'string'; extra: unexpected argument"
    else:
        raise AssertionError("refused arguments passed")
