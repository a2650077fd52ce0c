"""Signatures as JSON Schema, argument validation and semver bumps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from toolcrib.registry.errors import AdmissionError, ArgumentsError
from toolcrib.registry.models import Signature
from toolcrib.registry.signature import bump_kind, derive_signature, validate_arguments


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def prop(annotation: str, header: str = "") -> dict[str, Any]:
    """The schema of one parameter annotated with `annotation`."""
    source = f"{header}\ndef f(x: {annotation}):\n    return x\n"
    return derive_signature(source, "f").input_schema["properties"]["x"]


def without_title(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k != "title"}


WORD_SORT = src(
    '''
    from typing import Optional


    def word_sort(words: list[str], reverse: bool = False, limit: Optional[int] = None) -> list[str]:
        """Sort words alphabetically.

        Longer explanation that is not the summary.

        Args:
            words: the words to sort,
                one string each.
            reverse (bool): newest first.
            limit: keep at most this many.

        Returns:
            The sorted words.
        """
        out = sorted(words, reverse=reverse)
        return out[:limit] if limit is not None else out
    '''
)


def test_input_schema_of_a_documented_function():
    sig = derive_signature(WORD_SORT, "word_sort")
    schema = sig.input_schema
    assert schema["type"] == "object"
    assert schema["title"] == "word_sort"
    assert schema["description"] == "Sort words alphabetically."
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["words"]
    assert list(schema["properties"]) == ["words", "reverse", "limit"]  # declaration order (issue 17)
    words = schema["properties"]["words"]
    assert words["type"] == "array" and words["items"] == {"type": "string"}
    assert words["description"] == "the words to sort, one string each."
    assert schema["properties"]["reverse"] == {
        "default": False,
        "description": "newest first.",
        "title": "Reverse",
        "type": "boolean",
    }
    limit = schema["properties"]["limit"]
    assert limit["anyOf"] == [{"type": "integer"}, {"type": "null"}] and limit["default"] is None
    assert sig.output_schema == {"description": "The sorted words.", "items": {"type": "string"}, "type": "array"}
    assert sig.untyped == []
    assert sig.description.startswith("Sort words alphabetically.\n\nLonger explanation")


@pytest.mark.parametrize(
    ("annotation", "header", "expected"),
    [
        ("int", "", {"type": "integer"}),
        ("float", "", {"type": "number"}),
        ("str", "", {"type": "string"}),
        ("bool", "", {"type": "boolean"}),
        ("None", "", {"type": "null"}),
        ("list", "", {"type": "array", "items": {}}),
        ("list[int]", "", {"type": "array", "items": {"type": "integer"}}),
        ("List[int]", "from typing import List", {"type": "array", "items": {"type": "integer"}}),
        ("typing.List[str]", "import typing", {"type": "array", "items": {"type": "string"}}),
        ("t.Sequence[str]", "import typing as t", {"type": "array", "items": {"type": "string"}}),
        ("Iterable[float]", "from collections.abc import Iterable", {"type": "array", "items": {"type": "number"}}),
        ("collections.abc.Sequence[int]", "import collections.abc", {"type": "array", "items": {"type": "integer"}}),
        ("set[int]", "", {"type": "array", "items": {"type": "integer"}, "uniqueItems": True}),
        (
            "FrozenSet[str]",
            "from typing import FrozenSet",
            {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        ),
        ("dict[str, int]", "", {"type": "object", "additionalProperties": {"type": "integer"}}),
        (
            "Mapping[str, list[str]]",
            "from typing import Mapping",
            {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
        ),
        ("dict", "", {"type": "object", "additionalProperties": True}),
        (
            "tuple[int, str]",
            "",
            {"type": "array", "maxItems": 2, "minItems": 2, "prefixItems": [{"type": "integer"}, {"type": "string"}]},
        ),
        ("Tuple[int, ...]", "from typing import Tuple", {"type": "array", "items": {"type": "integer"}}),
        ("Optional[str]", "from typing import Optional", {"anyOf": [{"type": "string"}, {"type": "null"}]}),
        ("int | str", "", {"anyOf": [{"type": "integer"}, {"type": "string"}]}),
        (
            "Union[int, list[int]]",
            "from typing import Union",
            {"anyOf": [{"type": "integer"}, {"type": "array", "items": {"type": "integer"}}]},
        ),
        ("Literal['a', 'b']", "from typing import Literal", {"enum": ["a", "b"], "type": "string"}),
        ("Literal[1, -2]", "from typing_extensions import Literal", {"enum": [1, -2], "type": "integer"}),
        ("Any", "from typing import Any", {}),
        ("object", "", {}),
        ("'list[int]'", "", {"type": "array", "items": {"type": "integer"}}),
        ("Annotated[int, 'meta']", "from typing import Annotated", {"type": "integer"}),
    ],
)
def test_annotation_mapping(annotation: str, header: str, expected: dict[str, Any]):
    assert without_title(prop(annotation, header)) == expected


@pytest.mark.parametrize(
    ("annotation", "header"),
    [
        ("Point", "class Point:\n    pass"),
        ("Callable[[int], int]", "from typing import Callable"),
        ("bytes", ""),
        ("np.dtype", "import numpy as np"),  # np.ndarray has a form: test_dataframe_args.py
        ("T", "from typing import TypeVar\nT = TypeVar('T')"),
        ("'not valid ::'", ""),
    ],
)
def test_unknown_annotations_accept_anything_and_say_so(annotation: str, header: str):
    schema = prop(annotation, header)
    assert "type" not in schema and "anyOf" not in schema
    assert "is not checked; any JSON value is accepted" in schema["description"]


def test_type_aliases_are_read_through():
    header = "from typing import Dict, List, Tuple\nInterval = Tuple[str, str]\nSchedule = List[Interval]\nLoop = Loop\nN = 3\nByKey = Dict[int, str]"
    assert without_title(prop("Schedule", header)) == {
        "type": "array",
        "items": {
            "type": "array",
            "maxItems": 2,
            "minItems": 2,
            "prefixItems": [{"type": "string"}, {"type": "string"}],
        },
    }
    assert without_title(prop("'Interval'", header))["prefixItems"] == [{"type": "string"}, {"type": "string"}]
    assert "'Loop' is not checked" in prop("Loop", header)["description"]
    assert "'N' is not checked" in prop("N", header)["description"]
    by_key = prop("ByKey", header)
    assert by_key["type"] == "object" and by_key["description"] == "object keys arrive as JSON strings"


def test_sets_are_arrays_of_unique_items():
    source = "def f(tags: set[str], groups: frozenset[list[int]] = frozenset()):\n    return 1\n"
    assert validate_arguments(source, "f", {"tags": ["a", "b"], "groups": [[1], [2, 3]]})["groups"] == [[1], [2, 3]]
    with pytest.raises(ArgumentsError) as info:
        validate_arguments(source, "f", {"tags": ["a", "a"], "groups": [[1], [1]]})
    assert set(info.value.fields) == {"tags", "groups"}
    assert 'items should be unique ("a" repeats)' in info.value.fields["tags"]


@pytest.mark.parametrize(
    "annotation",
    [
        "Union[()]",
        "Literal[()]",
        "Annotated[()]",
        "list[()]",
        "Optional[int, str]",
        "dict[str]",
        "int[str]",
        "Literal[1.5]",
    ],
)
def test_malformed_generics_are_unknown_not_errors(annotation: str):
    schema = prop(annotation, "from typing import Annotated, Literal, Optional, Union")
    assert "is not checked" in schema["description"]


def test_unknown_annotation_nested_in_a_known_one():
    schema = prop("list[Point]", "class Point:\n    pass")
    assert schema["type"] == "array" and schema["items"] == {}
    assert "'Point' is not checked" in schema["description"]


def test_annotations_and_defaults_are_never_evaluated(tmp_path: Path):
    marker = tmp_path / "ran"
    call = f"open({str(marker)!r}, 'w')"
    source = f"def f(x: {call!r} = {call}) -> {call}:\n    return x\n"
    schema = derive_signature(source, "f").input_schema
    assert schema.get("required", []) == []
    assert "default" not in schema["properties"]["x"]
    assert "is not checked" in schema["properties"]["x"]["description"]
    assert not marker.exists()


def test_defaults():
    source = src(
        """
        import os

        def f(a: int, b: tuple[int, int] = (1, 2), c: str = os.sep, d: set[int] = {1}, e: int = None, *, k: bool = True):
            return a
        """
    )
    schema = derive_signature(source, "f").input_schema
    props = schema["properties"]
    assert schema["required"] == ["a"]
    assert props["b"]["default"] == [1, 2]
    assert "default" not in props["c"]  # not a literal: optional, real default lives in the tool
    assert "default" not in props["d"]  # a set has no JSON form
    assert props["e"]["anyOf"] == [{"type": "integer"}, {"type": "null"}] and props["e"]["default"] is None
    assert props["k"]["default"] is True
    assert validate_arguments(source, "f", {"a": 1, "e": None}) == {"a": 1, "e": None}


def test_untyped_parameters_are_listed_and_accept_anything():
    source = "def f(a, b: int, c=2):\n    return a\n"
    sig = derive_signature(source, "f")
    assert sig.untyped == ["a", "c"]
    assert without_title(sig.input_schema["properties"]["a"]) == {}
    assert sig.output_schema is None
    assert validate_arguments(source, "f", {"a": {"any": ["thing"]}, "b": 1, "c": "x"})["a"] == {"any": ["thing"]}


def test_return_annotation_none_and_unknown():
    assert derive_signature("def f() -> None:\n    pass\n", "f").output_schema == {"type": "null"}
    out = derive_signature("class K:\n    pass\n\ndef f() -> K:\n    return K()\n", "f").output_schema
    assert "not checked" in out["description"]


@pytest.mark.parametrize(
    ("docstring", "expected"),
    [
        (
            "Summary.\n\n    Parameters\n    ----------\n    a : int\n        first one\n        continued\n    b, c : str\n        the others\n\n    Returns\n    -------\n    int\n        a number\n    ",
            {"a": "first one continued", "b": "the others", "c": "the others"},
        ),
        (
            "Summary.\n\n    :param a: first one\n        continued\n    :param str b: second\n    :type b: str\n    :returns: a number\n    ",
            {"a": "first one continued", "b": "second"},
        ),
        (
            "Summary.\n\n    Arguments:\n        a (int, optional): first\n        b: second:\n            with a colon\n        c: third\n    ",
            {"a": "first", "b": "second: with a colon", "c": "third"},
        ),
    ],
)
def test_docstring_styles(docstring: str, expected: dict[str, str]):
    source = f'def f(a: int, b: str = "", c: str = "") -> int:\n    """{docstring}"""\n    return a\n'
    sig = derive_signature(source, "f")
    found = {k: v.get("description") for k, v in sig.input_schema["properties"].items() if v.get("description")}
    assert found == expected
    assert sig.input_schema["description"] == "Summary."
    if ":returns:" in docstring or "Returns" in docstring:
        assert sig.output_schema["description"] == "a number"


def test_no_docstring_means_no_description():
    sig = derive_signature("def f(x: int) -> int:\n    return x\n", "f")
    assert "description" not in sig.input_schema
    assert sig.description is None


def test_parameter_names_that_clash_with_pydantic_are_kept():
    source = "def f(model_config: int, json: str, _private: bool, schema=None):\n    return 1\n"
    schema = derive_signature(source, "f").input_schema
    assert list(schema["properties"]) == ["model_config", "json", "_private", "schema"]
    args = {"model_config": 1, "json": "x", "_private": True}
    assert validate_arguments(source, "f", args) == args
    with pytest.raises(ArgumentsError) as info:
        validate_arguments(source, "f", {"model_config": "1", "json": "x", "_private": True})
    assert set(info.value.fields) == {"model_config"}


def test_kwargs_become_additional_properties():
    source = "def f(a: int, **options: float):\n    return a\n"
    schema = derive_signature(source, "f").input_schema
    assert schema["additionalProperties"] == {"type": "number"}
    assert validate_arguments(source, "f", {"a": 1, "speed": 2, "size": 1.5}) == {"a": 1, "speed": 2, "size": 1.5}
    with pytest.raises(ArgumentsError) as info:
        validate_arguments(source, "f", {"a": 1, "speed": "fast"})
    assert list(info.value.fields) == ["speed"]
    untyped = derive_signature("def g(**kw):\n    return kw\n", "g").input_schema
    assert untyped["additionalProperties"] is True


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def f(*items):\n    return items\n", r"\*items cannot be given as named JSON arguments"),
        ("def f(a, /):\n    return a\n", "positional-only"),
        ("async def f():\n    return 1\n", "async function"),
        ("class f:\n    pass\n", "a class"),
        ("def g():\n    return 1\n", "no top-level function named 'f'"),
        ("def f(:\n", "syntax error"),
    ],
)
def test_entrypoints_that_cannot_take_json_arguments(source: str, message: str):
    with pytest.raises(AdmissionError, match=message):
        derive_signature(source, "f")


# -- validation ----------------------------------------------------------------------


def test_valid_arguments_come_back_as_sent():
    args = {"words": ["b", "a"], "limit": 1}
    out = validate_arguments(WORD_SORT, "word_sort", args)
    assert out == args
    assert out is not args  # a copy: the caller's object is never handed on
    assert "reverse" not in out  # defaults stay the tool's business


def test_bad_arguments_name_each_field():
    with pytest.raises(ArgumentsError) as info:
        validate_arguments(WORD_SORT, "word_sort", {"words": "b a", "reverse": 1, "extra": True})
    err = info.value
    assert set(err.fields) == {"words", "reverse", "extra"}
    assert err.fields["extra"] == "unexpected argument"
    assert str(err) == (
        "bad arguments for word_sort: words: Input should be a valid array; "
        "reverse: Input should be a valid boolean; extra: unexpected argument"
    )
    assert err.exit_code == 2


def test_missing_required_argument():
    with pytest.raises(ArgumentsError) as info:
        validate_arguments(WORD_SORT, "word_sort", {})
    assert info.value.fields == {"words": "missing required argument"}


def test_strictness():
    source = "def f(n: int, x: float, s: str, flag: bool) -> float:\n    return x\n"
    ok = {"n": 1, "x": 2, "s": "1", "flag": False}
    assert validate_arguments(source, "f", ok) == ok
    assert isinstance(validate_arguments(source, "f", ok)["x"], int)  # nothing converted
    for field, bad in [("n", "1"), ("n", 1.5), ("n", True), ("x", "2.0"), ("s", 1), ("flag", 0)]:
        with pytest.raises(ArgumentsError) as info:
            validate_arguments(source, "f", {**ok, field: bad})
        assert list(info.value.fields) == [field], (field, bad)


def test_nested_errors_show_the_path():
    source = "def f(pairs: list[tuple[str, int]], table: dict[str, list[int]]):\n    return 1\n"
    with pytest.raises(ArgumentsError) as info:
        validate_arguments(source, "f", {"pairs": [["a", 1], ["b", "2"]], "table": {"k": [1, "x"]}})
    assert info.value.fields == {
        "pairs": "[1][1]: Input should be a valid integer",
        "table": '["k"][1]: Input should be a valid integer',
    }
    with pytest.raises(ArgumentsError, match="pairs: "):
        validate_arguments(source, "f", {"pairs": [["a", 1, 2]], "table": {}})


def test_union_and_literal_errors():
    source = "from typing import Literal\n\ndef f(v: int | str, mode: Literal['fast', 'slow']):\n    return v\n"
    with pytest.raises(ArgumentsError) as info:
        validate_arguments(source, "f", {"v": [1], "mode": "medium"})
    assert "valid integer" in info.value.fields["v"] and "valid string" in info.value.fields["v"]
    assert "'fast' or 'slow'" in info.value.fields["mode"]


@pytest.mark.parametrize(
    "args",
    [[1, 2], "words", 3, {"words": [float("nan")]}, {"words": {1, 2}}, {1: "x"}],
)
def test_arguments_must_be_a_json_object(args: Any):
    with pytest.raises(ArgumentsError, match="bad arguments for word_sort: argument"):
        validate_arguments(WORD_SORT, "word_sort", args)


def test_none_means_no_arguments():
    assert validate_arguments("def f(x: int = 1):\n    return x\n", "f", None) == {}


def test_tuples_from_python_callers_become_lists():
    out = validate_arguments(WORD_SORT, "word_sort", {"words": ("a", "b")})
    assert out == {"words": ["a", "b"]}


# -- determinism -------------------------------------------------------------------

_types = st.sampled_from(
    [
        "int",
        "str",
        "float",
        "bool",
        "list[int]",
        "dict[str, float]",
        "tuple[int, str]",
        "set[str]",
        "Optional[int]",
        "Literal['x', 'y']",
        "int | None",
        "Any",
        "Foo",
        None,
    ]
)
_defaults = st.one_of(st.none(), st.sampled_from(["1", "'s'", "None", "[1, 2]", "(1,)", "{'k': 2}", "len"]))


@st.composite
def functions(draw: st.DrawFn) -> str:
    count = draw(st.integers(0, 5))
    params, seen_default = [], False
    for i in range(count):
        annotation = draw(_types)
        default = draw(_defaults)
        if seen_default and default is None:
            default = "0"
        seen_default = seen_default or default is not None
        text = f"p{i}" + (f": {annotation}" if annotation else "") + (f" = {default}" if default else "")
        params.append(text)
    ret = draw(_types)
    header = "from typing import Any, Literal, Optional\n\nclass Foo:\n    pass\n\n"
    doc = draw(st.sampled_from(["", '    """Does things.\n\n    Args:\n        p0: zero\n    """\n']))
    return header + f"def tool({', '.join(params)})" + (f" -> {ret}" if ret else "") + ":\n" + doc + "    return 1\n"


@settings(max_examples=80, deadline=None)
@given(functions())
def test_derive_signature_is_deterministic(source: str):
    from toolcrib.registry import signature as module

    first = json.dumps(derive_signature(source, "tool").model_dump(mode="json"))
    module._cache.clear()
    second = json.dumps(derive_signature(source, "tool").model_dump(mode="json"))
    assert first == second
    sig = derive_signature(source, "tool")
    assert bump_kind(sig, sig) == "patch"


def test_schema_is_identical_across_processes_and_hash_seeds():
    script = (
        "import json, sys\n"
        "from toolcrib.registry.signature import derive_signature\n"
        "sig = derive_signature(sys.stdin.read(), 'word_sort')\n"
        "print(json.dumps(sig.model_dump(mode='json')))\n"
    )
    outputs = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", script], input=WORD_SORT, capture_output=True, text=True, env=env, check=True
        )
        outputs.add(done.stdout)
    assert len(outputs) == 1
    assert json.loads(outputs.pop()) == derive_signature(WORD_SORT, "word_sort").model_dump(mode="json")


def test_returned_signatures_are_independent_copies():
    first = derive_signature(WORD_SORT, "word_sort")
    first.input_schema["properties"].clear()
    assert derive_signature(WORD_SORT, "word_sort").input_schema["properties"]


# -- bumps ---------------------------------------------------------------------------


def sig_of(source: str, name: str = "f") -> Signature:
    return derive_signature(source, name)


BASE = "def f(a: int, b: str = 'x') -> int:\n    '''Doc.'''\n    return a\n"


@pytest.mark.parametrize(
    ("new", "kind"),
    [
        (BASE, "patch"),
        (
            "def f(a: int, b: str = 'x') -> int:\n    '''Other docs.\n\n    Args:\n        a: the a\n    '''\n    return a + 1\n",
            "patch",
        ),
        ("def g(a: int, b: str = 'x') -> int:\n    return a\n", "patch"),
        ("def f(a: int, b: str = 'x', c: bool = False) -> int:\n    return a\n", "minor"),
        ("def f(a: int, b: str = 'x', *, c: float = 1.0, d=None) -> int:\n    return a\n", "minor"),
        ("def f(a: int, b: str = 'x', c: bool = None) -> int:\n    return a\n", "minor"),
        ("def f(a: int, b: str = 'x', c: bool) -> int:\n    return a\n".replace("c: bool)", "*, c: bool)"), "major"),
        ("def f(a: int) -> int:\n    return a\n", "major"),
        ("def f(a: float, b: str = 'x') -> int:\n    return a\n", "major"),
        ("def f(a: int, b: str) -> int:\n    return a\n", "major"),
        ("def f(a: int, b: str = 'y') -> int:\n    return a\n", "major"),
        ("def f(a: int = 0, b: str = 'x') -> int:\n    return a\n", "major"),
        ("def f(a: int, b: str = 'x') -> str:\n    return a\n", "major"),
        ("def f(a: int, b: str = 'x'):\n    return a\n", "major"),
        ("def f(a: int, b: str = 'x', **kw) -> int:\n    return a\n", "major"),
    ],
)
def test_bump_kind(new: str, kind: str):
    name = "g" if new.startswith("def g") else "f"
    assert bump_kind(sig_of(BASE), sig_of(new, name)) == kind


def test_bump_ignores_prose_but_not_parameters_called_title():
    old = sig_of("def f(title: str, description: str = '') -> str:\n    return title\n")
    renamed = sig_of("def f(name: str, description: str = '') -> str:\n    return name\n")
    assert bump_kind(old, renamed) == "major"
    same = sig_of("def f(title: str, description: str = '') -> str:\n    '''Now documented.'''\n    return title\n")
    assert bump_kind(old, same) == "patch"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(args=st.dictionaries(st.sampled_from(["words", "reverse", "limit", "other"]), _json, max_size=4))
def test_validate_arguments_returns_the_args_or_names_the_bad_fields(args: dict[str, Any]):
    try:
        out = validate_arguments(WORD_SORT, "word_sort", args)
    except ArgumentsError as exc:
        assert exc.fields and set(exc.fields) <= set(args) | {"words"}
        assert all(f"{name}: " in str(exc) for name in exc.fields)
        return
    assert out == args
    assert isinstance(args["words"], list) and all(isinstance(w, str) for w in args["words"])
