"""Test cases: their JSON format, and comparators over parsed JSON values.

The format is documented for users in docs/tests-format.md. Cases are
numbered from 1 in messages ("case 3" is the third case).

Comparators only ever see plain JSON values (dict, list, str, int, float,
bool, None): the sandbox's result arrives as JSON text that the host parses,
so no method of a sandbox-made object is ever called here.
"""

from __future__ import annotations

import ast
import difflib
import json
import math
import unicodedata
from collections import Counter
from typing import Any

from .errors import TestsFormatError
from .models import TestCase

__all__ = ["COMPARATORS", "MAX_CASES", "MAX_SNIPPET_BYTES", "compare", "load_tests", "parse_tests"]

COMPARATORS = ("exact", "float", "unordered", "normalized_text", "compact_text")
MAX_CASES = 1000
MAX_SNIPPET_BYTES = 64 * 1024

_KEYS = ("name", "args", "snippet", "expected", "comparator", "tolerance")
_DEFAULT_REL_TOL = 1e-9
_DEFAULT_ABS_TOL = 1e-12
_WHY_LIMIT = 300
_VALUE_LIMIT = 120


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
            raise TestsFormatError(
                f"{label}: unknown key {key!r}{hint}; allowed keys: {', '.join(_KEYS)}"
            )
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
    if comparator not in COMPARATORS:
        raise TestsFormatError(f"{label}: unknown comparator {comparator!r}; choose from {', '.join(COMPARATORS)}")
    tolerance = raw.get("tolerance")
    if tolerance is not None:
        if comparator != "float":
            raise TestsFormatError(f"{label}: 'tolerance' only applies to comparator 'float'")
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not (
            math.isfinite(tolerance) and tolerance >= 0
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


def _show(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= _VALUE_LIMIT else text[: _VALUE_LIMIT - 1] + "…"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "non-JSON"


def _numbers_close(a: int | float, b: int | float, tolerance: float | None) -> bool:
    rel = _DEFAULT_REL_TOL if tolerance is None else tolerance
    absolute = _DEFAULT_ABS_TOL if tolerance is None else tolerance
    if a == b:
        return True
    try:
        return math.isclose(a, b, rel_tol=rel, abs_tol=absolute)
    except OverflowError:  # an int too large for a float
        return False


def _difference(expected: Any, actual: Any, path: str, tolerance: float | None, approx: bool) -> tuple[str, str] | None:
    """None when equal, else (path, detail) of the first difference."""
    kind_e, kind_a = _kind(expected), _kind(actual)
    if kind_e != kind_a or kind_e == "non-JSON":
        return path, f"expected {kind_e} {_show(expected)}, got {kind_a} {_show(actual)}"
    if kind_e == "number":
        equal = _numbers_close(expected, actual, tolerance) if approx else expected == actual
        return None if equal else (path, f"expected {_show(expected)}, got {_show(actual)}")
    if kind_e == "array":
        if len(expected) != len(actual):
            return path, f"expected {len(expected)} items, got {len(actual)}"
        for i, (e, a) in enumerate(zip(expected, actual)):
            found = _difference(e, a, f"{path}[{i}]", tolerance, approx)
            if found:
                return found
        return None
    if kind_e == "object":
        missing = [k for k in expected if k not in actual]
        extra = [k for k in actual if k not in expected]
        if missing or extra:
            parts = []
            if missing:
                parts.append("missing keys " + ", ".join(_show(k) for k in missing[:5]))
            if extra:
                parts.append("unexpected keys " + ", ".join(_show(k) for k in extra[:5]))
            return path, "; ".join(parts)
        for key in expected:
            found = _difference(expected[key], actual[key], f"{path}[{_show(key)}]", tolerance, approx)
            if found:
                return found
        return None
    return None if expected == actual else (path, f"expected {_show(expected)}, got {_show(actual)}")


def _canonical(value: Any) -> Any:
    """A hashable key equal for JSON-equal values (1 and 1.0 alike, true never 1)."""
    if isinstance(value, bool) or value is None:
        return ("c", value)
    if isinstance(value, int):
        return ("n", value)
    if isinstance(value, float):
        return ("n", int(value)) if value.is_integer() else ("n", value)
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, list):
        return ("l", tuple(_canonical(v) for v in value))
    if isinstance(value, dict):
        return ("d", tuple(sorted((str(k), _canonical(v)) for k, v in value.items())))
    return ("x", id(value))  # never equal to anything else


def _normalized_text(value: Any) -> str:
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True, allow_nan=False)
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).casefold())
    return " ".join(text.split())


def _compact_text(value: Any) -> str:
    # Answers written with separating spaces ("] )", BIG-Bench's Dyck task)
    # and without ("])") are the same answer.
    return "".join(_normalized_text(value).split())


def _mismatch(case: TestCase, actual: Any, detail: tuple[str, str] | str | None) -> str:
    message = f"expected {_show(case.expected)}, got {_show(actual)}"
    if isinstance(detail, tuple) and detail[0]:
        message += f" (at {detail[0]}: {detail[1]})"
    elif isinstance(detail, tuple) and not detail[1].startswith("expected "):
        message += f" ({detail[1]})"
    elif isinstance(detail, str):
        message += f" ({detail})"
    return message if len(message) <= _WHY_LIMIT else message[: _WHY_LIMIT - 1] + "…"


def _compare_unordered(case: TestCase, actual: Any) -> tuple[bool, str | None]:
    expected = case.expected
    if not isinstance(expected, list):
        found = _difference(expected, actual, "", None, False)
        return (True, None) if found is None else (False, _mismatch(case, actual, found))
    if not isinstance(actual, list):
        return False, _mismatch(case, actual, f"expected an array, got {_kind(actual)}")
    want, got = Counter(_canonical(v) for v in expected), Counter(_canonical(v) for v in actual)
    if want == got:
        return True, None
    first = {_canonical(v): v for v in [*expected, *actual]}
    missing = [first[k] for k in (want - got).elements()]
    extra = [first[k] for k in (got - want).elements()]
    parts = []
    if missing:
        parts.append(f"missing {_show(missing[:10])}")
    if extra:
        parts.append(f"unexpected {_show(extra[:10])}")
    return False, _mismatch(case, actual, "; ".join(parts))


def compare(case: TestCase, actual: Any) -> tuple[bool, str | None]:
    """Does `actual` (parsed JSON) match the case? Returns (passed, why not)."""
    try:
        if case.comparator == "unordered":
            return _compare_unordered(case, actual)
        if case.comparator in ("normalized_text", "compact_text"):
            normal = _normalized_text if case.comparator == "normalized_text" else _compact_text
            try:
                same = normal(case.expected) == normal(actual)
            except (TypeError, ValueError):
                return False, _mismatch(case, actual, "not JSON text")
            return (True, None) if same else (False, _mismatch(case, actual, "after text normalization"))
        approx = case.comparator == "float"
        found = _difference(case.expected, actual, "", case.tolerance, approx)
        return (True, None) if found is None else (False, _mismatch(case, actual, found))
    except RecursionError:
        return False, "the result is nested too deeply to compare"
