"""The ``__builtins__`` of sandboxed tool code and the table of hooks its
compiled code calls. Iterating builtins route through the iteration guard;
introspection builtins are the guarded versions from `guards`.

Imports only the standard library, RestrictedPython and its siblings.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence

from .guards import (
    STATE,
    guarded_delattr,
    guarded_getattr,
    guarded_getitem,
    guarded_hasattr,
    guarded_iter,
    guarded_setattr,
    inplacevar,
    is_safe_type,
    refuse,
    tool_metaclass,
    write_guard,
)
from .policy import ALLOWED_BUILTINS, ALLOWED_EXCEPTIONS, EXCEPTION_ALIASES

__all__ = ["build_builtins", "guard_hooks"]


class _Printer:
    """``_print_``: RestrictedPython creates one per function that prints.
    Each keeps its own text (for ``printed``) and also feeds the call's
    capped stdout."""

    def __init__(self, _getattr_: Any = None) -> None:
        self.parts: list[str] = []

    def _call_print(
        self, *objects: Any, sep: str | None = " ", end: str | None = "\n", file: Any = None, flush: bool = False
    ) -> None:
        if file is not None:
            raise TypeError("print(file=...) is not available in the sandbox")
        if sep is not None and not isinstance(sep, str):
            raise TypeError("sep must be None or a string")
        if end is not None and not isinstance(end, str):
            raise TypeError("end must be None or a string")
        text = (" " if sep is None else sep).join([str(o) for o in objects]) + ("\n" if end is None else end)
        STATE.write_stdout(text)
        self.parts.append(text)

    def __call__(self) -> str:
        return "".join(self.parts)


def _apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return func(*args, **kwargs)


def _sorted(iterable: Any, /, *, key: Any = None, reverse: bool = False) -> list[Any]:
    return sorted(guarded_iter(iterable), key=key, reverse=reverse)


def _iter(obj: Any, *sentinel: Any) -> Any:
    if sentinel:
        return iter(obj, *sentinel)
    return guarded_iter(obj)


def _enumerate(iterable: Any, start: int = 0) -> Any:
    return enumerate(guarded_iter(iterable), start)


def _zip(*iterables: Any, strict: bool = False) -> Any:
    return zip(*[guarded_iter(it) for it in iterables], strict=strict)


def _map(func: Any, *iterables: Any) -> Any:
    return map(func, *[guarded_iter(it) for it in iterables])


def _filter(func: Any, iterable: Any) -> Any:
    return filter(func, guarded_iter(iterable))


_DIRECTLY_REVERSIBLE = (list, tuple, str, range, bytes)


def _reversed(seq: Any) -> Any:
    if type(seq) in _DIRECTLY_REVERSIBLE or type(seq) is dict:
        return reversed(seq)
    return reversed(list(guarded_iter(seq)))


def _extreme(fn: Callable[..., Any]) -> Callable[..., Any]:
    def pick(*args: Any, **kwargs: Any) -> Any:
        if len(args) == 1:
            return fn(guarded_iter(args[0]), **kwargs)
        return fn(*args, **kwargs)

    pick.__name__ = pick.__qualname__ = fn.__name__
    return pick


def _sum(iterable: Any, /, start: Any = 0) -> Any:
    return sum(guarded_iter(iterable), start)


def _any(iterable: Any, /) -> bool:
    return any(guarded_iter(iterable))


def _all(iterable: Any, /) -> bool:
    return all(guarded_iter(iterable))


_PLAIN_SEQUENCES = (tuple, list)


def iter_unpack_sequence(it: Any, spec: dict[str, Any], _getiter_: Callable[[Any], Any]) -> Any:
    """``_iter_unpack_sequence_`` for ``for a, b in pairs``: RestrictedPython's
    guard copies every item into a list through ``_getiter_``. An exact tuple
    or list unpacks without running any tool code, so with no nested targets
    it is passed through as it is; everything else takes the guarded path.
    (In LATM-style brute-force loops this is most of the policy's overhead.)"""
    if spec.get("childs"):
        yield from guarded_iter_unpack_sequence(it, spec, _getiter_)
        return
    for ob in _getiter_(it):
        yield ob if type(ob) in _PLAIN_SEQUENCES else guarded_unpack_sequence(ob, spec, _getiter_)


def unpack_sequence(it: Any, spec: dict[str, Any], _getiter_: Callable[[Any], Any]) -> Any:
    """``_unpack_sequence_`` for ``a, b = value``: the same pass-through for an
    exact tuple or list with no nested targets."""
    if type(it) in _PLAIN_SEQUENCES and not spec.get("childs"):
        return it
    return guarded_unpack_sequence(it, spec, _getiter_)


def _type(*args: Any) -> type:
    if len(args) == 3:
        raise refuse("type() with three arguments (creating classes) is not allowed")
    if len(args) != 1:
        raise TypeError("type() takes 1 argument in the sandbox")
    kind = type(args[0])
    if is_safe_type(kind):
        return kind
    raise refuse(f'type() of a "{kind.__name__}" object is not available')


def _issubclass(cls: Any, classinfo: Any) -> bool:
    if not isinstance(cls, type):
        raise TypeError("issubclass() arg 1 must be a class")
    return issubclass(cls, classinfo)


_BUILTIN_IMPLEMENTATIONS: dict[str, Any] = {
    "iter": _iter,
    "enumerate": _enumerate,
    "zip": _zip,
    "map": _map,
    "filter": _filter,
    "reversed": _reversed,
    "sorted": _sorted,
    "min": _extreme(min),
    "max": _extreme(max),
    "sum": _sum,
    "any": _any,
    "all": _all,
    "type": _type,
    "issubclass": _issubclass,
    "getattr": guarded_getattr,
    "hasattr": guarded_hasattr,
    "setattr": guarded_setattr,
    "delattr": guarded_delattr,
}


def build_builtins(import_hook: Callable[..., Any]) -> dict[str, Any]:
    """The ``__builtins__`` mapping for tool code. ``print`` is not in it:
    RestrictedPython compiles ``print`` to the `_print_` collector."""
    table: dict[str, Any] = {}
    for name in ALLOWED_BUILTINS:
        if name == "print":
            continue
        table[name] = _BUILTIN_IMPLEMENTATIONS.get(name) or getattr(builtins, name)
    for name in ALLOWED_EXCEPTIONS:
        table[name] = getattr(builtins, name)
    for name, target in EXCEPTION_ALIASES.items():
        table[name] = getattr(builtins, target)
    table["__build_class__"] = builtins.__build_class__
    table["__import__"] = import_hook
    return table


def guard_hooks() -> dict[str, Any]:
    """The hook names RestrictedPython's compiled code calls, bound to the guards."""
    return {
        "_getattr_": guarded_getattr,
        "_getitem_": guarded_getitem,
        "_getiter_": guarded_iter,
        "_iter_unpack_sequence_": iter_unpack_sequence,
        "_unpack_sequence_": unpack_sequence,
        "_write_": write_guard,
        "_inplacevar_": inplacevar,
        "_print_": _Printer,
        "_apply_": _apply,
        "__metaclass__": tool_metaclass,
        "__name__": "tool",
    }
