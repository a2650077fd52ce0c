"""The tool's value as plain JSON data, built inside the sandboxed process.

Conversion goes by exact type and never runs a method the tool defined:
subclasses of builtins are read through the base type's own C methods,
called unbound. Depth, cycles and size are capped while converting, so a
huge or hostile result fails fast instead of being built twice.

A pandas DataFrame (records), Series (a list), Timestamp (ISO text), numpy
array (nested lists) or numpy scalar is converted too, by its library's own
methods on the exact library type, and only when that library is already
loaded (`sys.modules`): a tool without packages never pays for the check.

Imports only the standard library and its sibling `guards`.
"""

from __future__ import annotations

import collections
import json
import math
import sys
from typing import Any

from .guards import OutputLimit

__all__ = ["MAX_RESULT_DEPTH", "ResultNotJSON", "to_json"]

MAX_RESULT_DEPTH = 64
# Beyond CPython's int->str digit limit (4300 digits ~ 14 300 bits) json.dumps
# would raise; refuse such ints up front with a clear message.
_MAX_INT_BITS = 14_000


class ResultNotJSON(Exception):
    """The tool's result cannot be represented as JSON."""


class _Budget:
    """Approximate encoded size, so a huge result fails fast instead of being
    built twice (once as data, once as JSON) before the cap applies."""

    __slots__ = ("left",)

    def __init__(self, cap: int) -> None:
        self.left = cap

    def charge(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise OutputLimit("the result exceeds the output limit")


def _sort_key_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=True)


def _convert(value: Any, depth: int, active: set[int], budget: _Budget) -> Any:
    kind = type(value)
    if value is None or kind is bool:
        budget.charge(5)
        return value
    if kind is str:
        budget.charge(len(value) + 2)
        return value
    if kind is int:
        if value.bit_length() > _MAX_INT_BITS:
            raise ResultNotJSON("result is not JSON: int too large")
        budget.charge(8)
        return value
    if kind is float:
        if not math.isfinite(value):
            raise ResultNotJSON(f"result is not JSON: float {value!r}")
        budget.charge(24)
        return value
    # Subclasses of builtins are read through the base type's own C methods,
    # called unbound, so no method the tool defined runs here.
    if isinstance(value, str):
        return _convert(str.__str__(value), depth, active, budget)
    if isinstance(value, int) and not isinstance(value, bool):
        return _convert(int.__int__(value), depth, active, budget)
    if isinstance(value, float):
        return _convert(float.__float__(value), depth, active, budget)

    if isinstance(value, dict):
        items: Any = dict.items(value)
    elif isinstance(value, (list, tuple, set, frozenset)) or kind is collections.deque:
        items = None
    else:
        plain = _library_value(value, kind)
        if plain is _NOT_LIBRARY:
            raise ResultNotJSON(f"result is not JSON: {kind.__name__}")
        return _convert(plain, depth + 1, active, budget)

    if depth >= MAX_RESULT_DEPTH:
        raise ResultNotJSON(f"result is not JSON: nested deeper than {MAX_RESULT_DEPTH} levels")
    ident = id(value)
    if ident in active:
        raise ResultNotJSON("result is not JSON: it contains a reference cycle")
    active.add(ident)
    budget.charge(2)
    try:
        if items is not None:
            out: dict[str, Any] = {}
            for key, item in items:
                if type(key) is not str:
                    if not isinstance(key, str):
                        raise ResultNotJSON(f"result is not JSON: dict key of type {type(key).__name__}")
                    key = str.__str__(key)
                if key in out:
                    # A str subclass key equal to another key: both cannot
                    # be JSON object members, and dropping one would lose data.
                    raise ResultNotJSON(f"result is not JSON: two dict keys are both the string {key[:80]!r}")
                budget.charge(len(key) + 3)
                out[key] = _convert(item, depth + 1, active, budget)
            return out
        if isinstance(value, list):
            members = list.__iter__(value)
        elif isinstance(value, tuple):
            members = tuple.__iter__(value)
        elif isinstance(value, set):
            members = set.__iter__(value)
        elif isinstance(value, frozenset):
            members = frozenset.__iter__(value)
        else:
            members = kind.__iter__(value)  # exact collections.deque: a C iterator
        converted = []
        for item in members:
            budget.charge(1)
            converted.append(_convert(item, depth + 1, active, budget))
        if isinstance(value, (set, frozenset)):
            converted = _sorted_set(converted)
        return converted
    finally:
        active.discard(ident)


_NOT_LIBRARY = object()


def _numpy_scalar(np: Any, kind: type) -> bool:
    return kind.__module__ == "numpy" and kind in set(np.sctypeDict.values())


def _library_value(value: Any, kind: type) -> Any:
    """A numpy or pandas value as builtins (still to be checked by
    `_convert`), or _NOT_LIBRARY. Exact library types only: a subclass
    could redefine the methods used here."""
    # Methods fetched before the type check (mypy narrows what `is` compares).
    np: Any = sys.modules.get("numpy")
    if np is not None:
        array_tolist: Any = np.ndarray.tolist
        if kind is np.ndarray:
            return array_tolist(value)
        if _numpy_scalar(np, kind):
            return np.generic.item(value)
    pd: Any = sys.modules.get("pandas")
    if pd is not None:
        frame_to_dict: Any = pd.DataFrame.to_dict
        series_tolist: Any = pd.Series.tolist
        series_to_dict: Any = pd.Series.to_dict
        if kind is pd.DataFrame:
            rows = frame_to_dict(value, orient="records")
            return [_record(pd, np, dict.items(row)) for row in rows]
        if kind is pd.Series:
            # Positions: a list; labels (a groupby's result): an object.
            if type(value.index) is pd.RangeIndex:
                return [_cell(pd, np, cell) for cell in series_tolist(value)]
            return _record(pd, np, dict.items(series_to_dict(value)))
        if kind is pd.Timestamp or value is pd.NaT or value is pd.NA:
            return _cell(pd, np, value)
    return _NOT_LIBRARY


def _record(pd: Any, np: Any, items: Any) -> dict[Any, Any]:
    """Labels and cells as a JSON object; two labels that become the same
    text (1 and "1") are an error, never a silently dropped column."""
    out: dict[Any, Any] = {}
    for key, cell in items:
        label = _column(key)
        if label in out:
            raise ResultNotJSON(f"result is not JSON: two labels both become the key {label!r}")
        out[label] = _cell(pd, np, cell)
    return out


def _column(key: Any) -> Any:
    # JSON object keys are text; a frame's column labels are often numbers.
    if type(key) in (int, float, bool):
        return repr(key)
    return key  # anything else is judged as a dict key by _convert


def _cell(pd: Any, np: Any, cell: Any) -> Any:
    """One value of a frame or series: missing values (NaN, NaT, NA) are null,
    timestamps ISO text, numpy scalars builtins."""
    kind = type(cell)
    if kind is float:
        return None if math.isnan(cell) else cell
    if cell is pd.NaT or cell is pd.NA:
        return None
    if kind is pd.Timestamp:
        return pd.Timestamp.isoformat(cell)
    if np is not None and _numpy_scalar(np, kind):
        return _cell(pd, np, np.generic.item(cell))
    return cell


def _sorted_set(members: list[Any]) -> list[Any]:
    """Sets have no order; sort them so results are reproducible."""
    if all(type(m) is str for m in members) or all(type(m) in (int, float) for m in members):
        return sorted(members)
    return sorted(members, key=_sort_key_json)


def to_json(value: Any, cap: int) -> Any:
    """The tool's value as plain JSON data (dict/list/str/int/float/bool/None).

    Raises ResultNotJSON for anything else and OutputLimit beyond ``cap``
    (approximate encoded bytes)."""
    return _convert(value, 0, set(), _Budget(cap))
