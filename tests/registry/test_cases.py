"""Test-case format and comparators."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from toolcrib.registry.cases import COMPARATORS, MAX_CASES, compare, load_tests, parse_tests
from toolcrib.registry.errors import TestsFormatError
from toolcrib.registry.models import TestCase


def case(expected: Any, comparator: str = "exact", tolerance: float | None = None) -> TestCase:
    return TestCase(args={}, expected=expected, comparator=comparator, tolerance=tolerance)


# -- parsing -------------------------------------------------------------------------


def test_parse_a_full_file():
    text = json.dumps(
        [
            {"args": {"words": ["b", "a"]}, "expected": ["a", "b"]},
            {"name": "snippet", "snippet": "ret = f(['b'])\nans = ret[0]", "expected": "b"},
            {"args": {"x": 0.1}, "expected": 0.3, "comparator": "float", "tolerance": 1e-6},
            {"args": {}, "expected": None, "comparator": "unordered"},
            {"args": {"s": "A"}, "expected": "a", "comparator": "normalized_text"},
        ]
    )
    cases = load_tests(text)
    assert [c.comparator for c in cases] == ["exact", "exact", "float", "unordered", "normalized_text"]
    assert cases[0] == TestCase(args={"words": ["b", "a"]}, expected=["a", "b"])
    assert cases[1].snippet == "ret = f(['b'])\nans = ret[0]" and cases[1].args is None
    assert cases[2].tolerance == 1e-6
    assert cases[3].expected is None
    assert load_tests(json.dumps({"cases": json.loads(text)})) == cases
    assert load_tests("[]") == []


def test_parse_accepts_test_case_objects_and_normalizes_tuples():
    given_cases = [TestCase(args={"a": 1}, expected=None), {"args": {"p": (1, 2)}, "expected": (3, 4)}]
    parsed = parse_tests(given_cases)
    assert parsed[0] == TestCase(args={"a": 1}, expected=None)
    assert parsed[1].args == {"p": [1, 2]} and parsed[1].expected == [3, 4]


@pytest.mark.parametrize(
    ("cases", "message"),
    [
        ([{"args": {}}], "case 1: missing 'expected'"),
        (
            [{"args": {}, "expected": 1}, {"name": "empty", "expected": 1}],
            "case 2 (name 'empty'): needs exactly one of 'args' or 'snippet'",
        ),
        ([{"args": {}, "snippet": "ans = 1", "expected": 1}], "case 1: needs exactly one of 'args' or 'snippet'"),
        ([{"args": {}, "expect": 1}], "case 1: unknown key 'expect' (did you mean 'expected'?)"),
        ([{"args": {}, "expected": 1, "comparater": "float"}], "unknown key 'comparater' (did you mean 'comparator'?)"),
        ([{"args": [1], "expected": 1}], "case 1: 'args' must be an object"),
        ([{"args": {"x": float("nan")}, "expected": 1}], "case 1: 'args' is not plain JSON"),
        ([{"args": {}, "expected": {1, 2}}], "case 1: 'expected' is not plain JSON"),
        ([{"snippet": "", "expected": 1}], "case 1: 'snippet' must be non-empty"),
        ([{"snippet": "ans = (", "expected": 1}], "case 1: 'snippet' line 1:"),
        ([{"snippet": "answer = 1", "expected": 1}], "never assigns 'ans'"),
        ([{"args": {}, "expected": 1, "comparator": "fuzzy"}], "unknown comparator 'fuzzy'"),
        ([{"args": {}, "expected": 1, "tolerance": 0.1}], "'tolerance' only applies to comparator 'float'"),
        ([{"args": {}, "expected": 1, "comparator": "float", "tolerance": -1}], "finite number >= 0"),
        ([{"args": {}, "expected": 1, "comparator": "float", "tolerance": True}], "finite number >= 0"),
        ([{"args": {}, "expected": 1, "name": ""}], "'name' must be a non-empty string"),
        (
            [{"args": {}, "expected": 1, "name": "a"}, {"args": {}, "expected": 2, "name": "a"}],
            "case 2 (name 'a'): the name is already used by case 1",
        ),
        (["not an object"], "case 1: must be a JSON object, not str"),
        ({"cases": [], "extra": 1}, "unexpected keys: extra"),
        ("text", "tests must be a list of cases, not str"),
        (None, "tests must be a list of cases, not NoneType"),
    ],
)
def test_format_errors_name_the_case_and_field(cases: Any, message: str):
    with pytest.raises(TestsFormatError) as info:
        parse_tests(cases)
    assert message in str(info.value)
    assert info.value.exit_code == 2


def test_snippet_assigning_ans_in_any_form_is_accepted():
    for snippet in [
        "ans = 1",
        "ans: int = 1",
        "for ans in [1]:\n    pass",
        "x, ans = 1, 2",
        "with f() as ans:\n    pass",
    ]:
        assert parse_tests([{"snippet": snippet, "expected": 1}])[0].snippet == snippet


def test_too_many_cases():
    with pytest.raises(TestsFormatError, match=f"at most {MAX_CASES}"):
        parse_tests([{"args": {}, "expected": i} for i in range(MAX_CASES + 1)])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[\n  {"args": {}, "expected": 1,}\n]', "line 2 column 30"),
        ('[{"args": {}, "expected": NaN}]', "NaN is not JSON"),
        ('[{"args": {}, "expected": 1, "expected": 2}]', "duplicate key 'expected'"),
        ("", "line 1 column 1"),
    ],
)
def test_load_errors(text: str, message: str):
    with pytest.raises(TestsFormatError, match="not valid JSON") as info:
        load_tests(text)
    assert message in str(info.value)


# -- comparators ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expected", "actual", "passed"),
    [
        (1, 1, True),
        (1, 1.0, True),
        (1.5, 1.5, True),
        (True, True, True),
        (True, 1, False),
        (0, False, False),
        (None, None, True),
        (None, 0, False),
        ("a", "a", True),
        ("a", "A", False),
        ([1, [2, 3]], [1, [2, 3.0]], True),
        ([1, 2], [2, 1], False),
        ([1, 2], [1, 2, 3], False),
        ({"a": 1, "b": [True]}, {"b": [True], "a": 1}, True),
        ({"a": 1}, {"a": 1, "b": 2}, False),
        (0.1 + 0.2, 0.3, False),
        (2**60, float(2**60), True),
        (10**400, 1e300, False),
    ],
)
def test_exact(expected: Any, actual: Any, passed: bool):
    ok, why = compare(case(expected), actual)
    assert ok is passed
    assert (why is None) is passed


def test_exact_why_not_messages():
    assert compare(case([1, 2]), [2, 1]) == (False, "expected [1, 2], got [2, 1] (at [0]: expected 1, got 2)")
    ok, why = compare(case({"a": {"b": [1, "x"]}}), {"a": {"b": [1, "y"]}})
    assert (
        why == 'expected {"a": {"b": [1, "x"]}}, got {"a": {"b": [1, "y"]}} (at ["a"]["b"][1]: expected "x", got "y")'
    )
    ok, why = compare(case({"a": 1}), {"b": 1})
    assert why.endswith('(missing keys "a"; unexpected keys "b")')
    ok, why = compare(case(1), True)
    assert why == "expected 1, got true"
    ok, why = compare(case([1]), [True])
    assert "expected number 1, got boolean true" in why
    ok, why = compare(case("x" * 1000), "y" * 1000)
    assert len(why) <= 300


@pytest.mark.parametrize(
    ("expected", "actual", "tolerance", "passed"),
    [
        (0.3, 0.1 + 0.2, None, True),
        (1.0, 1.0 + 1e-6, None, False),
        (1.0, 1.0 + 1e-6, 1e-5, True),
        (100.0, 101.0, 0.01, True),
        (100.0, 102.0, 0.01, False),
        (0.0, 1e-13, None, True),
        (0.0, 1e-3, None, False),
        (1, 1.0000000001, None, True),
        ([1.0, {"x": 2.0}], [1.0 + 1e-12, {"x": 2.0 - 1e-12}], None, True),
        ([1.0, 2.0], [1.0], None, False),
        ({"x": 1.0}, {"y": 1.0}, None, False),
        (1.0, True, 1.0, False),
        (1.0, "1.0", 1.0, False),
        (5, 5, 0.0, True),
        (5, 5.000001, 0.0, False),
        ("text", "text", None, True),
        (10**400, 10**400, None, True),
        (10**400, 1.0, 0.5, False),
    ],
)
def test_float(expected: Any, actual: Any, tolerance: float | None, passed: bool):
    ok, why = compare(case(expected, "float", tolerance), actual)
    assert ok is passed, why


@pytest.mark.parametrize(
    ("expected", "actual", "passed"),
    [
        ([1, 2, 3], [3, 1, 2], True),
        ([1, 2, 2], [2, 1, 2], True),
        ([1, 2, 2], [2, 1, 1], False),
        ([1, 2], [1, 2, 3], False),
        ([1, True], [True, 1.0], True),
        ([1], [True], False),
        ([[1, 2], [3]], [[3], [1, 2]], True),
        ([[1, 2]], [[2, 1]], False),  # only the top level is unordered
        ([{"a": 1, "b": 2}], [{"b": 2, "a": 1.0}], True),
        ("abc", "abc", True),  # not a list: compared exactly
        ([1], {"0": 1}, False),
    ],
)
def test_unordered(expected: Any, actual: Any, passed: bool):
    ok, why = compare(case(expected, "unordered"), actual)
    assert ok is passed, why


def test_unordered_why_not():
    ok, why = compare(case([1, 2, 2], "unordered"), [2, 1, 3])
    assert why == "expected [1, 2, 2], got [2, 1, 3] (missing [2]; unexpected [3])"
    ok, why = compare(case([1], "unordered"), "1")
    assert "expected an array, got string" in why


@pytest.mark.parametrize(
    ("expected", "actual", "passed"),
    [
        ("Hello World", "  hello\n\tWORLD ", True),
        ("Straße", "STRASSE", True),
        ("ﬁne", "fine", True),  # NFKC folds the ligature
        ("１２", "12", True),  # full-width digits
        ("[1, 2]", [1, 2], True),
        ('{"a": 1}', {"a": 1}, True),
        ("true", True, True),
        ("null", None, True),
        ("12", 12, True),
        ("a b", "ab", False),
        ("(A)", "(B)", False),
    ],
)
def test_normalized_text(expected: Any, actual: Any, passed: bool):
    ok, why = compare(case(expected, "normalized_text"), actual)
    assert ok is passed, why
    if not passed:
        assert "after text normalization" in why


def test_deeply_nested_results_do_not_crash():
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    ok, why = compare(case([]), deep)
    assert ok is False and why


# -- properties ----------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(value=json_values, comparator=st.sampled_from(COMPARATORS))
def test_every_comparator_is_reflexive(value: Any, comparator: str):
    assert compare(case(value, comparator), value) == (True, None)
    # ...also after the JSON round trip a sandbox result takes.
    assert compare(case(value, comparator), json.loads(json.dumps(value)))[0] is True


@settings(max_examples=150, deadline=None)
@given(a=json_values, b=json_values)
def test_exact_is_symmetric(a: Any, b: Any):
    assert compare(case(a), b)[0] == compare(case(b), a)[0]


@settings(max_examples=100, deadline=None)
@given(items=st.lists(json_values, max_size=8), seed=st.integers(0, 2**32))
def test_unordered_accepts_any_permutation(items: list[Any], seed: int):
    shuffled = list(items)
    random.Random(seed).shuffle(shuffled)
    assert compare(case(items, "unordered"), shuffled) == (True, None)
    if items:
        assert compare(case(items, "unordered"), shuffled[1:])[0] is False


@settings(max_examples=100, deadline=None)
@given(
    x=st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    tolerance=st.floats(min_value=1e-9, max_value=0.1),
)
def test_float_within_tolerance_passes(x: float, tolerance: float):
    nudged = x + abs(x) * tolerance * 0.5
    assert compare(case(x, "float", tolerance), nudged)[0] is True
    assert compare(case([x], "float", tolerance), [nudged])[0] is True


@settings(max_examples=200, deadline=None)
@given(
    data=st.one_of(
        json_values,
        st.lists(
            st.dictionaries(
                st.sampled_from(["args", "snippet", "expected", "comparator", "tolerance", "name", "extra"]),
                json_values,
                max_size=4,
            ),
            max_size=3,
        ),
    )
)
def test_parse_tests_either_parses_or_raises_a_format_error(data: Any):
    try:
        cases = parse_tests(data)
    except TestsFormatError as exc:
        assert str(exc)
        return
    assert all(isinstance(c, TestCase) for c in cases)
    # What parsed survives the JSON round trip the store gives it.
    assert load_tests(json.dumps([c.model_dump(mode="json") for c in cases])) == cases


def test_compact_text_ignores_every_space() -> None:
    from toolcrib.registry.cases import compare
    from toolcrib.registry.models import TestCase

    case = TestCase(args={}, expected="] )", comparator="compact_text")
    assert compare(case, "])") == (True, None)
    assert compare(case, " ]\n) ") == (True, None)
    passed, why = compare(case, ")]")
    assert not passed and why
