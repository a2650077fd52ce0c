"""The restricted policy as data: which builtins, modules and module members
sandboxed tool code may use (each with a one-line why), which constructs are
refused, and the attribute lists the guards enforce.

`POLICY` is the single structure; docs/security.md documents exactly it and a
test checks the doc against it. The code that enforces it lives in
`transform.py` (compile time), `guards.py` and `toolbuiltins.py` (run time),
`facades.py` (imports) and `execute.py` (the call and its reply).

Imports only the standard library and RestrictedPython (this file is copied
into the Docker image next to ``execute.py``).
"""

from __future__ import annotations

import re

from RestrictedPython.transformer import INSPECT_ATTRIBUTES

__all__ = [
    "ABSENT_BUILTINS",
    "ALLOWED_BUILTINS",
    "ALLOWED_EXCEPTIONS",
    "ALLOWED_MODULES",
    "BLOCKED_ATTRIBUTES",
    "EXCEPTION_ALIASES",
    "EXTRA_MAGIC_METHODS",
    "MAX_SEQUENCE_ITEMS",
    "ModuleRule",
    "POLICY",
    "Policy",
    "READABLE_DUNDERS",
    "REFUSED_CONSTRUCTS",
    "TOOL_FILENAMES",
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
# Not BaseException (it would catch the sandbox's own control exceptions:
# see EXCEPTION_ALIASES) and not MemoryError (see ABSENT_BUILTINS).
ALLOWED_EXCEPTIONS: tuple[str, ...] = (
    "ArithmeticError",
    "AssertionError",
    "AttributeError",
    "EOFError",
    "Exception",
    "FloatingPointError",
    "GeneratorExit",
    "ImportError",
    "IndexError",
    "KeyError",
    "LookupError",
    "NameError",
    "NotImplementedError",
    "OverflowError",
    "RecursionError",
    "RuntimeError",
    "StopIteration",
    "TypeError",
    "UnboundLocalError",
    "UnicodeDecodeError",
    "UnicodeEncodeError",
    "UnicodeError",
    "ValueError",
    "ZeroDivisionError",
    "ModuleNotFoundError",
    "Warning",
    "UserWarning",
    "DeprecationWarning",
    "RuntimeWarning",
)

# Builtin names bound to another class in the sandbox. `except BaseException`
# and `class E(BaseException)` are common in generated code; bound to
# Exception they keep working, and no handler a tool can write matches the
# sandbox's control exceptions (PolicyViolation, OutputLimit), which derive
# from the real BaseException only.
EXCEPTION_ALIASES: dict[str, str] = {"BaseException": "Exception"}

# Real builtins that are simply absent: using one is an ordinary NameError
# (an `error`), neither offered nor refused at compile time.
ABSENT_BUILTINS: dict[str, str] = {
    "MemoryError": "only the interpreter may raise it: a MemoryError reaching the sandbox is a real "
    "allocation failure (limit: memory), so tool code can neither name nor raise one",
}


class ModuleRule:
    """One importable module: why it is offered and which names its facade has.

    (Plain classes rather than dataclasses here: the zygote imports this at
    every cold start, and dataclasses pulls in inspect.)"""

    __slots__ = ("why", "names")

    def __init__(self, why: str, names: tuple[str, ...]) -> None:
        self.why = why
        self.names = names

    def __repr__(self) -> str:
        return f"ModuleRule({self.why!r}, {self.names!r})"


_MATH_NAMES = tuple(sorted(n for n in dir(__import__("math")) if not n.startswith("_")))

ALLOWED_MODULES: dict[str, ModuleRule] = {
    "math": ModuleRule("pure numeric functions and constants (a C module with no module-walk attributes)", _MATH_NAMES),
    "itertools": ModuleRule(
        "combinatorics and lazy iteration; every function only iterates what it is given",
        (
            "accumulate",
            "chain",
            "combinations",
            "combinations_with_replacement",
            "compress",
            "count",
            "cycle",
            "dropwhile",
            "filterfalse",
            "groupby",
            "islice",
            "pairwise",
            "permutations",
            "product",
            "repeat",
            "starmap",
            "takewhile",
            "tee",
            "zip_longest",
        ),
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
        (
            "Context",
            "Decimal",
            "DivisionByZero",
            "InvalidOperation",
            "ROUND_CEILING",
            "ROUND_DOWN",
            "ROUND_FLOOR",
            "ROUND_HALF_DOWN",
            "ROUND_HALF_EVEN",
            "ROUND_HALF_UP",
            "ROUND_UP",
            "getcontext",
            "localcontext",
        ),
    ),
    "statistics": ModuleRule(
        "descriptive statistics over numbers",
        (
            "StatisticsError",
            "fmean",
            "geometric_mean",
            "harmonic_mean",
            "mean",
            "median",
            "median_high",
            "median_low",
            "mode",
            "multimode",
            "pstdev",
            "pvariance",
            "quantiles",
            "stdev",
            "variance",
        ),
    ),
    "random": ModuleRule(
        "bound methods of a fresh Random() instance reseeded per call, never the module",
        ("choice", "choices", "gauss", "randint", "random", "randrange", "sample", "seed", "shuffle", "uniform"),
    ),
    "string": ModuleRule(
        "character-class constants and capwords; Formatter and Template are not offered",
        (
            "ascii_letters",
            "ascii_lowercase",
            "ascii_uppercase",
            "capwords",
            "digits",
            "hexdigits",
            "octdigits",
            "printable",
            "punctuation",
            "whitespace",
        ),
    ),
    "re": ModuleRule(
        "regular expressions; pattern.scanner is refused, the module object never reachable",
        (
            "A",
            "ASCII",
            "DOTALL",
            "I",
            "IGNORECASE",
            "M",
            "MULTILINE",
            "S",
            "VERBOSE",
            "X",
            "compile",
            "error",
            "escape",
            "findall",
            "finditer",
            "fullmatch",
            "match",
            "search",
            "split",
            "sub",
            "subn",
        ),
    ),
    "json": ModuleRule(
        "loads/dumps only: no encoder/decoder classes and no json.codecs",
        ("JSONDecodeError", "dumps", "loads"),
    ),
    "datetime": ModuleRule(
        "date and time value classes (C types with no module-walk attributes)",
        ("MAXYEAR", "MINYEAR", "date", "datetime", "time", "timedelta", "timezone"),
    ),
    "time": ModuleRule(
        "clock readings and time formatting; also what datetime's C code imports for strftime "
        "and timetuple, through the tool's own __import__ (sleep is bounded by the wall limit)",
        (
            "asctime",
            "ctime",
            "gmtime",
            "localtime",
            "mktime",
            "monotonic",
            "perf_counter",
            "process_time",
            "sleep",
            "strftime",
            "strptime",
            "struct_time",
            "time",
        ),
    ),
    "typing": ModuleRule(
        "annotation names only: inert placeholders, usable as List[int] or Optional[str]",
        (
            "Any",
            "Callable",
            "DefaultDict",
            "Deque",
            "Dict",
            "FrozenSet",
            "Generator",
            "Iterable",
            "Iterator",
            "List",
            "Literal",
            "Mapping",
            "Optional",
            "Sequence",
            "Set",
            "Tuple",
            "TypeVar",
            "Union",
            "cast",
        ),
    ),
    "copy": ModuleRule(
        "the sandbox's own copier: no memo argument; data, immutable values and the tool's own objects only",
        ("copy", "deepcopy"),
    ),
}

REFUSED_CONSTRUCTS: dict[str, str] = {
    "attributes starting with _": "private and dunder attributes reach interpreter internals "
    "(only READABLE_DUNDERS are read, through the guard)",
    "dunder names, names ending with _, _print, _tmp<N>": "the guard hooks (_getattr_, _write_, ...), "
    "RestrictedPython's print collector and temporaries; binding them would replace a guard",
    "frame, code and generator attributes": "gi_frame, f_back, tb_frame, cr_frame, ag_frame, f_globals... "
    "walk up to the host's frames and builtins",
    "import of a module not in the allowlist": "os, sys, subprocess, socket, importlib, ... and any relative import",
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
    "copy.deepcopy(x, memo), copying library objects": "the real copy calls what __reduce_ex__ names "
    "(getattr for a method descriptor) on arguments a tool-made memo chooses: the deepcopy-memo escape",
    "library methods applied to other objects": "a Python method read from a library class takes any self; "
    "it only applies to instances of that class (__init__ only to writable ones)",
    "AttributeError.obj": "holds the object whose lookup failed, a library-internal one when raised in library code",
    "register on ABC classes": "ABCMeta.register writes into a library class (Fraction, ChainMap)",
}

# Magic methods a tool class may define beyond RestrictedPython's own list
# (__init__, __contains__ and the rich comparisons). They only ever run inside
# the sandboxed process: results are converted to JSON by exact type, so the
# host never calls them. Hooks that change attribute lookup, class creation or
# pickling (__getattr__, __getattribute__, __init_subclass__, __set_name__,
# __class_getitem__, __reduce__, __del__, __new__...) stay refused.
EXTRA_MAGIC_METHODS: frozenset[str] = frozenset(
    {
        "__repr__",
        "__str__",
        "__hash__",
        "__len__",
        "__bool__",
        "__iter__",
        "__next__",
        "__getitem__",
        "__setitem__",
        "__delitem__",
        "__call__",
        "__enter__",
        "__exit__",
        "__missing__",
        "__add__",
        "__radd__",
        "__sub__",
        "__rsub__",
        "__mul__",
        "__rmul__",
        "__truediv__",
        "__floordiv__",
        "__mod__",
        "__neg__",
        "__abs__",
        "__iadd__",
        "__isub__",
    }
)

# Attributes that are public by name but lead to frames, code or generator
# internals (RestrictedPython's list), plus a few more of the same kind.
BLOCKED_ATTRIBUTES: frozenset[str] = frozenset(INSPECT_ATTRIBUTES) | frozenset(
    {
        "tb_frame",
        "tb_next",
        "gi_frame",
        "gi_code",
        "gi_yieldfrom",
        "cr_frame",
        "cr_code",
        "cr_await",
        "cr_origin",
        "ag_frame",
        "ag_code",
        "ag_await",
        "f_back",
        "f_globals",
        "f_locals",
        "f_builtins",
        "f_code",
        "f_trace",
        "co_code",
        "mro",
        "func_globals",
        "func_code",
    }
)

# Dunder attributes a tool may *read* (checked at run time): class and
# function names, which must be plain str, for messages and reprs; and
# __init__ on super() or a class, for super().__init__(...) and
# Base.__init__(self, ...).
READABLE_DUNDERS: frozenset[str] = frozenset({"__name__", "__qualname__", "__init__"})

# Generated tools name their helpers `_helper` and `_CACHE`, and RestrictedPython
# refuses every such name. A *plain name* with one leading underscore is safe as
# long as it cannot be one of the names the compiler and the guards rely on:
# every hook ends with "_" (`_getattr_`), dunders start with "__", the print
# collector is `_print` and the compiler's temporaries are `_tmp<N>`.
# Attributes (`obj._x`) stay refused: they reach library and interpreter internals.
_HELPER_NAME = re.compile(r"_[A-Za-z0-9](?:[A-Za-z0-9_]*[A-Za-z0-9])?")
_COMPILER_NAMES = re.compile(r"_print|_tmp[0-9]+")


def is_helper_name(name: str) -> bool:
    """True for a plain single-underscore name a tool may bind and read."""
    return _HELPER_NAME.fullmatch(name) is not None and _COMPILER_NAMES.fullmatch(name) is None


TOOL_FILENAMES: tuple[str, ...] = ("<tool>", "<snippet>", "<prelude>")

# Largest sequence `x *= n` may build; the memory limit is the real bound,
# this just fails fast and clearly.
MAX_SEQUENCE_ITEMS = 50_000_000


class Policy:
    """The whole restricted policy in one structure."""

    __slots__ = (
        "builtins",
        "exceptions",
        "exception_aliases",
        "absent",
        "modules",
        "refused",
        "magic_methods",
        "blocked_attributes",
    )

    def __init__(
        self,
        *,
        builtins: dict[str, str],
        exceptions: tuple[str, ...],
        exception_aliases: dict[str, str],
        absent: dict[str, str],
        modules: dict[str, ModuleRule],
        refused: dict[str, str],
        magic_methods: frozenset[str],
        blocked_attributes: frozenset[str],
    ) -> None:
        self.builtins = builtins
        self.exceptions = exceptions
        self.exception_aliases = exception_aliases
        self.absent = absent
        self.modules = modules
        self.refused = refused
        self.magic_methods = magic_methods
        self.blocked_attributes = blocked_attributes


POLICY = Policy(
    builtins=ALLOWED_BUILTINS,
    exceptions=ALLOWED_EXCEPTIONS,
    exception_aliases=EXCEPTION_ALIASES,
    absent=ABSENT_BUILTINS,
    modules=ALLOWED_MODULES,
    refused=REFUSED_CONSTRUCTS,
    magic_methods=EXTRA_MAGIC_METHODS,
    blocked_attributes=BLOCKED_ATTRIBUTES,
)
