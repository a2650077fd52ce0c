"""Module facades: what ``import x`` gives sandboxed tool code.

A facade is a fresh, read-only namespace holding only the functions,
classes and constants the policy names for that module (`policy.ALLOWED_MODULES`).
It is never the real module: real modules reach ``sys``/``os`` through plain
attributes (``json.codecs``, ``re.sre_compile``, ``typing.sys``...), so handing
one out would make the getattr guard moot. Asking a facade for a name it
does not hold is a refusal, not an AttributeError: it is how module walks start.

Everything is built once at import time (the zygote imports this before it
forks), so a forked child never imports anything.

Imports only the standard library and its siblings ``policy`` and ``guards``.
"""

from __future__ import annotations

import __future__
import _strptime  # noqa: F401 - loaded now for datetime.strptime (see _LIBRARY_INTERNAL_IMPORTS)
import bisect
import collections
import copy
import datetime
import decimal
import fractions
import functools
import heapq
import itertools
import json
import math
import random
import re
import statistics
import string
import sys
import time
from typing import Any

from .guards import is_tool_class, refuse, register_safe_types
from .policy import ALLOWED_MODULES, ModuleRule

__all__ = ["FACADES", "Facade", "allowed_module_names", "guarded_import", "reset_for_call"]


class Facade:
    """A read-only stand-in for one module."""

    def __init__(self, module_name: str, members: dict[str, Any]) -> None:
        object.__setattr__(self, "_facade_module", module_name)
        for key, value in members.items():
            object.__setattr__(self, key, value)

    def __getattr__(self, name: str) -> Any:
        # Only reached for names the facade does not hold. Tool code can never
        # ask for a "_" name (the guard refuses it first), so those lookups
        # come from library internals (copy, hasattr probes): a plain miss.
        if name.startswith("_"):
            raise AttributeError(name)
        module = object.__getattribute__(self, "_facade_module")
        offered = ", ".join(ALLOWED_MODULES[module].names) if module in ALLOWED_MODULES else ""
        raise refuse(f'"{module}.{name}" is not offered in the sandbox (offered: {offered})')

    def __setattr__(self, name: str, value: Any) -> None:
        raise refuse("sandbox modules are read-only")

    def __delattr__(self, name: str) -> None:
        raise refuse("sandbox modules are read-only")

    def __repr__(self) -> str:
        return f"<sandbox module {object.__getattribute__(self, '_facade_module')}>"


class _Hint:
    """An inert typing name: subscriptable, unionable and callable (TypeVar),
    always giving back a hint. Annotations only need to evaluate."""

    __slots__ = ("label",)

    def __init__(self, label: str) -> None:
        self.label = label

    def __getitem__(self, item: Any) -> "_Hint":
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> "_Hint":
        return self

    def __or__(self, other: Any) -> "_Hint":
        return self

    def __ror__(self, other: Any) -> "_Hint":
        return self

    def __repr__(self) -> str:
        return f"typing.{self.label}"


def _cast(kind: Any, value: Any) -> Any:
    return value


def _namedtuple(typename: str, field_names: Any, *, defaults: Any = None) -> type:
    # rename/module keywords are not offered: module= would write an arbitrary
    # __module__, and the class must be nameable by type().
    # mypy only understands namedtuple() with literal arguments (a class it can
    # name statically); this one is built at run time from the tool's arguments.
    cls = collections.namedtuple(typename, field_names, defaults=defaults)  # type: ignore[misc]
    register_safe_types((cls,))
    return cls


def _total_ordering(cls: Any) -> Any:
    # It assigns comparison methods onto the class it is given: only the
    # tool's own classes may be written to.
    if not is_tool_class(cls):
        raise refuse("functools.total_ordering only applies to classes the tool defined")
    return functools.total_ordering(cls)


# One generator per process, reseeded for every call: a forked child would
# otherwise replay the zygote's sequence.
_RNG = random.Random()

_SPECIAL: dict[str, dict[str, Any]] = {
    "random": {name: getattr(_RNG, name) for name in ALLOWED_MODULES["random"].names},
    "typing": {
        **{name: _Hint(name) for name in ALLOWED_MODULES["typing"].names if name != "cast"},
        "cast": _cast,
    },
    "functools": {
        **{name: getattr(functools, name) for name in ALLOWED_MODULES["functools"].names},
        "total_ordering": _total_ordering,
    },
    "collections": {
        **{name: getattr(collections, name) for name in ALLOWED_MODULES["collections"].names},
        "namedtuple": _namedtuple,
    },
}

_REAL_MODULES: dict[str, Any] = {
    "math": math, "itertools": itertools, "functools": functools, "collections": collections,
    "heapq": heapq, "bisect": bisect, "fractions": fractions, "decimal": decimal,
    "statistics": statistics, "random": random, "string": string, "re": re, "json": json,
    "datetime": datetime, "time": time, "typing": None, "copy": copy,
}

# `from __future__ import annotations` executes a real import at run time.
_FUTURE_RULE = ModuleRule("compiler directives", ("annotations",))


def _build(name: str, rule: ModuleRule) -> Facade:
    members = _SPECIAL.get(name)
    if members is None:
        module = _REAL_MODULES[name]
        members = {attr: getattr(module, attr) for attr in rule.names}
    missing = set(rule.names) - set(members)
    if missing:
        raise RuntimeError(f"facade {name} lacks {sorted(missing)}")
    return Facade(name, members)


FACADES: dict[str, Facade] = {name: _build(name, rule) for name, rule in ALLOWED_MODULES.items()}
FACADES["__future__"] = Facade("__future__", {"annotations": __future__.annotations})
_RULES: dict[str, ModuleRule] = {**ALLOWED_MODULES, "__future__": _FUTURE_RULE}

register_safe_types((statistics.StatisticsError, json.JSONDecodeError, re.error))


def allowed_module_names() -> tuple[str, ...]:
    """Modules tool code may import, in policy order."""
    return tuple(ALLOWED_MODULES)


_ALLOWED_TEXT = ", ".join(ALLOWED_MODULES)

# Library C code imports helpers through the *calling frame's* __import__,
# which is this hook when the caller is tool code: datetime.strptime imports
# _strptime. Tool code itself can never ask for these (names starting with
# "_" are refused at compile time, and __import__ is not a usable name), so
# the real, already-imported module is returned to the library.
_LIBRARY_INTERNAL_IMPORTS = frozenset({"_strptime"})


def guarded_import(name: Any, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
    """The sandbox's ``__import__``: a facade from the allowlist, or a refusal."""
    if type(name) is not str:
        raise refuse("import needs a plain module name")
    if level != 0:
        raise refuse(f'relative import{" of " + repr(name) if name else ""} is not allowed')
    facade = FACADES.get(name)
    if facade is None and name in _LIBRARY_INTERNAL_IMPORTS:
        return sys.modules[name]
    if facade is None:
        raise refuse(f'import of "{name}" is not allowed (allowed: {_ALLOWED_TEXT})')
    offered = _RULES[name].names
    for item in fromlist or ():
        if type(item) is not str or item not in offered:
            raise refuse(f'"{name}" offers no "{item}" in the sandbox (offered: {", ".join(offered)})')
    return facade


def reset_for_call() -> None:
    """Give each call fresh process-wide library state."""
    _RNG.seed()
    decimal.setcontext(decimal.Context())

