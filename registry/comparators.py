"""The comparators of test cases: one table, name -> a small `Comparator`.

A case names its comparator (docs/tests-format.md); verification looks it up
here and nowhere else. Adding one is one entry in `TABLE` (its rule and a
one-line description, which the CLI's help shows); `COMPARATORS`, the
`--comparator` choices and the tests-file check all read the table.

Comparators only ever see plain JSON values (dict, list, str, int, float,
bool, None): the sandbox's result arrives as JSON text that the host parses,
so no method of a sandbox-made object is ever called here. This module
imports only the standard library (models.py validates names against it).
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["COMPARATORS", "TABLE", "Comparator", "Detail", "describe", "show"]

# Why two values differ, for the message: (path, detail) of the first
# difference inside them, a note on the whole value, or nothing to add.
Detail = tuple[str, str] | str | None

_DEFAULT_REL_TOL = 1e-9
_DEFAULT_ABS_TOL = 1e-12
_VALUE_LIMIT = 120


@dataclass(frozen=True)
class Comparator:
    """One way of comparing a result with a case's ``expected``.

    ``rule(expected, actual, tolerance)`` returns (equal, detail); only a
    comparator with ``takes_tolerance`` is ever given a case's tolerance
    (the tests-file check refuses it elsewhere)."""

    description: str
    rule: Callable[[Any, Any, float | None], tuple[bool, Detail]]
    takes_tolerance: bool = False

    def compare(self, expected: Any, actual: Any, tolerance: float | None = None) -> tuple[bool, Detail]:
        """(True, None) when `actual` matches `expected`, else (False, why)."""
        return self.rule(expected, actual, tolerance)


# -- what the rules share ------------------------------------------------------------


def show(value: Any) -> str:
    """`value` as short JSON for a message."""
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
        return path, f"expected {kind_e} {show(expected)}, got {kind_a} {show(actual)}"
    if kind_e == "number":
        equal = _numbers_close(expected, actual, tolerance) if approx else expected == actual
        return None if equal else (path, f"expected {show(expected)}, got {show(actual)}")
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
                parts.append("missing keys " + ", ".join(show(k) for k in missing[:5]))
            if extra:
                parts.append("unexpected keys " + ", ".join(show(k) for k in extra[:5]))
            return path, "; ".join(parts)
        for key in expected:
            found = _difference(expected[key], actual[key], f"{path}[{show(key)}]", tolerance, approx)
            if found:
                return found
        return None
    return None if expected == actual else (path, f"expected {show(expected)}, got {show(actual)}")


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


# -- the rules -----------------------------------------------------------------------


def _structural(approx: bool) -> Callable[[Any, Any, float | None], tuple[bool, Detail]]:
    def rule(expected: Any, actual: Any, tolerance: float | None) -> tuple[bool, Detail]:
        found = _difference(expected, actual, "", tolerance, approx)
        return (True, None) if found is None else (False, found)

    return rule


def _unordered(expected: Any, actual: Any, tolerance: float | None) -> tuple[bool, Detail]:
    if not isinstance(expected, list):
        found = _difference(expected, actual, "", None, False)
        return (True, None) if found is None else (False, found)
    if not isinstance(actual, list):
        return False, f"expected an array, got {_kind(actual)}"
    want, got = Counter(_canonical(v) for v in expected), Counter(_canonical(v) for v in actual)
    if want == got:
        return True, None
    first = {_canonical(v): v for v in [*expected, *actual]}
    missing = [first[k] for k in (want - got).elements()]
    extra = [first[k] for k in (got - want).elements()]
    parts = []
    if missing:
        parts.append(f"missing {show(missing[:10])}")
    if extra:
        parts.append(f"unexpected {show(extra[:10])}")
    return False, "; ".join(parts)


def _text(normal: Callable[[Any], str]) -> Callable[[Any, Any, float | None], tuple[bool, Detail]]:
    def rule(expected: Any, actual: Any, tolerance: float | None) -> tuple[bool, Detail]:
        try:
            same = normal(expected) == normal(actual)
        except (TypeError, ValueError):
            return False, "not JSON text"
        return (True, None) if same else (False, "after text normalization")

    return rule


# Every comparator, by the name a case gives. The first is the default.
TABLE: dict[str, Comparator] = {
    "exact": Comparator("equal JSON values (1 and 1.0 alike, true never 1)", _structural(approx=False)),
    "float": Comparator(
        "numbers within the case's tolerance (default 1e-9 relative), anywhere in the value",
        _structural(approx=True),
        takes_tolerance=True,
    ),
    "unordered": Comparator("the same items in any order (a list as a multiset)", _unordered),
    "normalized_text": Comparator(
        "the same text after Unicode NFKC, case folding and collapsing whitespace", _text(_normalized_text)
    ),
    "compact_text": Comparator(
        "the same text ignoring all whitespace (e.g. Dyck's '] )' vs '])')", _text(_compact_text)
    ),
}

# The names, for a CLI choice (taken when this module is imported).
COMPARATORS: tuple[str, ...] = tuple(TABLE)


def describe() -> str:
    """Every comparator and its description, for help text: "name (what); ..."."""
    return "; ".join(f"{name}: {comparator.description}" for name, comparator in TABLE.items())
