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
import copyreg
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
import types
import weakref
from collections.abc import Callable
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

    def __getitem__(self, item: Any) -> _Hint:
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> _Hint:
        return self

    def __or__(self, other: Any) -> _Hint:
        return self

    def __ror__(self, other: Any) -> _Hint:
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
    _NAMEDTUPLES.add(cls)
    return cls


def _total_ordering(cls: Any) -> Any:
    # It assigns comparison methods onto the class it is given: only the
    # tool's own classes may be written to.
    if not is_tool_class(cls):
        raise refuse("functools.total_ordering only applies to classes the tool defined")
    return functools.total_ordering(cls)


# ---------------------------------------------------------------------------
# copy: only what a tool may build is copied, and only by the sandbox.
#
# The real `copy.deepcopy(x, memo)` takes the caller's memo (a dict subclass
# whose `get` hands back any object at any step) and rebuilds objects by
# calling whatever `__reduce_ex__` returns, such as the real `getattr` for a
# method descriptor: together they were a full escape (attack
# copy-deepcopy-memo-getattr). These copy with no caller memo, and by kind:
#   - shared (never copied, as `copy` itself does for functions and classes):
#     immutable values, functions, classes, facades;
#   - rebuilt by hand: the builtin and `collections` containers;
#   - rebuilt through `__reduce_ex__` only for instances of the tool's own
#     classes (and namedtuples), only when its callable is that class or
#     `copyreg.__newobj__`, so the only code run is the tool's own and the
#     class's constructor;
#   - anything else (library objects, exceptions, iterators, bound C
#     objects...) is a refusal.
# ---------------------------------------------------------------------------

_NAMEDTUPLES: weakref.WeakSet[type] = weakref.WeakSet()

_COPY_SHARED: frozenset[type] = frozenset(
    {
        type(None),
        bool,
        int,
        float,
        complex,
        str,
        bytes,
        range,
        slice,
        type(Ellipsis),
        type(NotImplemented),
        fractions.Fraction,
        decimal.Decimal,
        datetime.date,
        datetime.datetime,
        datetime.time,
        datetime.timedelta,
        datetime.timezone,
        type(re.compile("")),
        type(re.match("", "")),
        time.struct_time,
        types.FunctionType,
        types.BuiltinFunctionType,
        types.MethodType,
    }
)
_NO_ITEM = object()


class _Memo:
    """The copy's own memo: id -> copy, with the originals kept alive so an
    id cannot be reused while the copy runs."""

    __slots__ = ("copies", "originals")

    def __init__(self) -> None:
        self.copies: dict[int, Any] = {}
        self.originals: list[Any] = []

    def remember(self, original: Any, made: Any) -> Any:
        self.copies[id(original)] = made
        self.originals.append(original)
        return made


def _copied(x: Any, memo: _Memo | None) -> Any:
    """``x`` copied deeply (with a memo) or shallowly (memo None)."""
    kind = type(x)
    if kind in _COPY_SHARED or isinstance(x, (type, Facade, _Hint)):
        return x
    if memo is not None:
        found = memo.copies.get(id(x), _NO_ITEM)
        if found is not _NO_ITEM:
            return found
    if kind is object:
        return object()
    container = _CONTAINER_COPIES.get(kind)
    if container is not None:
        return container(x, memo)
    if is_tool_class(kind) or kind in _NAMEDTUPLES:
        return _rebuilt(x, kind, memo)
    raise refuse(
        f"copying {kind.__name__} objects is not allowed in the sandbox "
        "(only data and objects of the tool's own classes are copied)"
    )


def _each(items: Any, memo: _Memo | None) -> Any:
    return items if memo is None else [_copied(item, memo) for item in items]


def _copy_list(x: list[Any], memo: _Memo | None) -> list[Any]:
    if memo is None:
        return list(x)
    made: list[Any] = memo.remember(x, [])
    made.extend(_copied(item, memo) for item in x)
    return made


def _copy_tuple(x: tuple[Any, ...], memo: _Memo | None) -> tuple[Any, ...]:
    if memo is None:
        return x
    items = [_copied(item, memo) for item in x]
    # A tuple can only be in the memo already if it is part of a cycle
    # through a mutable member, which was copied above.
    found = memo.copies.get(id(x), _NO_ITEM)
    if found is not _NO_ITEM:
        return found  # type: ignore[no-any-return]
    made = tuple(items)
    return memo.remember(x, made) if any(a is not b for a, b in zip(x, made)) else x


def _copy_mapping(x: Any, memo: _Memo | None, made: Any) -> Any:
    if memo is None:
        made.update(x)
        return made
    memo.remember(x, made)
    for key, value in x.items():  # an exact library type: its own items(), in its own order
        made[_copied(key, memo)] = _copied(value, memo)
    return made


def _copy_set(x: Any, memo: _Memo | None) -> Any:
    if memo is None:
        return type(x)(x) if type(x) is set else x
    made = type(x)(_copied(item, memo) for item in x)
    return memo.remember(x, made)


def _copy_deque(x: collections.deque[Any], memo: _Memo | None) -> collections.deque[Any]:
    made: collections.deque[Any] = collections.deque(maxlen=x.maxlen)
    if memo is not None:
        memo.remember(x, made)
    made.extend(_each(x, memo))
    return made


def _copy_chainmap(x: collections.ChainMap[Any, Any], memo: _Memo | None) -> collections.ChainMap[Any, Any]:
    if memo is None:
        return x.copy()
    made: collections.ChainMap[Any, Any] = memo.remember(x, collections.ChainMap())
    made.maps = [_copied(m, memo) for m in x.maps]
    return made


_CONTAINER_COPIES: dict[type, Callable[[Any, _Memo | None], Any]] = {
    list: _copy_list,
    tuple: _copy_tuple,
    dict: lambda x, memo: _copy_mapping(x, memo, {}),
    collections.OrderedDict: lambda x, memo: _copy_mapping(x, memo, collections.OrderedDict()),
    collections.Counter: lambda x, memo: _copy_mapping(x, memo, collections.Counter()),
    collections.defaultdict: lambda x, memo: _copy_mapping(x, memo, collections.defaultdict(x.default_factory)),
    set: _copy_set,
    frozenset: _copy_set,
    collections.deque: _copy_deque,
    collections.ChainMap: _copy_chainmap,
}

_NEWOBJ = (copyreg.__newobj__, copyreg.__newobj_ex__)  # type: ignore[attr-defined]


def _rebuilt(x: Any, kind: type, memo: _Memo | None) -> Any:
    """An instance of a tool class (or namedtuple), rebuilt the way `copy`
    does from the class's own `__reduce_ex__`, whose rebuilding callable must
    be the class itself or `copyreg.__newobj__` for that class."""
    reduced: Any = getattr(kind, "__reduce_ex__")(x, 4)  # noqa: B009 - the type's own slot, untyped for mypy
    if type(reduced) is not tuple or not 2 <= len(reduced) <= 5:
        raise refuse(f"copying {kind.__name__} objects is not allowed in the sandbox")
    func, args, state, list_items, dict_items = reduced + (None,) * (5 - len(reduced))
    if not (func is kind or (func in _NEWOBJ and type(args) is tuple and args and args[0] is kind)):
        raise refuse(
            f"copying {kind.__name__} objects is not allowed in the sandbox (its class does not rebuild itself)"
        )
    if memo is not None:
        args = tuple(_copied(arg, memo) for arg in args)
    made = func(*args)
    if memo is not None:
        memo.remember(x, made)
    if state is not None:
        if memo is not None:
            state = _copied(state, memo)
        if hasattr(made, "__setstate__"):  # a library base's own (tools cannot define dunders)
            made.__setstate__(state)
        else:
            slots = None
            if type(state) is tuple and len(state) == 2:
                state, slots = state
            if state is not None:
                vars(made).update(state)
            for key, value in (slots or {}).items():
                setattr(made, key, value)
    for item in list_items or ():
        made.append(_copied(item, memo) if memo is not None else item)
    for key, value in dict_items or ():
        if memo is not None:
            key, value = _copied(key, memo), _copied(value, memo)
        made[key] = value
    return made


def _copy(x: Any, /) -> Any:
    """``copy.copy(x)``: a shallow copy of data or of a tool object."""
    return _copied(x, None)


def _deepcopy(x: Any, /, *memo: Any, **kwargs: Any) -> Any:
    """``copy.deepcopy(x)``: a deep copy of data and tool objects; no memo."""
    if memo or kwargs:
        raise refuse("copy.deepcopy(x, memo): the memo argument is not offered in the sandbox")
    return _copied(x, _Memo())


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
    "copy": {"copy": _copy, "deepcopy": _deepcopy},
}

_REAL_MODULES: dict[str, Any] = {
    "math": math,
    "itertools": itertools,
    "functools": functools,
    "collections": collections,
    "heapq": heapq,
    "bisect": bisect,
    "fractions": fractions,
    "decimal": decimal,
    "statistics": statistics,
    "random": random,
    "string": string,
    "re": re,
    "json": json,
    "datetime": datetime,
    "time": time,
    "typing": None,
    "copy": None,
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
        raise refuse(f"relative import{' of ' + repr(name) if name else ''} is not allowed")
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
