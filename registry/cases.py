"""Test cases: their JSON format, and comparing a result with a case.

The format is documented for users in docs/tests-format.md. Cases are
numbered from 1 in messages ("case 3" is the third case). The comparators
themselves are a table in registry/comparators.py; `compare` looks the
case's up there and words the mismatch.
"""

from __future__ import annotations

import ast
import difflib
import json
import math
from typing import Any

from .comparators import COMPARATORS, TABLE, Detail, show
from .errors import TestsFormatError
from .models import TestCase

__all__ = ["COMPARATORS", "MAX_CASES", "MAX_SNIPPET_BYTES", "compare", "load_tests", "parse_tests"]

MAX_CASES = 1000
MAX_SNIPPET_BYTES = 64 * 1024

_KEYS = ("name", "args", "snippet", "expected", "comparator", "tolerance")
_WHY_LIMIT = 300


# -- parsing -------------------------------------------------------------------


def _plain_json(value: Any) -> Any:
    """`value` as plain JSON data (tuples become lists); ValueError if it is
    not JSON or is nested deeper than _MAX_DEPTH levels."""
    plain = json.loads(json.dumps(value, allow_nan=False, ensure_ascii=False))
    _check_depth(plain, 0)
    return plain


# Far deeper than any result can be (the sandbox caps them at 64 levels), and
# well inside what pydantic serializes when the version is hashed and stored.
_MAX_DEPTH = 100


def _check_depth(value: Any, depth: int) -> None:
    if isinstance(value, (list, dict)):
        if depth >= _MAX_DEPTH:
            raise ValueError(f"nested deeper than {_MAX_DEPTH} levels")
        for item in value.values() if isinstance(value, dict) else value:
            _check_depth(item, depth + 1)


def _assigns_ans(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "ans" and isinstance(node.ctx, ast.Store):
            return True
    return False


def _parse_case(index: int, raw: Any, seen_names: dict[str, int]) -> TestCase:
    label = f"case {index}"
    if isinstance(raw, TestCase):
        raw = raw.model_dump(exclude_defaults=True)
        if "expected" not in raw:
            raw["expected"] = None
    if not isinstance(raw, dict):
        raise TestsFormatError(f"{label}: must be a JSON object, not {type(raw).__name__}")
    name = raw.get("name")
    if name is not None:
        if not isinstance(name, str) or not name.strip():
            raise TestsFormatError(f"{label}: 'name' must be a non-empty string")
        label = f"case {index} (name {name!r})"
    for key in raw:
        if key not in _KEYS:
            close = difflib.get_close_matches(str(key), _KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TestsFormatError(f"{label}: unknown key {key!r}{hint}; allowed keys: {', '.join(_KEYS)}")
    if name is not None:
        if name in seen_names:
            raise TestsFormatError(f"{label}: the name is already used by case {seen_names[name]}")
        seen_names[name] = index
    has_args, has_snippet = raw.get("args") is not None, raw.get("snippet") is not None
    if has_args == has_snippet:
        raise TestsFormatError(f"{label}: needs exactly one of 'args' or 'snippet'")
    if "expected" not in raw:
        raise TestsFormatError(f"{label}: missing 'expected' (use null to expect None)")
    args = raw.get("args")
    if has_args:
        if not isinstance(args, dict):
            raise TestsFormatError(f"{label}: 'args' must be an object of named arguments")
        try:
            args = _plain_json(args)
        except (TypeError, ValueError, RecursionError) as exc:
            raise TestsFormatError(f"{label}: 'args' is not plain JSON ({exc})") from None
    snippet = raw.get("snippet")
    if has_snippet:
        if not isinstance(snippet, str) or not snippet.strip():
            raise TestsFormatError(f"{label}: 'snippet' must be non-empty Python code")
        if len(snippet.encode("utf-8", "surrogatepass")) > MAX_SNIPPET_BYTES:
            raise TestsFormatError(f"{label}: 'snippet' is larger than {MAX_SNIPPET_BYTES} bytes")
        try:
            tree = ast.parse(snippet)
        except SyntaxError as exc:
            raise TestsFormatError(f"{label}: 'snippet' line {exc.lineno}: {exc.msg}") from None
        except (ValueError, RecursionError, MemoryError) as exc:
            raise TestsFormatError(f"{label}: 'snippet' cannot be parsed ({exc})") from None
        if not _assigns_ans(tree):
            raise TestsFormatError(f"{label}: 'snippet' never assigns 'ans' (the value compared with 'expected')")
    try:
        expected = _plain_json(raw["expected"])
    except (TypeError, ValueError, RecursionError) as exc:
        raise TestsFormatError(f"{label}: 'expected' is not plain JSON ({exc})") from None
    comparator = raw.get("comparator", "exact")
    if not isinstance(comparator, str) or comparator not in TABLE:
        raise TestsFormatError(f"{label}: unknown comparator {comparator!r}; choose from {', '.join(TABLE)}")
    tolerance = raw.get("tolerance")
    if tolerance is not None:
        if not TABLE[comparator].takes_tolerance:
            takers = " or ".join(repr(name) for name, c in TABLE.items() if c.takes_tolerance)
            raise TestsFormatError(f"{label}: 'tolerance' only applies to comparator {takers}")
        if (
            isinstance(tolerance, bool)
            or not isinstance(tolerance, (int, float))
            or not (math.isfinite(tolerance) and tolerance >= 0)
        ):
            raise TestsFormatError(f"{label}: 'tolerance' must be a finite number >= 0")
        tolerance = float(tolerance)
    return TestCase(
        name=name, args=args, snippet=snippet, expected=expected, comparator=comparator, tolerance=tolerance
    )


def parse_tests(data: Any) -> list[TestCase]:
    """Validate test cases given as a list (or ``{"cases": [...]}``) of objects or TestCase.

    Raises TestsFormatError naming the case and the field.
    """
    if isinstance(data, dict):
        if set(data) != {"cases"}:
            extra = sorted(set(data) - {"cases"})
            raise TestsFormatError(
                "tests must be a list of cases or an object with only a 'cases' list"
                + (f" (unexpected keys: {', '.join(map(str, extra))})" if extra else "")
            )
        data = data["cases"]
    if isinstance(data, (str, bytes)) or not hasattr(data, "__iter__"):
        raise TestsFormatError(f"tests must be a list of cases, not {type(data).__name__}")
    items = list(data)
    if len(items) > MAX_CASES:
        raise TestsFormatError(f"{len(items)} test cases; at most {MAX_CASES} are allowed")
    seen: dict[str, int] = {}
    return [_parse_case(index, raw, seen) for index, raw in enumerate(items, start=1)]


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def load_tests(text: str) -> list[TestCase]:
    """Parse a tests file (JSON: a list of cases, or ``{"cases": [...]}``)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise TestsFormatError("the tests file is not UTF-8 text") from None
    # The host's one bounded reader: size, depth, integer digits, finite numbers.
    from ..sandbox.inside.wire import MAX_FILE_DEPTH, NotJSON, OverBound, read_json

    try:
        data = read_json(text, "the tests file", max_depth=MAX_FILE_DEPTH, object_pairs_hook=_no_duplicate_keys)
    except NotJSON as exc:
        raise TestsFormatError(f"the tests file is not valid JSON: {exc.detail}") from None
    except OverBound as exc:
        raise TestsFormatError(str(exc)) from None
    return parse_tests(data)


# -- comparing ---------------------------------------------------------------------


def _mismatch(expected: Any, actual: Any, detail: Detail) -> str:
    message = f"expected {show(expected)}, got {show(actual)}"
    if isinstance(detail, tuple) and detail[0]:
        message += f" (at {detail[0]}: {detail[1]})"
    elif isinstance(detail, tuple) and not detail[1].startswith("expected "):
        message += f" ({detail[1]})"
    elif isinstance(detail, str):
        message += f" ({detail})"
    return message if len(message) <= _WHY_LIMIT else message[: _WHY_LIMIT - 1] + "…"


def compare(case: TestCase, actual: Any) -> tuple[bool, str | None]:
    """Does `actual` (parsed JSON) match the case, by its comparator (`comparators.TABLE`)?
    Returns (passed, why not)."""
    comparator = TABLE[case.comparator]
    try:
        same, detail = comparator.compare(case.expected, actual, case.tolerance)
    except RecursionError:
        return False, "the result is nested too deeply to compare"
    return (True, None) if same else (False, _mismatch(case.expected, actual, detail))
