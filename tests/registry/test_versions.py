"""Content hashing, semantic versions and references (pure functions)."""

from __future__ import annotations

import hashlib
import json

import pytest
from toolcrib.registry.errors import InvalidInput
from toolcrib.registry.models import Signature, TestCase
from toolcrib.registry.versions import (
    SemVer,
    canonical_json,
    content_sha256,
    next_version,
    parse_reference,
    parse_version,
    tool_content,
)


def test_canonical_json_sorted_compact_unicode() -> None:
    assert canonical_json({"b": [1, 2.5, None], "a": "é✓"}) == '{"a":"é✓","b":[1,2.5,null]}'


def test_canonical_json_refuses_nan() -> None:
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_content_hash_matches_independent_computation() -> None:
    sig = Signature(input_schema={"type": "object", "properties": {"a": {"type": "integer"}}})
    tests = [TestCase(args={"a": 1}, expected=2)]
    digest = content_sha256("def f(a):\n    return a + 1\n", "f", sig, tests)
    # Re-implemented from docs/formats.md, not through toolcrib helpers.
    obj = {
        "entrypoint": "f",
        "format": "toolcrib.tool/v1",
        "signature": {
            "description": None,
            "input_schema": {"properties": {"a": {"type": "integer"}}, "type": "object"},
            "output_schema": None,
            "untyped": [],
        },
        "source": "def f(a):\n    return a + 1\n",
        "tests": [
            {"args": {"a": 1}, "comparator": "exact", "expected": 2, "name": None, "snippet": None, "tolerance": None}
        ],
    }
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert digest == hashlib.sha256(text.encode()).hexdigest()
    assert tool_content("def f(a):\n    return a + 1\n", "f", sig, tests) == obj


# Computed with the canonical form as it was before a version could declare a
# policy (toolcrib at commit 9a2bc3c): every stored version keeps its address.
KNOWN_SOURCE = 'def f(a: int) -> int:\n    """Add one."""\n    return a + 1\n'
KNOWN_SIGNATURE = Signature(
    input_schema={"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
    description="Add one.",
)
KNOWN_TESTS = [TestCase(args={"a": 1}, expected=2, name="one")]
KNOWN_SHA256 = "a427f6dd8d69d5b873d87a8aabf97a1d1bb2b2555afeac4d959d61fef1f0e610"


def test_known_hash_is_unchanged_by_the_default_policy() -> None:
    assert content_sha256(KNOWN_SOURCE, "f", KNOWN_SIGNATURE, KNOWN_TESTS) == KNOWN_SHA256
    assert content_sha256(KNOWN_SOURCE, "f", KNOWN_SIGNATURE, KNOWN_TESTS, "restricted") == KNOWN_SHA256
    assert "policy" not in tool_content(KNOWN_SOURCE, "f", KNOWN_SIGNATURE, KNOWN_TESTS, "restricted")


def test_a_declared_plain_policy_is_hashed() -> None:
    plain = content_sha256(KNOWN_SOURCE, "f", KNOWN_SIGNATURE, KNOWN_TESTS, "plain")
    assert plain != KNOWN_SHA256
    # As docs/formats.md specifies: one more key, "policy", in the same object.
    obj = tool_content(KNOWN_SOURCE, "f", KNOWN_SIGNATURE, KNOWN_TESTS)
    obj["policy"] = "plain"
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert plain == hashlib.sha256(text.encode()).hexdigest()
    assert tool_content(KNOWN_SOURCE, "f", KNOWN_SIGNATURE, KNOWN_TESTS, "plain") == obj


def test_content_hash_changes_with_any_part() -> None:
    sig = Signature(input_schema={"type": "object"})
    base = content_sha256("x = 1\n", "f", sig, [])
    assert content_sha256("x = 2\n", "f", sig, []) != base
    assert content_sha256("x = 1\n", "g", sig, []) != base
    assert content_sha256("x = 1\n", "f", sig, [TestCase(args={}, expected=1)]) != base
    assert content_sha256("x = 1\n", "f", Signature(input_schema={"type": "object"}, description="d"), []) != base


@pytest.mark.parametrize("text", ["1.0.0", "0.0.1", "10.20.30", "1.0.0-rc.1", "1.0.0-alpha-2.x"])
def test_parse_version_round_trips(text: str) -> None:
    assert str(parse_version(text)) == text


@pytest.mark.parametrize("text", ["1.0", "01.0.0", "1.0.0+build", "v1.0.0", "1.0.0-", "1.0.0-01", "", "1.0.0 "])
def test_parse_version_refuses(text: str) -> None:
    with pytest.raises(InvalidInput, match="invalid version"):
        parse_version(text)


def test_semver_precedence() -> None:
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.2.0",
        "1.10.0",
        "2.0.0",
    ]
    parsed = [parse_version(v) for v in ordered]
    assert sorted(reversed(parsed), key=SemVer.key) == parsed
    assert parse_version("1.10.0") > parse_version("1.9.9")


@pytest.mark.parametrize(
    ("current", "kind", "expected"),
    [
        ("1.2.3", "patch", "1.2.4"),
        ("1.2.3", "minor", "1.3.0"),
        ("1.2.3", "major", "2.0.0"),
        ("1.2.3-rc.1", "patch", "1.2.3"),
        ("1.2.0-rc.1", "minor", "1.2.0"),
        ("1.2.3-rc.1", "minor", "1.3.0"),
        ("2.0.0-rc.1", "major", "2.0.0"),
        ("2.1.0-rc.1", "major", "3.0.0"),
    ],
)
def test_next_version(current: str, kind: str, expected: str) -> None:
    nxt = next_version(parse_version(current), kind)  # type: ignore[arg-type]
    assert str(nxt) == expected
    assert nxt > parse_version(current)


def test_parse_reference_forms() -> None:
    assert parse_reference("tool_a-1").pinned is False
    ref = parse_reference("tool@1.2.0")
    assert (ref.name, ref.version, ref.sha_prefix) == ("tool", "1.2.0", None)
    ref = parse_reference("tool@sha256:ABCDEF0")
    assert (ref.name, ref.version, ref.sha_prefix) == ("tool", None, "abcdef0")
    assert str(ref) == "tool@sha256:abcdef0"


@pytest.mark.parametrize(
    "ref",
    [
        "",
        "a b",
        "tool@",
        "tool@1.2",
        "tool@sha256:abc",
        "tool@sha256:xyz1234",
        "x" * 65,
        "tool@latest",
        "tool@sha256:" + "a" * 65,
        "@1.0.0",
    ],
)
def test_parse_reference_refuses(ref: str) -> None:
    with pytest.raises(InvalidInput, match="reference"):
        parse_reference(ref)


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_ident = st.one_of(st.integers(0, 999).map(str), st.from_regex(r"[0-9]*[a-zA-Z-][0-9a-zA-Z-]{0,5}", fullmatch=True))
_semver = st.builds(
    SemVer, st.integers(0, 99), st.integers(0, 99), st.integers(0, 99), st.lists(_ident, max_size=3).map(tuple)
)


@given(_semver)
def test_semver_text_round_trips(v: SemVer) -> None:
    assert parse_version(str(v)) == v


@given(_semver, st.sampled_from(["major", "minor", "patch"]))
def test_next_version_always_goes_up(v: SemVer, kind: str) -> None:
    nxt = next_version(v, kind)  # type: ignore[arg-type]
    assert nxt > v and not nxt.prerelease


@given(_semver, _semver)
def test_precedence_is_a_total_order(a: SemVer, b: SemVer) -> None:
    assert (a < b) + (a > b) + (a.key() == b.key()) == 1
    assert (a.key() == b.key()) == (str(a) == str(b))


@given(st.text(max_size=40))
def test_parse_reference_accepts_or_refuses_cleanly(text: str) -> None:
    try:
        ref = parse_reference(text)
    except InvalidInput:
        return
    if ref.sha_prefix:
        assert text.startswith(ref.name + "@sha256:") and text.lower().endswith(ref.sha_prefix)
    else:
        assert str(ref) == text


@pytest.mark.parametrize("text", ["tool\n", "tool@1.0.0\n", "tool@sha256:abcdef0\n"])
def test_references_with_a_trailing_newline_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_reference(text)


def test_versions_with_a_trailing_newline_are_refused() -> None:
    with pytest.raises(InvalidInput):
        parse_version("1.0.0\n")


def test_a_field_added_to_a_model_later_does_not_change_any_hash() -> None:
    from toolcrib.registry.models import Signature, TestCase
    from toolcrib.registry.versions import content_sha256

    class LaterTestCase(TestCase):
        timeout_hint: float | None = 3.0  # a field some later release might add

    class LaterSignature(Signature):
        examples: list[str] = ["x"]

    signature = Signature(input_schema={"type": "object", "properties": {}}, description="d")
    case = TestCase(args={}, expected=1)
    later_signature = LaterSignature(**signature.model_dump())
    later_case = LaterTestCase(**case.model_dump())
    assert content_sha256("def f():\n    return 1\n", "f", signature, [case]) == content_sha256(
        "def f():\n    return 1\n", "f", later_signature, [later_case]
    )


def test_the_hashed_fields_are_fields_of_the_models() -> None:
    from toolcrib.registry.models import Signature, TestCase
    from toolcrib.registry.versions import SIGNATURE_FIELDS_V1, TEST_FIELDS_V1

    assert set(SIGNATURE_FIELDS_V1) <= set(Signature.model_fields)
    assert set(TEST_FIELDS_V1) <= set(TestCase.model_fields)
