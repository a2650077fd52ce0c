"""The restricted policy: what sandboxed tool code may use, as data, and the
guards that enforce it at run time.

RestrictedPython rewrites the tool's source so that attribute reads, item
reads, iteration, unpacking, writes, augmented assignment, ``print`` and
``*args`` calls go through hook functions (``_getattr_``, ``_getitem_`` ...).
This module supplies those hooks and the builtins. It is a *policy* layer,
not a boundary: the process layer (rlimits, own process group, kill from
outside) or a container contains whatever the policy misses.

Any policy refusal is sticky: the first one is recorded in `STATE` and the
whole call is reported as ``blocked`` even if the tool catches the exception.
That way a tool cannot probe the guards with ``try``/``except``.

Imports only the standard library and RestrictedPython (this file is copied
into the Docker image next to ``execute.py``).
"""

from __future__ import annotations

import ast
import builtins
import collections
import decimal
import fractions
import datetime
import operator
import re
import string
import sys
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

import _string  # C helper behind str.format; imported here so forked children never import
from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence
from RestrictedPython.transformer import INSPECT_ATTRIBUTES, RestrictingNodeTransformer

__all__ = [
    "ALLOWED_BUILTINS",
    "ALLOWED_EXCEPTIONS",
    "ALLOWED_MODULES",
    "BLOCKED_ATTRIBUTES",
    "EXTRA_MAGIC_METHODS",
    "JobState",
    "MAX_SEQUENCE_ITEMS",
    "READABLE_DUNDERS",
    "ModuleRule",
    "OutputLimit",
    "POLICY",
    "Policy",
    "PolicyViolation",
    "REFUSED_CONSTRUCTS",
    "STATE",
    "ToolTransformer",
    "TOOL_FILENAMES",
    "build_builtins",
    "guard_hooks",
    "guarded_delattr",
    "guarded_getattr",
    "guarded_getitem",
    "guarded_hasattr",
    "guarded_iter",
    "guarded_setattr",
    "inplacevar",
    "is_tool_class",
    "refuse",
    "register_safe_types",
    "safe_format",
    "safe_format_map",
    "tool_metaclass",
    "write_guard",
]

# ---------------------------------------------------------------------------
# The policy as data. docs/security.md documents exactly this; a test checks
# that every builtin and module named here is named in the doc.
# ---------------------------------------------------------------------------

ALLOWED_BUILTINS: dict[str, str] = {
    # constants and plain constructors of immutable values
    "None": "constant",
    "True": "constant",
    "False": "constant",
    "Ellipsis": "constant",
    "NotImplemented": "constant returned by comparison methods",
    "bool": "value constructor",
    "int": "value constructor (int->str digit limit stays at the interpreter default)",
    "float": "value constructor",
    "complex": "value constructor",
    "str": "value constructor; its format/format_map are replaced by the guarded formatter",
    "bytes": "value constructor (the real type)",
    "slice": "value constructor",
    "object": "base class for `class A(object)`; object's dunder attributes stay unreachable",
    # containers: the real types, because tools need their identity
    # (isinstance(x, list), type(x) is dict, class C(dict)); in this policy
    # _getiter_ grants nothing per item, so C-level iteration loses nothing
    "list": "container type (real type: isinstance and subclassing work)",
    "tuple": "container type (real type)",
    "dict": "container type (real type)",
    "set": "container type (real type)",
    "frozenset": "container type (real type)",
    "range": "lazy integer sequence; memory and CPU limits bound what is built from it",
    # iteration helpers, each routed through the iteration guard
    "iter": "one-argument form goes through _getiter_; two-argument form calls a callable",
    "next": "advances an iterator",
    "enumerate": "iterates through _getiter_",
    "zip": "iterates through _getiter_",
    "map": "iterates through _getiter_",
    "filter": "iterates through _getiter_",
    "reversed": "reverses known sequences directly, anything else via a guarded list",
    "sorted": "iterates through _getiter_",
    "min": "iterates through _getiter_",
    "max": "iterates through _getiter_",
    "sum": "iterates through _getiter_",
    "any": "iterates through _getiter_",
    "all": "iterates through _getiter_",
    "len": "size of a container",
    # numbers and text
    "abs": "arithmetic",
    "round": "arithmetic",
    "divmod": "arithmetic",
    "pow": "arithmetic; huge results are stopped by the CPU and memory limits",
    "chr": "text",
    "ord": "text",
    "hex": "text",
    "oct": "text",
    "bin": "text",
    "ascii": "text",
    "repr": "text",
    "format": "format(value, spec): a spec is not a field name, so no attribute traversal",
    "hash": "hashing for dict keys and sets",
    "id": "object identity (an integer, reveals nothing usable)",
    "callable": "predicate",
    # introspection, each guarded
    "isinstance": "type test; cannot reach any object",
    "issubclass": "type test; both arguments must already be classes the tool holds",
    "type": "one argument only, and only for value, container, facade and tool classes",
    "getattr": "the same guard as `a.b`: no private names, no frame/code internals, guarded format",
    "hasattr": "guarded: False for names the policy refuses (without blocking the call)",
    "setattr": "only on instances and classes the tool defined, public names only",
    "delattr": "only on instances and classes the tool defined, public names only",
    "print": "collected into the reply's stdout (capped), never the real stdout",
    # class support
    "staticmethod": "decorator for small helper classes",
    "classmethod": "decorator for small helper classes",
    "property": "decorator for small helper classes",
    "super": "zero-argument super() in tool classes; format lookups through it are refused",
}

# Exception classes: raising and catching them is how tools report errors.
ALLOWED_EXCEPTIONS: tuple[str, ...] = (
    "ArithmeticError", "AssertionError", "AttributeError", "BaseException", "EOFError",
    "Exception", "FloatingPointError", "GeneratorExit", "ImportError", "IndexError",
    "KeyError", "LookupError", "MemoryError", "NameError", "NotImplementedError",
    "OverflowError", "RecursionError", "RuntimeError", "StopIteration", "TypeError",
    "UnboundLocalError", "UnicodeDecodeError", "UnicodeEncodeError", "UnicodeError",
    "ValueError", "ZeroDivisionError", "ModuleNotFoundError",
    "Warning", "UserWarning", "DeprecationWarning", "RuntimeWarning",
)


@dataclass(frozen=True)
class ModuleRule:
    """One importable module: why it is offered and which names its facade has."""

    why: str
    names: tuple[str, ...]


_MATH_NAMES = tuple(sorted(n for n in dir(__import__("math")) if not n.startswith("_")))

ALLOWED_MODULES: dict[str, ModuleRule] = {
    "math": ModuleRule("pure numeric functions and constants (a C module with no module-walk attributes)", _MATH_NAMES),
    "itertools": ModuleRule(
        "combinatorics and lazy iteration; every function only iterates what it is given",
        ("accumulate", "chain", "combinations", "combinations_with_replacement", "compress", "count",
         "cycle", "dropwhile", "filterfalse", "groupby", "islice", "pairwise", "permutations",
         "product", "repeat", "starmap", "takewhile", "tee", "zip_longest"),
    ),
    "functools": ModuleRule(
        "reduce/partial/caching; partial only ever wraps callables the tool already holds, "
        "and the sandbox getattr is itself guarded (see attack smol-cve-2025-5120)",
        ("cache", "cmp_to_key", "lru_cache", "partial", "reduce", "total_ordering"),
    ),
    "collections": ModuleRule(
        "container types; namedtuple builds ordinary tuple subclasses",
        ("ChainMap", "Counter", "OrderedDict", "defaultdict", "deque", "namedtuple"),
    ),
    "heapq": ModuleRule(
        "priority queues on lists",
        ("heapify", "heappop", "heappush", "heappushpop", "heapreplace", "merge", "nlargest", "nsmallest"),
    ),
    "bisect": ModuleRule(
        "binary search on lists",
        ("bisect", "bisect_left", "bisect_right", "insort", "insort_left", "insort_right"),
    ),
    "fractions": ModuleRule("exact rational arithmetic", ("Fraction",)),
    "decimal": ModuleRule(
        "decimal arithmetic; the context is reset for every call",
        ("Context", "Decimal", "DivisionByZero", "InvalidOperation", "ROUND_CEILING", "ROUND_DOWN",
         "ROUND_FLOOR", "ROUND_HALF_DOWN", "ROUND_HALF_EVEN", "ROUND_HALF_UP", "ROUND_UP",
         "getcontext", "localcontext"),
    ),
    "statistics": ModuleRule(
        "descriptive statistics over numbers",
        ("StatisticsError", "fmean", "geometric_mean", "harmonic_mean", "mean", "median", "median_high",
         "median_low", "mode", "multimode", "pstdev", "pvariance", "quantiles", "stdev", "variance"),
    ),
    "random": ModuleRule(
        "bound methods of a fresh Random() instance reseeded per call, never the module",
        ("choice", "choices", "gauss", "randint", "random", "randrange", "sample", "seed", "shuffle", "uniform"),
    ),
    "string": ModuleRule(
        "character-class constants and capwords; Formatter and Template are not offered",
        ("ascii_letters", "ascii_lowercase", "ascii_uppercase", "capwords", "digits", "hexdigits",
         "octdigits", "printable", "punctuation", "whitespace"),
    ),
    "re": ModuleRule(
        "regular expressions; pattern.scanner is refused, the module object never reachable",
        ("A", "ASCII", "DOTALL", "I", "IGNORECASE", "M", "MULTILINE", "S", "VERBOSE", "X", "compile",
         "error", "escape", "findall", "finditer", "fullmatch", "match", "search", "split", "sub", "subn"),
    ),
    "json": ModuleRule(
        "loads/dumps only: no encoder/decoder classes and no json.codecs",
        ("JSONDecodeError", "dumps", "loads"),
    ),
    "datetime": ModuleRule(
        "date and time value classes (C types with no module-walk attributes)",
        ("MAXYEAR", "MINYEAR", "date", "datetime", "time", "timedelta", "timezone"),
    ),
    "typing": ModuleRule(
        "annotation names only: inert placeholders, usable as List[int] or Optional[str]",
        ("Any", "Callable", "DefaultDict", "Deque", "Dict", "FrozenSet", "Generator", "Iterable",
         "Iterator", "List", "Literal", "Mapping", "Optional", "Sequence", "Set", "Tuple", "TypeVar",
         "Union", "cast"),
    ),
    "copy": ModuleRule("copy/deepcopy of values the tool built", ("copy", "deepcopy")),
}

REFUSED_CONSTRUCTS: dict[str, str] = {
    "names starting with _": "private and dunder names (variables, attributes, arguments, imports) "
    "reach interpreter internals and the guard hooks themselves",
    "frame, code and generator attributes": "gi_frame, f_back, tb_frame, cr_frame, ag_frame, f_globals... "
    "walk up to the host's frames and builtins",
    "import of a module not in the allowlist": "os, sys, subprocess, socket, importlib, ... "
    "and any relative import",
    "from x import *": "could bind names over the guard hooks",
    "exec, eval, compile, open, input, globals, locals, vars, dir, breakpoint, __import__": "new code, "
    "I/O and namespace access; not builtins in the sandbox",
    "async def, await, async for/with": "coroutine objects expose frames (cr_frame)",
    "try/except*": "exception groups were a RestrictedPython escape",
    "nonlocal": "not supported by RestrictedPython",
    "match statements": "not yet reviewed by RestrictedPython",
    "metaclass= and three-argument type()": "classes are always built by the sandbox's metaclass",
    "augmented assignment to slices": "x[a:b] += y (x.a += 1 and x[i] += 1 are rewritten into guarded steps)",
    "string.Formatter, operator.attrgetter/methodcaller": "they do attribute lookups in C, "
    "past the getattr guard (not offered by any facade)",
    "writes to objects the tool did not create": "facades, functions and library objects are read-only; "
    "dict, list, set and the collections containers are writable",
    "unguarded str.format/format_map": "format fields are resolved through the getattr guard",
}

# Magic methods a tool class may define beyond RestrictedPython's own list
# (__init__, __contains__ and the rich comparisons). They only ever run inside
# the sandboxed process: results are converted to JSON by exact type, so the
# host never calls them. Hooks that change attribute lookup, class creation or
# pickling (__getattr__, __getattribute__, __init_subclass__, __set_name__,
# __class_getitem__, __reduce__, __del__, __new__...) stay refused.
EXTRA_MAGIC_METHODS: frozenset[str] = frozenset({
    "__repr__", "__str__", "__hash__", "__len__", "__bool__", "__iter__", "__next__",
    "__getitem__", "__setitem__", "__delitem__", "__call__", "__enter__", "__exit__", "__missing__",
    "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__floordiv__",
    "__mod__", "__neg__", "__abs__", "__iadd__", "__isub__",
})

# Attributes that are public by name but lead to frames, code or generator
# internals (RestrictedPython's list), plus a few more of the same kind.
BLOCKED_ATTRIBUTES: frozenset[str] = frozenset(INSPECT_ATTRIBUTES) | frozenset({
    "tb_frame", "tb_next", "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "cr_await",
    "cr_origin", "ag_frame", "ag_code", "ag_await", "f_back", "f_globals", "f_locals", "f_builtins",
    "f_code", "f_trace", "co_code", "mro", "func_globals", "func_code",
})

# Dunder attributes a tool may *read* (checked at run time): class and
# function names, which must be plain str, for messages and reprs; and
# __init__ on super() or a class, for super().__init__(...) and
# Base.__init__(self, ...).
READABLE_DUNDERS: frozenset[str] = frozenset({"__name__", "__qualname__", "__init__"})

TOOL_FILENAMES: tuple[str, ...] = ("<tool>", "<snippet>")

# Largest sequence `x *= n` may build; the memory limit is the real bound,
# this just fails fast and clearly.
MAX_SEQUENCE_ITEMS = 50_000_000


@dataclass(frozen=True)
class Policy:
    """The whole restricted policy in one structure."""

    builtins: dict[str, str]
    exceptions: tuple[str, ...]
    modules: dict[str, ModuleRule]
    refused: dict[str, str]
    magic_methods: frozenset[str]
    blocked_attributes: frozenset[str]


POLICY = Policy(
    builtins=ALLOWED_BUILTINS,
    exceptions=ALLOWED_EXCEPTIONS,
    modules=ALLOWED_MODULES,
    refused=REFUSED_CONSTRUCTS,
    magic_methods=EXTRA_MAGIC_METHODS,
    blocked_attributes=BLOCKED_ATTRIBUTES,
)

# ---------------------------------------------------------------------------
# Per-call state and refusals
# ---------------------------------------------------------------------------


class PolicyViolation(BaseException):
    """Raised by a guard. A BaseException so `except Exception` in the tool
    does not swallow it; the refusal is recorded in `STATE` regardless."""


class OutputLimit(BaseException):
    """Printed output or the result outgrew the call's output cap."""


@dataclass
class JobState:
    """What the guards record during one call (one call per process in
    production; reset per call so in-process use stays correct)."""

    output_cap: int = 1024 * 1024
    violation: str | None = None
    violation_line: int | None = None
    stdout_parts: list[str] = field(default_factory=list)
    stdout_size: int = 0
    output_exceeded: bool = False

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
    frame = sys._getframe(1)
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
# Compile-time policy
# ---------------------------------------------------------------------------


class ToolTransformer(RestrictingNodeTransformer):
    """RestrictedPython's transformer with the additions generated tools
    need: more magic methods in tool classes (EXTRA_MAGIC_METHODS), reads of
    READABLE_DUNDERS and of the global ``__name__``, annotated assignments,
    and guarded ``a.b += c`` / ``a[i] += c``. ``match`` is refused. Every
    other rule is RestrictedPython's own."""

    def check_name(self, node: Any, name: str | None, allow_magic_methods: bool = False) -> None:
        if allow_magic_methods and name in EXTRA_MAGIC_METHODS and getattr(node, "col_offset", 0) != 0:
            return
        super().check_name(node, name, allow_magic_methods)

    def visit_Name(self, node: ast.Name) -> Any:
        # Reading __name__ ("tool") lets `if __name__ == "__main__":` blocks,
        # common in generated tools, compile; binding it stays refused.
        if node.id == "__name__" and isinstance(node.ctx, ast.Load):
            return node
        return super().visit_Name(node)

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        # type(self).__name__ and func.__name__ are everywhere in generated
        # __repr__s and messages; they are plain strings (the guard checks).
        if node.attr in READABLE_DUNDERS and isinstance(node.ctx, ast.Load):
            call = _call("_getattr_", self.visit(node.value), ast.Constant(node.attr))
            ast.copy_location(call, node)
            ast.fix_missing_locations(call)
            return call
        return super().visit_Attribute(node)

    def visit_Match(self, node: ast.AST) -> Any:
        # Class patterns look attributes up in C, past _getattr_.
        self.not_allowed(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> Any:
        """``x: T = v`` becomes ``x = v``: the annotation is dropped unevaluated."""
        if node.value is None:
            return ast.copy_location(ast.Pass(), node)
        assign = ast.Assign(targets=[node.target], value=node.value)
        ast.copy_location(assign, node)
        ast.fix_missing_locations(assign)
        return self.visit(assign)

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        """``a.b += c`` and ``a[i] += c``, which RestrictedPython refuses but
        tools write constantly, as guarded single-evaluation steps::

            t = _write_(a);  t.b = _inplacevar_("+=", _getattr_(t, "b"), c)
            t = _write_(a); k = i;  t[k] = _inplacevar_("+=", _getitem_(t, k), c)
        """
        target = node.target
        if isinstance(target, ast.Name) or (
                isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Slice)):
            return super().visit_AugAssign(node)
        if not isinstance(target, (ast.Attribute, ast.Subscript)):
            return super().visit_AugAssign(node)
        op = _AUG_OPS.get(type(node.op))
        if op is None:
            return super().visit_AugAssign(node)
        # The write guard runs first: the target must be writable before
        # anything is read or computed, as for a plain `a.b = c`.
        obj_name = self.gen_tmp_name()
        statements: list[ast.stmt] = [ast.Assign(targets=[ast.Name(obj_name, ast.Store())],
                                                 value=_call("_write_", self.visit(target.value)))]
        value = self.visit(node.value)
        if isinstance(target, ast.Attribute):
            # Run the ordinary attribute-name checks (private names, frames).
            probe = ast.Attribute(value=ast.Constant(None), attr=target.attr, ctx=ast.Load())
            ast.copy_location(probe, target)
            ast.fix_missing_locations(probe)
            read = self.visit(probe)  # _getattr_(None, "b"); point it at the temporary
            if not isinstance(read, ast.Call):
                return node
            read.args[0] = ast.Name(obj_name, ast.Load())
            store: ast.expr = ast.Attribute(value=ast.Name(obj_name, ast.Load()), attr=target.attr,
                                            ctx=ast.Store())
        else:
            key_name = self.gen_tmp_name()
            statements.append(ast.Assign(targets=[ast.Name(key_name, ast.Store())], value=self.visit(target.slice)))
            read = _call("_getitem_", ast.Name(obj_name, ast.Load()), ast.Name(key_name, ast.Load()))
            store = ast.Subscript(value=ast.Name(obj_name, ast.Load()), slice=ast.Name(key_name, ast.Load()),
                                  ctx=ast.Store())
        statements.append(ast.Assign(targets=[store], value=_call("_inplacevar_", ast.Constant(op), read, value)))
        for statement in statements:
            ast.copy_location(statement, node)
            ast.fix_missing_locations(statement)
        return statements


def _call(name: str, *args: ast.expr) -> ast.Call:
    return ast.Call(func=ast.Name(name, ast.Load()), args=list(args), keywords=[])


_AUG_OPS: dict[type, str] = {
    ast.Add: "+=", ast.Sub: "-=", ast.Mult: "*=", ast.Div: "/=", ast.Mod: "%=", ast.Pow: "**=",
    ast.LShift: "<<=", ast.RShift: ">>=", ast.BitOr: "|=", ast.BitXor: "^=", ast.BitAnd: "&=",
    ast.FloorDiv: "//=", ast.MatMult: "@=",
}


# ---------------------------------------------------------------------------
# Classes
# ---------------------------------------------------------------------------

_TOOL_CLASSES: "weakref.WeakSet[type]" = weakref.WeakSet()
# Classes `type(x)` may return and `setattr`/item writes may target. Facades
# add the classes they offer via `register_safe_types`.
_SAFE_TYPES: set[type] = {
    bool, int, float, complex, str, bytes, list, tuple, dict, set, frozenset, range, slice,
    type(None), object,
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


def tool_metaclass(name: str, bases: tuple, namespace: dict, **kwargs: Any) -> type:
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
    if default is _MISSING:
        return getattr(obj, name)
    try:
        return getattr(obj, name)
    except AttributeError:
        return default


def _read_dunder(obj: Any, name: str, default: Any) -> Any:
    if name == "__init__" and not (type(obj) is super or isinstance(obj, type)):
        # super().__init__(...) and Base.__init__(self, ...) only: a bound
        # __init__ of an arbitrary object would re-initialise library state.
        raise refuse('attribute "__init__" is only readable on super() and on classes')
    try:
        value = getattr(obj, name)
    except AttributeError:
        if default is _MISSING:
            raise
        return default
    if name != "__init__" and type(value) is not str:
        raise refuse(f'attribute "{name}" is only readable when it is a plain str')
    return value


def guarded_hasattr(obj: Any, name: Any) -> bool:
    """``hasattr`` that answers False for names the policy refuses."""
    if type(name) is not str or (name.startswith("_") and name not in READABLE_DUNDERS) \
            or name in BLOCKED_ATTRIBUTES:
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


def _apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return func(*args, **kwargs)


_INPLACE_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
    "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow, "<<=": operator.ilshift,
    ">>=": operator.irshift, "&=": operator.iand, "^=": operator.ixor, "|=": operator.ior,
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


# ---------------------------------------------------------------------------
# Builtins
# ---------------------------------------------------------------------------


class _Printer:
    """``_print_``: RestrictedPython creates one per function that prints.
    Each keeps its own text (for ``printed``) and also feeds the call's
    capped stdout."""

    def __init__(self, _getattr_: Any = None) -> None:
        self.parts: list[str] = []

    def _call_print(self, *objects: Any, sep: str | None = " ", end: str | None = "\n",
                    file: Any = None, flush: bool = False) -> None:
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


def _sorted(iterable: Any, /, *, key: Any = None, reverse: bool = False) -> list:
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


def _type(*args: Any) -> type:
    if len(args) != 1:
        raise refuse("type() with more than one argument (creating classes) is not allowed")
    kind = type(args[0])
    if kind in _SAFE_TYPES or kind in _TOOL_CLASSES or issubclass(kind, BaseException):
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
    table["__build_class__"] = builtins.__build_class__
    table["__import__"] = import_hook
    return table


def guard_hooks() -> dict[str, Any]:
    """The hook names RestrictedPython's compiled code calls, bound to the guards."""
    return {
        "_getattr_": guarded_getattr,
        "_getitem_": guarded_getitem,
        "_getiter_": guarded_iter,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_write_": write_guard,
        "_inplacevar_": inplacevar,
        "_print_": _Printer,
        "_apply_": _apply,
        "__metaclass__": tool_metaclass,
        "__name__": "tool",
    }


# The decimal context and library classes the facades offer are registered
# by facades.py; these are always safe to name with type().
register_safe_types((fractions.Fraction, decimal.Decimal, datetime.date, datetime.datetime, datetime.time,
                     datetime.timedelta, datetime.timezone, collections.deque, collections.Counter,
                     collections.OrderedDict, collections.defaultdict, _PATTERN_TYPE, _MATCH_TYPE))
register_safe_types((collections.deque, collections.Counter, collections.OrderedDict, collections.defaultdict,
                     collections.ChainMap, decimal.Context), writable=True)
