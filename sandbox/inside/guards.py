"""Run-time policy: the hooks RestrictedPython's compiled code calls
(``_getattr_``, ``_write_``, ``_inplacevar_`` ...), the guarded ``str.format``,
the tool-class registry, and the per-call record of refusals.

Any refusal is sticky: the first one is recorded in `STATE` and the whole
call is reported as ``blocked`` even if the tool catches the exception, so a
tool cannot probe the guards with ``try``/``except``.

Imports only the standard library, RestrictedPython and its sibling `policy`.
"""

from __future__ import annotations

import _string  # C helper behind str.format; imported here so forked children never import
import abc
import collections
import datetime
import decimal
import fractions
import operator
import re
import string
import sys
import weakref
from collections.abc import Callable
from types import FrameType, FunctionType
from typing import Any

from .policy import BLOCKED_ATTRIBUTES, MAX_SEQUENCE_ITEMS, READABLE_DUNDERS, TOOL_FILENAMES

__all__ = [
    "JobState",
    "OutputLimit",
    "PolicyViolation",
    "STATE",
    "UnboundMethod",
    "guarded_delattr",
    "guarded_getattr",
    "guarded_getitem",
    "guarded_hasattr",
    "guarded_iter",
    "guarded_setattr",
    "inplacevar",
    "is_tool_class",
    "is_safe_type",
    "refuse",
    "register_safe_types",
    "safe_format",
    "safe_format_map",
    "tool_metaclass",
    "write_guard",
]

# ---------------------------------------------------------------------------
# Per-call state and refusals
# ---------------------------------------------------------------------------


class PolicyViolation(BaseException):
    """Raised by a guard. A BaseException so `except Exception` in the tool
    does not swallow it; the refusal is recorded in `STATE` regardless."""


class OutputLimit(BaseException):
    """Printed output or the result outgrew the call's output cap."""


class JobState:
    """What the guards record during one call (one call per process in
    production; reset per call so in-process use stays correct)."""

    output_cap: int
    violation: str | None
    violation_line: int | None
    stdout_parts: list[str]
    stdout_size: int
    output_exceeded: bool

    def __init__(self, output_cap: int = 1024 * 1024) -> None:
        self.reset(output_cap)

    def reset(self, output_cap: int) -> None:
        self.output_cap = output_cap
        self.violation = None
        self.violation_line = None
        self.stdout_parts = []
        self.stdout_size = 0
        self.output_exceeded = False

    def write_stdout(self, text: str) -> None:
        self.stdout_size += len(text)
        if self.stdout_size > self.output_cap:
            self.output_exceeded = True
            raise OutputLimit("printed output exceeds the output limit")
        self.stdout_parts.append(text)

    def stdout(self) -> str:
        return "".join(self.stdout_parts)


STATE = JobState()


def _tool_line() -> int | None:
    """Line of the innermost tool frame on the current stack."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename in TOOL_FILENAMES:
            return frame.f_lineno
        frame = frame.f_back
    return None


def refuse(what: str) -> PolicyViolation:
    """Record a refusal (the first one decides the reply) and return the
    exception to raise: ``raise refuse("...")``."""
    line = _tool_line()
    message = f"line {line}: {what}" if line is not None else what
    if STATE.violation is None:
        STATE.violation = message
        STATE.violation_line = line
    return PolicyViolation(message)


# ---------------------------------------------------------------------------
# Classes
# ---------------------------------------------------------------------------

_TOOL_CLASSES: weakref.WeakSet[type] = weakref.WeakSet()
# Classes `type(x)` may return and `setattr`/item writes may target. Facades
# add the classes they offer via `register_safe_types`.
_SAFE_TYPES: set[type] = {
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    list,
    tuple,
    dict,
    set,
    frozenset,
    range,
    slice,
    type(None),
    object,
}
_WRITABLE_TYPES: set[type] = {dict, list, set}


def register_safe_types(types: tuple[type, ...], *, writable: bool = False) -> None:
    """Let `type()` return these classes (and, if writable, let the tool
    assign items/attributes on their instances)."""
    _SAFE_TYPES.update(types)
    if writable:
        _WRITABLE_TYPES.update(types)


def is_tool_class(cls: Any) -> bool:
    """True if the class was created by tool code (through `tool_metaclass`)."""
    try:
        return cls in _TOOL_CLASSES
    except TypeError:
        return False


def is_safe_type(kind: type) -> bool:
    """True if `type()` may hand this class to tool code.

    Exception classes are, so tools can re-raise ``type(e)(...)``; but never
    MemoryError (a tool holding it could fake a memory limit) nor anything
    outside `Exception` (the sandbox's own control exceptions)."""
    if kind in _SAFE_TYPES or kind in _TOOL_CLASSES:
        return True
    return issubclass(kind, Exception) and not issubclass(kind, MemoryError)


def tool_metaclass(name: str, bases: tuple[Any, ...], namespace: dict[str, Any], **kwargs: Any) -> type:
    """Builds every class the tool defines (RestrictedPython compiles
    ``class A(B)`` to ``class A(B, metaclass=__metaclass__)``)."""
    if kwargs:
        raise refuse("class keyword arguments are not allowed")
    for base in bases:
        if not isinstance(base, type):
            raise refuse(f'class "{name}" has a base that is not a class')
        # A base with its own metaclass (ABCMeta, EnumMeta...) would run
        # library class-creation hooks on tool-controlled namespaces.
        if type(base) is not type:
            raise refuse(f'class "{name}": base "{base.__name__}" has a custom metaclass')
        if issubclass(base, type):
            raise refuse(f'class "{name}": metaclasses are not allowed')
    cls = type(name, bases, namespace)
    _TOOL_CLASSES.add(cls)
    return cls


# ---------------------------------------------------------------------------
# Attribute, item, iteration and write guards
# ---------------------------------------------------------------------------

_MISSING = object()
_FORMAT_METHODS = frozenset({"format", "format_map"})
_PATTERN_TYPE = type(re.compile(""))
_MATCH_TYPE = type(re.match("", ""))


def _check_name(name: Any) -> str:
    if type(name) is not str:
        # A str subclass could override startswith/__eq__ and slip past the
        # checks below (the "fakestring" attack).
        raise refuse(f"attribute names must be plain str, not {type(name).__name__}")
    if name.startswith("_") and name not in READABLE_DUNDERS:
        raise refuse(f'attribute name "{name}" is not allowed (names starting with "_" are private)')
    if name in BLOCKED_ATTRIBUTES:
        raise refuse(f'attribute "{name}" is not allowed (frame, code, generator and class-hierarchy internals)')
    return name


def _is_str_or_str_type(obj: Any) -> bool:
    return isinstance(obj, str) or (isinstance(obj, type) and issubclass(obj, str))


def guarded_getattr(obj: Any, name: Any, default: Any = _MISSING) -> Any:
    """``obj.name`` under the policy; also the sandbox's ``getattr``."""
    name = _check_name(name)
    if name in _FORMAT_METHODS:
        if type(obj) is super:
            raise refuse(f'"{name}" through super() is not allowed')
        if _is_str_or_str_type(obj):
            return _bound_formatter(obj, name)
    if name == "scanner" and type(obj) is _PATTERN_TYPE:
        raise refuse('attribute "scanner" of regular expressions is not allowed')
    if name in READABLE_DUNDERS:
        return _read_dunder(obj, name, default)
    if name == "register" and isinstance(obj, abc.ABCMeta):
        # ABCMeta.register writes into a library class's registry: a tool
        # class would pass isinstance(x, fractions.Fraction) in library code.
        raise refuse(f'"{obj.__name__}.register" is not allowed (it changes a library class)')
    if name == "obj" and isinstance(obj, AttributeError):
        # The interpreter stores the object whose lookup failed there: from
        # an error raised inside library code, a library-internal object.
        raise refuse('attribute "obj" of AttributeError is not allowed (it can hold a library-internal object)')
    if default is _MISSING:
        value = getattr(obj, name)
    else:
        try:
            value = getattr(obj, name)
        except AttributeError:
            return default
    if type(value) is FunctionType:
        return _checked_function(obj, name, value)
    return value


# ---------------------------------------------------------------------------
# Unbound library methods
#
# A method read from a class is a plain function that takes any object as
# `self`. C methods check the type of `self` themselves; methods written in
# Python do not, so `collections.ChainMap.__init__(json.dumps, {})` or
# `re.error.__init__(some_function, ...)` would set attributes on library
# objects the write guard protects, and other methods would read private
# attributes of whatever they are given. The rule: a library function is
# handed out only as a module-level function (from a facade) or bound to an
# object; read from a class it is wrapped so that its first argument must be
# an instance of that class (and, for __init__, an object the tool may write).
# ---------------------------------------------------------------------------


def _is_tool_function(func: FunctionType) -> bool:
    return func.__code__.co_filename in TOOL_FILENAMES


def _is_method(func: FunctionType) -> bool:
    """Defined in a class body (``Class.name``), not at module level and not
    a closure (``outer.<locals>.inner``)."""
    head, dot, _ = func.__qualname__.rpartition(".")
    return bool(dot) and not head.endswith("<locals>")


def _class_attribute(cls: type, name: str) -> Any:
    for base in cls.__mro__:
        raw = base.__dict__.get(name, _MISSING)
        if raw is not _MISSING:
            return raw
    return _MISSING


def _checked_function(owner: Any, name: str, func: FunctionType) -> Any:
    if _is_tool_function(func) or not _is_method(func):
        return func
    if isinstance(owner, type):
        if isinstance(_class_attribute(owner, name), staticmethod):
            return func  # takes no `self`: an ordinary function
        return UnboundMethod(owner, func)
    # Reached through an instance's own dict (functools.lru_cache copies a
    # wrapped class's namespace onto its wrapper), a property's fget or a
    # two-argument super(): there is no class to check `self` against.
    raise refuse(f'"{func.__qualname__}" is a method of a library class; it is only available bound to an object')


class UnboundMethod:
    """A library class's method read from the class (``Fraction.limit_denominator``,
    ``Base.__init__``): callable only with an instance of that class first,
    and for ``__init__`` only with an object the tool may write to."""

    __slots__ = ("_owner", "_func", "_init")

    def __init__(self, owner: type, func: Callable[..., Any], init: bool = False) -> None:
        self._owner = owner
        self._func = func
        self._init = init

    @property
    def __name__(self) -> str:  # the one readable dunder that applies (a plain str)
        return str(getattr(self._func, "__name__", "method"))

    def _label(self) -> str:
        return f"{self._owner.__name__}.{self.__name__}"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not args or not isinstance(args[0], self._owner):
            raise refuse(
                f"{self._label()}() needs a {self._owner.__name__} object as its first argument "
                "(library methods are not applied to other objects)"
            )
        if self._init:
            write_guard(args[0])
        return self._func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<method {self._label()}>"


def _read_init(obj: Any) -> Any:
    if type(obj) is super:
        # super().__init__(...): bound to the super object's `self`, which
        # must be writable (a tool object); with a class as its second
        # argument the result is unbound and checked like any class's.
        target: Any = getattr(obj, "__self__")  # noqa: B009 - untyped for mypy (a super object)
        value = getattr(obj, "__init__")  # noqa: B009
        if isinstance(target, type):
            if type(value) is FunctionType and _is_tool_function(value):
                return value
            return UnboundMethod(target, value, init=True)
        if target is not None:
            write_guard(target)
        return value
    if isinstance(obj, type):
        value = getattr(obj, "__init__")  # noqa: B009 - read from the instance, untyped for mypy
        if type(value) is FunctionType and _is_tool_function(value):
            return value  # the tool's own __init__ guards its own writes
        return UnboundMethod(obj, value, init=True)
    # A bound __init__ of an arbitrary object would re-initialise library state.
    raise refuse('attribute "__init__" is only readable on super() and on classes')


def _read_dunder(obj: Any, name: str, default: Any) -> Any:
    if name == "__init__":
        return _read_init(obj)
    try:
        value = getattr(obj, name)
    except AttributeError:
        if default is _MISSING:
            raise
        return default
    if type(value) is not str:
        raise refuse(f'attribute "{name}" is only readable when it is a plain str')
    return value


def guarded_hasattr(obj: Any, name: Any) -> bool:
    """``hasattr`` that answers False for names the policy refuses."""
    if type(name) is not str or (name.startswith("_") and name not in READABLE_DUNDERS) or name in BLOCKED_ATTRIBUTES:
        return False
    try:
        guarded_getattr(obj, name)
    except AttributeError:
        return False
    return True


def write_guard(obj: Any) -> Any:
    """``_write_``: the object a store/delete of an item or attribute may
    go to. Only plain containers and the tool's own classes are writable."""
    kind = type(obj)
    if kind in _WRITABLE_TYPES or kind in _TOOL_CLASSES or (isinstance(obj, type) and obj in _TOOL_CLASSES):
        return obj
    raise refuse(f"cannot modify {kind.__name__} objects (only the tool's own objects and containers)")


def guarded_setattr(obj: Any, name: Any, value: Any) -> None:
    setattr(write_guard(obj), _check_name(name), value)


def guarded_delattr(obj: Any, name: Any) -> None:
    delattr(write_guard(obj), _check_name(name))


def guarded_getitem(obj: Any, index: Any) -> Any:
    """``obj[index]``: item reads reach only what the container holds."""
    return obj[index]


def guarded_iter(obj: Any) -> Any:
    """``_getiter_``: the single place iteration goes through."""
    return iter(obj)


_INPLACE_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "*=": operator.imul,
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    "%=": operator.imod,
    "**=": operator.ipow,
    "<<=": operator.ilshift,
    ">>=": operator.irshift,
    "&=": operator.iand,
    "^=": operator.ixor,
    "|=": operator.ior,
    "@=": operator.imatmul,
}


def inplacevar(op: str, x: Any, y: Any) -> Any:
    """``_inplacevar_``: ``x op= y`` for a plain name ``x``."""
    fn = _INPLACE_OPS.get(op)
    if fn is None:
        raise refuse(f'augmented assignment "{op}" is not allowed')
    if op == "*=" and type(y) is int and isinstance(x, (str, bytes, list, tuple)):
        if len(x) * y > MAX_SEQUENCE_ITEMS:
            raise MemoryError(f"sequence repetition would exceed {MAX_SEQUENCE_ITEMS} items")
    return fn(x, y)


# ---------------------------------------------------------------------------
# Guarded str.format / format_map
# ---------------------------------------------------------------------------


class _GuardedFormatter(string.Formatter):
    """Resolves ``{a.b[c]}`` fields through the sandbox guards, which is what
    plain str.format skips (CVE-2023-41039 and friends)."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> tuple[Any, Any]:
        first, rest = _string.formatter_field_name_split(field_name)
        obj = self.get_value(first, args, kwargs)
        for is_attr, key in rest:
            obj = guarded_getattr(obj, key) if is_attr else guarded_getitem(obj, key)
        return obj, first


_FORMATTER = _GuardedFormatter()


def safe_format(template: str, /, *args: Any, **kwargs: Any) -> str:
    """``template.format(*args, **kwargs)`` with guarded field lookups."""
    if not isinstance(template, str):
        raise TypeError("format() needs a str template")
    return _FORMATTER.vformat(str.__str__(template), args, kwargs)


def safe_format_map(template: str, mapping: Any, /) -> str:
    """``template.format_map(mapping)`` with guarded field lookups."""
    if not isinstance(template, str):
        raise TypeError("format_map() needs a str template")
    return _FORMATTER.vformat(str.__str__(template), (), mapping)


def _bound_formatter(obj: Any, name: str) -> Callable[..., str]:
    if isinstance(obj, type):  # str.format(template, ...): unbound use
        return safe_format if name == "format" else safe_format_map
    if name == "format":

        def format(*args: Any, **kwargs: Any) -> str:
            return safe_format(obj, *args, **kwargs)

        return format

    def format_map(mapping: Any) -> str:
        return safe_format_map(obj, mapping)

    return format_map


# The decimal context and library classes the facades offer are registered
# by facades.py; these are always safe to name with type().
register_safe_types(
    (
        fractions.Fraction,
        decimal.Decimal,
        datetime.date,
        datetime.datetime,
        datetime.time,
        datetime.timedelta,
        datetime.timezone,
        collections.deque,
        collections.Counter,
        collections.OrderedDict,
        collections.defaultdict,
        _PATTERN_TYPE,
        _MATCH_TYPE,
    )
)
register_safe_types(
    (
        collections.deque,
        collections.Counter,
        collections.OrderedDict,
        collections.defaultdict,
        collections.ChainMap,
        decimal.Context,
    ),
    writable=True,
)
