"""The attack corpus: hostile tool code that every sandbox backend must contain.

Each entry is plain data. ``mode`` "source" means the code *is* the tool
source and its ``run()`` is called with no arguments; "snippet" means the code
is a caller snippet run against a harmless helper tool (`HELPER_TOOL`).
``applies_to`` says which backend(s) it targets; ``policy`` "plain" entries
are for the Docker backend's plain-Python mode, where only the container
contains the tool. ``expect`` is the set of acceptable statuses: never "ok".

Placeholders replaced by the test before running: ``@SECRET_PATH@`` (a file
whose contents must never come back), ``@SECRET_ENV@`` (the name of an
environment variable set in the host), ``@CANARY_PORT@`` (a loopback
listener that must see no connection) and ``@WATCH_DIR@`` (a directory in
which no file may appear).

The ideas come from public sandbox-escape write-ups (RestrictedPython CVEs,
smolagents advisories, pyjail techniques); the code is written for this
project.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ATTACKS", "Attack", "HELPER_TOOL", "categories"]

HELPER_TOOL = """
def apply(f, xs):
    return [f(x) for x in xs]

def total(xs):
    return sum(xs)
"""

BLOCKED = frozenset({"blocked"})
BLOCKED_OR_ERROR = frozenset({"blocked", "error"})
CONTAINED = frozenset({"limit", "error"})
ANY_REFUSAL = frozenset({"blocked", "error", "limit"})


@dataclass(frozen=True)
class Attack:
    id: str
    category: str
    description: str
    code: str
    expect: frozenset[str]
    mode: str = "source"
    applies_to: str = "both"
    policy: str = "restricted"
    limits: dict[str, float] = field(default_factory=dict)
    # For "error": the acceptable exception type names; for "blocked": a
    # phrase the refusal must contain (so an incidental refusal elsewhere in
    # the code cannot pass for the one the attack is about).
    error_types: frozenset[str] = frozenset()
    reason: str = ""


def _a(id: str, category: str, description: str, code: str, expect: frozenset[str], **kw: object) -> Attack:
    return Attack(id=id, category=category, description=description, code=code.lstrip("\n"), expect=expect, **kw)


ATTACKS: list[Attack] = [
    # ----------------------------------------------------------------- frames
    _a(
        "frame-generator-gi-frame",
        "frames",
        "Walk from a running generator's frame up to the host frame and its builtins.",
        """
holder = []
def gen():
    holder.append(g.gi_frame.f_back)
    yield 1
g = gen()
def run():
    next(g)
    return holder[0].f_builtins["open"]("@SECRET_PATH@").read()
""",
        BLOCKED,
    ),
    _a(
        "frame-getattr-string-names",
        "frames",
        "The same generator frame walk with attribute names as strings through getattr.",
        """
def gen():
    yield 1
def run():
    g = gen()
    frame = getattr(g, "gi_" + "frame")
    up = getattr(frame, "f_" + "back")
    return getattr(up, "f_globals")
""",
        BLOCKED,
        reason="gi_frame",
    ),
    _a(
        "frame-traceback-tb-frame",
        "frames",
        "Catch an exception and climb its traceback to a frame's globals.",
        """
def run():
    try:
        1 / 0
    except ZeroDivisionError as exc:
        tb = getattr(exc, "__traceback__")
        return getattr(getattr(tb, "tb_frame"), "f_globals")
""",
        BLOCKED,
        reason="__traceback__",
    ),
    _a(
        "frame-exception-traceback-attr",
        "frames",
        "Direct exc.__traceback__.tb_frame.f_back chain in source.",
        """
def run():
    try:
        raise ValueError("x")
    except ValueError as e:
        return e.__traceback__.tb_frame.f_back.f_globals
""",
        BLOCKED,
    ),
    _a(
        "frame-coroutine-cr-frame",
        "frames",
        "Coroutine objects expose cr_frame without being awaited.",
        """
async def co():
    return 1
def run():
    return co().cr_frame.f_globals
""",
        BLOCKED,
    ),
    _a(
        "frame-async-generator-ag-frame",
        "frames",
        "Async generator ag_frame reaches frames too.",
        """
async def agen():
    yield 1
def run():
    return agen().ag_frame
""",
        BLOCKED,
    ),
    _a(
        "frame-gi-code-replace",
        "frames",
        "Fetch a generator's code object to build new code.",
        """
def gen():
    yield 1
def run():
    code = getattr(gen(), "gi_code")
    return code.co_consts
""",
        BLOCKED,
        reason="gi_code",
    ),
    _a(
        "frame-fakestring-name",
        "frames",
        "A str subclass with a lying startswith() as the attribute name (RestrictedPython 'fakestring').",
        """
class Sneaky(str):
    def startswith(self, prefix):
        return False
def run():
    klass = getattr("", Sneaky("__class__"))
    return getattr(klass, Sneaky("__base__"))
""",
        BLOCKED,
        reason="plain str",
    ),
    # --------------------------------------------------------- format strings
    _a(
        "format-str-format-class",
        "format_string",
        "str.format field traversal to __class__ and its subclasses.",
        """
def run():
    return "{0.__class__.__base__.__subclasses__}".format(())
""",
        BLOCKED,
        reason="__class__",
    ),
    _a(
        "format-format-map",
        "format_string",
        "format_map variant of the field traversal (CVE-2023-41039).",
        """
def run():
    return "{x.__dict__}".format_map({"x": str})
""",
        BLOCKED,
        reason="__dict__",
    ),
    _a(
        "format-unbound-str-format",
        "format_string",
        "Unbound str.format taken from the type, then called with the template.",
        """
def run():
    fmt = str.format
    return fmt("{0.__init__.__globals__}", run)
""",
        BLOCKED,
        reason="__init__",
    ),
    _a(
        "format-getattr-format",
        "format_string",
        "format fetched with getattr and a computed name.",
        """
def run():
    f = getattr("{0.__class__}", "for" + "mat")
    return f(1)
""",
        BLOCKED,
        reason="__class__",
    ),
    _a(
        "format-subclass-format",
        "format_string",
        "format inherited by a str subclass, looked up on the subclass.",
        """
class Template(str):
    pass
def run():
    return Template("{0.__globals__}").format(run)
""",
        BLOCKED,
        reason="__globals__",
    ),
    _a(
        "format-fstring-attribute",
        "format_string",
        "f-string with a private attribute inside the braces.",
        """
def run():
    return f"{run.__globals__}"
""",
        BLOCKED,
    ),
    _a(
        "format-index-into-globals",
        "format_string",
        "Field with item access after an attribute: {0.__globals__[open]}.",
        """
def run():
    return "{0.__globals__[open]}".format(run)
""",
        BLOCKED,
    ),
    _a(
        "format-string-formatter",
        "format_string",
        "string.Formatter().get_field does the same traversal.",
        """
import string
def run():
    obj, unused = string.Formatter().get_field("0.__class__", [1], {})
    return obj
""",
        BLOCKED,
        reason="Formatter",
    ),
    _a(
        "format-nested-spec-field",
        "format_string",
        "A replacement field nested inside a format spec: {0:{1.__class__}}.",
        """
def run():
    return "{0:{1.__class__}}".format(1, 2)
""",
        BLOCKED,
        reason="__class__",
    ),
    _a(
        "format-super-format",
        "format_string",
        "Reach str.format through super() on a str subclass, past the str check.",
        """
class Text(str):
    def render(self):
        return super().format(self)
def run():
    return Text("{0.__class__}").render()
""",
        BLOCKED,
        reason="super",
    ),
    _a(
        "format-percent-mapping",
        "format_string",
        "%-formatting with a mapping key naming a dunder: % never traverses attributes.",
        """
def run():
    return "%(__globals__)s" % run
""",
        frozenset({"error"}),
        error_types=frozenset({"TypeError"}),
    ),
    # ----------------------------------------------------------- module walks
    _a(
        "modwalk-json-codecs",
        "module_walk",
        "json reaches codecs.open (file read) in CPython.",
        """
import json
def run():
    return json.codecs.open("@SECRET_PATH@").read()
""",
        BLOCKED,
        reason="json.codecs",
    ),
    _a(
        "modwalk-re-internals",
        "module_walk",
        "re reaches sre_compile / functools / sys through module attributes.",
        """
import re
def run():
    return re.functools.sys.modules["os"].getcwd()
""",
        BLOCKED,
    ),
    _a(
        "modwalk-re-scanner",
        "module_walk",
        "Compiled patterns expose an internal scanner object.",
        """
import re
def run():
    return re.compile("a").scanner("aaa")
""",
        BLOCKED,
        reason="scanner",
    ),
    _a(
        "modwalk-datetime-sys",
        "module_walk",
        "Module attributes like datetime.sys are not part of the facade.",
        """
import datetime
def run():
    return datetime.sys.modules
""",
        BLOCKED,
    ),
    _a(
        "modwalk-random-module-os",
        "module_walk",
        "random imports os (_os) at module level; the facade must not carry it.",
        """
import random
def run():
    return random.os.environ["@SECRET_ENV@"]
""",
        BLOCKED,
    ),
    _a(
        "modwalk-function-globals",
        "module_walk",
        "A facade function's __globals__ is the real module namespace.",
        """
import statistics
def run():
    return getattr(statistics.mean, "__globals__")["sys"]
""",
        BLOCKED,
    ),
    _a(
        "modwalk-bound-method-self",
        "module_walk",
        "A bound method's __self__ is the object behind it (the Random instance, a module for C functions).",
        """
import math
def run():
    return getattr(math.sqrt, "__self__")
""",
        BLOCKED,
    ),
    _a(
        "modwalk-typing-sys",
        "module_walk",
        "typing reaches sys through typing.sys.",
        """
import typing
def run():
    return typing.sys.modules["os"].environ
""",
        BLOCKED,
    ),
    _a(
        "modwalk-functools-partial-getattr",
        "module_walk",
        "getattr passed through functools.partial / map / filter (smolagents CVE-2025-5120).",
        """
import functools
import json
def run():
    grab = functools.partial(getattr, json)
    return list(map(grab, ["codecs"]))
""",
        BLOCKED,
        reason="json.codecs",
    ),
    _a(
        "modwalk-facade-wrapped",
        "module_walk",
        "lru_cache wrapper's __wrapped__ / facade __module__ lead back to real objects.",
        """
import functools
@functools.lru_cache(maxsize=None)
def cached(x):
    return x
def run():
    return getattr(cached, "__wrapped__"), getattr(functools, "__spec__")
""",
        BLOCKED,
    ),
    _a(
        "modwalk-reduce-getattr-chain",
        "module_walk",
        "functools.reduce(getattr, names, obj): a getattr chain with no attribute syntax at all.",
        """
import functools
def run():
    return functools.reduce(getattr, ["__class__", "__base__", "__subclasses__"], ())()
""",
        BLOCKED,
        reason="__class__",
    ),
    _a(
        "modwalk-sorted-key-getattr",
        "module_walk",
        "getattr as a key function, with the private name coming from data.",
        """
def run():
    names = ["__globals__"]
    return sorted(names, key=lambda n: str(getattr(run, n)))
""",
        BLOCKED,
        reason="__globals__",
    ),
    _a(
        "modwalk-hasattr-probe",
        "module_walk",
        "Probe facades for module attributes with hasattr to map what is reachable.",
        """
import json
def run():
    return [name for name in ["codecs", "decoder", "scanner"] if hasattr(json, name)]
""",
        BLOCKED,
        reason="json.codecs",
    ),
    _a(
        "modwalk-dunder-module",
        "module_walk",
        "A facade function's __module__ names the real module to look it up elsewhere.",
        """
import json
def run():
    return getattr(json.dumps, "__module__")
""",
        BLOCKED,
        reason="__module__",
    ),
    # ------------------------------------------------------- guard shadowing
    _a(
        "shadow-assign-getattr",
        "guard_shadowing",
        "Rebind the _getattr_ hook by plain assignment.",
        """
_getattr_ = lambda obj, name: obj
def run():
    return (1).__class__
""",
        BLOCKED,
    ),
    _a(
        "shadow-global-getiter",
        "guard_shadowing",
        "Rebind _getiter_ through a global statement inside a function.",
        """
def run():
    global _getiter_
    _getiter_ = iter
    return [x for x in [1]]
""",
        BLOCKED,
    ),
    _a(
        "shadow-except-as",
        "guard_shadowing",
        "Bind a guard name as the target of except ... as.",
        """
def run():
    try:
        1 / 0
    except Exception as _getitem_:
        return 1
""",
        BLOCKED,
    ),
    _a(
        "shadow-walrus",
        "guard_shadowing",
        "Rebind a guard with an assignment expression.",
        """
def run():
    (_write_ := (lambda ob: ob))
    return 1
""",
        BLOCKED,
    ),
    _a(
        "shadow-import-as",
        "guard_shadowing",
        "Bind a guard name through import ... as.",
        """
import json as _print_
def run():
    return 1
""",
        BLOCKED,
    ),
    _a(
        "shadow-for-target",
        "guard_shadowing",
        "Bind a guard name as a for-loop target.",
        """
def run():
    for _apply_ in [print]:
        pass
    return 1
""",
        BLOCKED,
    ),
    _a(
        "shadow-positional-only-default",
        "guard_shadowing",
        "Lambda whose positional-only parameter default shadows _getattr_.",
        """
def run():
    f = lambda _getattr_=(lambda o, n: o), /: run.__globals__
    return f()
""",
        BLOCKED,
    ),
    _a(
        "shadow-class-attribute",
        "guard_shadowing",
        "A class body binding _getattr_ as a class attribute.",
        """
class Holder:
    _getattr_ = getattr
def run():
    return Holder
""",
        BLOCKED,
    ),
    _a(
        "shadow-builtins-name",
        "guard_shadowing",
        "Assign to __builtins__ to swap the builtins table.",
        """
__builtins__ = {"open": None}
def run():
    return 1
""",
        BLOCKED,
    ),
    _a(
        "shadow-name-mangling",
        "guard_shadowing",
        "A double-underscore attribute inside a class is mangled to _Class__x.",
        """
class A:
    def leak(self, other):
        return other.__secret
def run():
    return A().leak(A())
""",
        BLOCKED,
    ),
    # ------------------------------------------------------ builtins recovery
    _a(
        "builtins-subclasses-walk",
        "builtins_recovery",
        "().__class__.__base__.__subclasses__() to find a class whose __init__.__globals__ has os.",
        """
def run():
    for cls in ().__class__.__base__.__subclasses__():
        if cls.__name__ == "_wrap_close":
            return cls.__init__.__globals__["system"]("true")
""",
        BLOCKED,
    ),
    _a(
        "builtins-catch-warnings",
        "builtins_recovery",
        "warnings.catch_warnings()._module.__builtins__ through the subclass list.",
        """
def run():
    classes = getattr(getattr(object, "__subclasses__")(), "copy")()
    return classes
""",
        BLOCKED,
    ),
    _a(
        "builtins-isinstance-spoof",
        "builtins_recovery",
        "A class attribute __class__ = str to spoof isinstance checks in the guards.",
        """
class Fake(object):
    __class__ = str
def run():
    return getattr(Fake(), "format")
""",
        BLOCKED,
        reason="__class__",
    ),
    _a(
        "builtins-fullwidth-dunder",
        "builtins_recovery",
        "Fullwidth letters in a dunder name (NFKC-normalised by the parser), hoping a filter sees no match.",
        """
def run():
    return ().__\uff43\uff4c\uff41\uff53\uff53__
""",
        BLOCKED,
        reason="__class__",
    ),
    _a(
        "builtins-type-mro",
        "builtins_recovery",
        "type(x).mro() to reach object and then its subclasses.",
        """
def run():
    base = type(1).mro()[-1]
    return getattr(base, "__subclasses__")()
""",
        BLOCKED,
        reason="mro",
    ),
    _a(
        "builtins-reduce-ex",
        "builtins_recovery",
        "object.__reduce_ex__ returns copyreg internals and class objects.",
        """
def run():
    return getattr(1, "__reduce_ex__")(2)
""",
        BLOCKED,
    ),
    _a(
        "builtins-type-of-function",
        "builtins_recovery",
        "type() of a function gives FunctionType, a constructor for functions with chosen globals.",
        """
def run():
    FunctionType = type(run)
    return FunctionType
""",
        BLOCKED,
        reason="type()",
    ),
    _a(
        "builtins-three-arg-type",
        "builtins_recovery",
        "Three-argument type() builds a class outside the sandbox metaclass.",
        """
def run():
    return type("X", (object,), {"y": 1})
""",
        BLOCKED,
        reason="type()",
    ),
    _a(
        "builtins-metaclass-keyword",
        "builtins_recovery",
        "A class with metaclass= to run code at class creation.",
        """
class Meta(object):
    pass
class X(object, metaclass=Meta):
    pass
def run():
    return 1
""",
        BLOCKED,
    ),
    _a(
        "builtins-withheld-eval",
        "builtins_recovery",
        "eval/exec/compile are not builtins here.",
        """
def run():
    return eval("__import__('os').getcwd()")
""",
        BLOCKED,
    ),
    _a(
        "builtins-globals-vars-dir",
        "builtins_recovery",
        "globals()/vars()/dir() would expose the guard hooks and builtins.",
        """
def run():
    return globals()["__builtins__"]
""",
        BLOCKED,
    ),
    _a(
        "builtins-open-secret",
        "builtins_recovery",
        "Plain open() of the host secret file.",
        """
def run():
    with open("@SECRET_PATH@") as fh:
        return fh.read()
""",
        BLOCKED,
    ),
    _a(
        "builtins-decorator-exec",
        "builtins_recovery",
        "Decorators call functions without call syntax (@exec @input).",
        """
@exec
@input
class X:
    pass
def run():
    return 1
""",
        BLOCKED,
    ),
    _a(
        "builtins-code-object-swap",
        "builtins_recovery",
        "Replace a function's __code__ with hand-made bytecode.",
        """
def f():
    return 1
def run():
    f.__code__ = f.__code__.replace(co_consts=())
    return f()
""",
        BLOCKED,
    ),
    _a(
        "builtins-augassign-dunder",
        "builtins_recovery",
        "Augmented assignment on a dunder attribute with a reflected operator capturing it (smolagents CVE-2026-4963).",
        """
stash = []
class Grab:
    def __radd__(self, other):
        stash.append(other)
        return other
def run():
    run.__globals__ += Grab()
    return stash[0]
""",
        BLOCKED,
    ),
    # ----------------------------------------------------------- import tricks
    _a(
        "import-os",
        "imports",
        "Plain import of os.",
        """
import os
def run():
    return os.environ["@SECRET_ENV@"]
""",
        BLOCKED,
    ),
    _a(
        "import-dunder-import",
        "imports",
        "Call __import__ directly with a computed name.",
        """
def run():
    return __import__("o" + "s").environ
""",
        BLOCKED,
    ),
    _a(
        "import-importlib",
        "imports",
        "importlib.import_module to fetch subprocess.",
        """
import importlib
def run():
    return importlib.import_module("subprocess")
""",
        BLOCKED,
    ),
    _a(
        "import-star",
        "imports",
        "from os import * could bind names over the guard hooks.",
        """
from os import *
def run():
    return 1
""",
        BLOCKED,
    ),
    _a(
        "import-private-from",
        "imports",
        "from _strptime import locale: the import hook serves _strptime to library C code, and "
        "RestrictedPython checks only the bound names; locale.sys reaches os.",
        """
from _strptime import locale
def run():
    return locale.sys.modules["os"].listdir("/")
""",
        BLOCKED,
        reason='import of "_strptime"',
    ),
    _a(
        "import-private-module",
        "imports",
        "import _strptime binds the real library helper module.",
        """
import _strptime
def run():
    return str(_strptime.locale)
""",
        BLOCKED,
        reason='import of "_strptime"',
    ),
    _a(
        "import-private-submodule-name",
        "imports",
        "A private component inside a dotted import path.",
        """
from json import _default_decoder
def run():
    return str(_default_decoder)
""",
        BLOCKED,
        reason="import of",
    ),
    _a(
        "helper-name-rebinds-print-collector",
        "guard_shadowing",
        "Single-underscore helper names are allowed, but not _print, the collector RestrictedPython calls "
        "attributes on without a guard.",
        """
class Evil:
    def _call_print(self, *args):
        return 1
def run():
    _print = Evil()
    print("hi")
    return 1
""",
        BLOCKED,
        reason="_print",
    ),
    _a(
        "helper-name-rebinds-temporary",
        "guard_shadowing",
        "The compiler's temporaries (_tmp<N>) hold write-guarded objects; tool code may not bind them.",
        """
def run():
    _tmp0 = {}
    d = {"a": 1}
    d["a"] += 1
    return _tmp0
""",
        BLOCKED,
        reason="_tmp0",
    ),
    _a(
        "import-relative",
        "imports",
        "Relative import reaching the sandbox package itself.",
        """
from . import execute
def run():
    return execute
""",
        BLOCKED,
        reason="relative import",
    ),
    _a(
        "import-submodule",
        "imports",
        "Dotted import of an allowed package's submodule.",
        """
import collections.abc
def run():
    return 1
""",
        BLOCKED,
    ),
    _a(
        "import-from-unoffered-name",
        "imports",
        "from json import a name the facade does not offer.",
        """
from json import JSONEncoder
def run():
    return 1
""",
        BLOCKED,
        reason="JSONEncoder",
    ),
    _a(
        "import-loader-spec",
        "imports",
        "A facade's __loader__ / __spec__ would load real modules.",
        """
import math
def run():
    return math.__loader__.load_module("os")
""",
        BLOCKED,
    ),
    _a(
        "import-sys-modules",
        "imports",
        "import sys to reach sys.modules.",
        """
import sys
def run():
    return sys.modules["os"].environ["@SECRET_ENV@"]
""",
        BLOCKED,
    ),
    _a(
        "import-in-snippet",
        "imports",
        "The caller snippet imports socket and dials the canary listener.",
        """
import socket
s = socket.create_connection(("127.0.0.1", @CANARY_PORT@), timeout=1)
ans = "connected"
""",
        BLOCKED,
        mode="snippet",
    ),
    _a(
        "snippet-lambda-globals",
        "guard_shadowing",
        "The caller snippet passes the tool a lambda that reads a function's __globals__.",
        """
ans = apply(lambda f: f.__globals__, [total])
""",
        BLOCKED,
        mode="snippet",
        reason="__globals__",
    ),
    _a(
        "snippet-getattr-from-data",
        "module_walk",
        "The snippet hides the private name in data and calls getattr through the tool.",
        """
names = ["__glo" + "bals__"]
ans = apply(lambda n: getattr(total, n), names)
""",
        BLOCKED,
        mode="snippet",
        reason="__globals__",
    ),
    _a(
        "snippet-format-traversal",
        "format_string",
        "Format-string traversal from the caller snippet.",
        """
template = "{0.__globals__[total]}"
ans = template.format(total)
""",
        BLOCKED,
        mode="snippet",
        reason="__globals__",
    ),
    _a(
        "snippet-result-bomb",
        "result_channel",
        "The snippet builds an answer far beyond the output cap.",
        """
ans = apply(lambda x: "y" * (8 * 1024 * 1024), [1, 2, 3])
""",
        frozenset({"limit"}),
        mode="snippet",
    ),
    _a(
        "import-gc-objects",
        "imports",
        "gc.get_objects() to find host dictionaries holding __builtins__.",
        """
import gc
def run():
    return [o for o in gc.get_objects() if type(o) is dict]
""",
        BLOCKED,
    ),
    # ------------------------------------------------ persistence / tampering
    _a(
        "persist-facade-poisoning",
        "persistence",
        "Overwrite json.dumps on the shared facade so later calls are poisoned.",
        """
import json
def run():
    json.dumps = lambda *a, **k: "PWNED"
    return json.dumps([1])
""",
        BLOCKED,
        reason="cannot modify",
    ),
    _a(
        "persist-setattr-facade",
        "persistence",
        "setattr() on a facade, then on a library class.",
        """
import collections
def run():
    setattr(collections, "Counter", dict)
    return 1
""",
        BLOCKED,
        reason="cannot modify",
    ),
    _a(
        "persist-write-file",
        "persistence",
        "Write a file into the watched directory.",
        """
def run():
    with open("@WATCH_DIR@/dropped.py", "w") as fh:
        fh.write("owned")
    return 1
""",
        BLOCKED,
    ),
    # ------------------------------------------------------ result channel
    _a(
        "result-reduce-object",
        "result_channel",
        "Return an object whose __reduce__ would run code if the host pickled it.",
        """
class P:
    def __reduce__(self):
        return (print, ("pwned",))
def run():
    return P()
""",
        BLOCKED_OR_ERROR,
        error_types=frozenset({"ResultNotJSON"}),
    ),
    _a(
        "result-eq-hangs",
        "result_channel",
        "Return an object whose __eq__ never returns (a host comparing it would hang).",
        """
class R:
    def __eq__(self, other):
        while True:
            pass
def run():
    return R()
""",
        frozenset({"error"}),
        error_types=frozenset({"ResultNotJSON"}),
    ),
    _a(
        "result-str-hangs-in-exception",
        "result_channel",
        "Raise an exception whose __str__ never returns (host formatting it would hang).",
        """
class Boom(Exception):
    def __str__(self):
        while True:
            pass
def run():
    raise Boom("x")
""",
        frozenset({"error"}),
        error_types=frozenset({"Boom"}),
    ),
    _a(
        "result-exception-arg-repr-hangs",
        "result_channel",
        "Raise an exception carrying an object whose __repr__ never returns.",
        """
class Slow:
    def __repr__(self):
        while True:
            pass
def run():
    raise ValueError(Slow())
""",
        frozenset({"error"}),
        error_types=frozenset({"ValueError"}),
    ),
    _a(
        "result-dict-subclass-items",
        "result_channel",
        "A dict subclass with an items() that leaks or hangs must be read through dict's own C methods.",
        """
class Tricky(dict):
    def items(self):
        while True:
            pass
    def keys(self):
        while True:
            pass
def run():
    d = Tricky()
    d["k"] = 1
    return [d, float("nan")]
""",
        frozenset({"error"}),
        error_types=frozenset({"ResultNotJSON"}),
    ),
    _a(
        "result-del-hangs",
        "result_channel",
        "A result object whose __del__ hangs when the host garbage-collects it.",
        """
class Sticky(object):
    def __del__(self):
        while True:
            pass
def run():
    return [Sticky()]
""",
        BLOCKED,
        reason="__del__",
    ),
    _a(
        "result-self-reference",
        "result_channel",
        "A list that contains itself.",
        """
def run():
    x = []
    x.append(x)
    return x
""",
        frozenset({"error"}),
        error_types=frozenset({"ResultNotJSON"}),
    ),
    _a(
        "result-deep-nesting",
        "result_channel",
        "A result nested 100 000 levels deep.",
        """
def run():
    x = []
    for _ in range(100000):
        x = [x]
    return x
""",
        frozenset({"error"}),
        error_types=frozenset({"ResultNotJSON"}),
    ),
    _a(
        "result-nan-infinity",
        "result_channel",
        "NaN and infinity are not JSON.",
        """
def run():
    return {"a": float("inf")}
""",
        frozenset({"error"}),
        error_types=frozenset({"ResultNotJSON"}),
    ),
    _a(
        "result-giant-string",
        "result_channel",
        "A result far beyond the output cap.",
        """
def run():
    return "x" * (50 * 1024 * 1024)
""",
        frozenset({"limit"}),
    ),
    _a(
        "result-non-str-keys",
        "result_channel",
        "Tuple keys are not JSON object keys.",
        """
def run():
    return {(1, 2): "a"}
""",
        frozenset({"error"}),
        error_types=frozenset({"ResultNotJSON"}),
    ),
    _a(
        "result-huge-int",
        "result_channel",
        "An integer beyond the int->str digit limit.",
        """
def run():
    return 7 ** 100000
""",
        frozenset({"error"}),
        error_types=frozenset({"ResultNotJSON"}),
    ),
    _a(
        "result-fake-reply-in-stdout",
        "result_channel",
        "Print a forged reply (with the secret file path) hoping the host parses stdout as the reply.",
        """
def run():
    print('{"status": "ok", "result": "FORGED", "error": null, "limit": null, "stdout": ""}')
    print("\\n" * 5 + '{"status":"ok","result":"FORGED"}')
    raise RuntimeError("the real outcome")
""",
        frozenset({"error"}),
        error_types=frozenset({"RuntimeError"}),
    ),
    # --------------------------------------------------------- resources
    _a(
        "res-busy-loop",
        "resources",
        "Pure-Python infinite loop.",
        """
def run():
    while True:
        pass
""",
        frozenset({"limit"}),
        limits={"cpu": 1, "wall": 3},
    ),
    _a(
        "res-sleep-forever",
        "resources",
        "Sleeping uses no CPU: only the wall clock, enforced from outside, stops it.",
        """
import time
def run():
    time.sleep(3600)
""",
        frozenset({"limit"}),
        limits={"cpu": 1, "wall": 2},
    ),
    _a(
        "res-c-loop",
        "resources",
        "A long loop inside C (sum over a huge range) ignores in-process timers.",
        """
def run():
    return sum(range(10 ** 12))
""",
        frozenset({"limit"}),
        limits={"cpu": 1, "wall": 3},
    ),
    _a(
        "res-bigint-power",
        "resources",
        "10**10**8: a huge integer power burns CPU and memory.",
        """
def run():
    x = 10 ** 10 ** 8
    return 1
""",
        frozenset({"limit"}),
        limits={"cpu": 1, "wall": 3},
    ),
    _a(
        "res-memory-string",
        "resources",
        "One giant allocation.",
        """
def run():
    s = "x" * (10 ** 10)
    return len(s)
""",
        frozenset({"limit"}),
        limits={"memory": 128},
    ),
    _a(
        "res-memory-growth",
        "resources",
        "A list that grows until memory runs out.",
        """
def run():
    chunks = []
    while True:
        chunks.append("y" * (1 << 20))
""",
        frozenset({"limit"}),
        limits={"memory": 128, "wall": 5},
    ),
    _a(
        "res-recursion",
        "resources",
        "Unbounded recursion ends as a RecursionError.",
        """
def down(n):
    return down(n + 1) + 1
def run():
    return down(0)
""",
        frozenset({"error", "limit"}),
        error_types=frozenset({"RecursionError"}),
    ),
    _a(
        "res-output-flood-lines",
        "resources",
        "Print lines forever.",
        """
def run():
    while True:
        print("flood line")
""",
        frozenset({"limit"}),
        limits={"output": 64},
    ),
    _a(
        "res-output-flood-no-newline",
        "resources",
        "One enormous print without newlines.",
        """
def run():
    print("z" * (20 * 1024 * 1024), end="")
""",
        frozenset({"limit"}),
        limits={"output": 64},
    ),
    _a(
        "res-int-str-digits",
        "resources",
        "Lift the int->str digit limit to make a quadratic conversion.",
        """
import sys
def run():
    sys.set_int_max_str_digits(0)
    return str(10 ** 1000000)
""",
        BLOCKED,
    ),
    _a(
        "res-str-of-huge-int",
        "resources",
        "str() of a huge int hits the interpreter's digit limit.",
        """
def run():
    return len(str(10 ** 100000))
""",
        frozenset({"error"}),
        error_types=frozenset({"ValueError"}),
    ),
    _a(
        "res-iterator-wall",
        "resources",
        "itertools.count() consumed forever in a generator pipeline.",
        """
import itertools
def run():
    for i in itertools.count():
        if i < 0:
            return i
""",
        frozenset({"limit"}),
        limits={"cpu": 1, "wall": 3},
    ),
    _a(
        "res-inplace-repetition",
        "resources",
        "s *= 10**12 on a string.",
        """
def run():
    s = "x"
    s *= 10 ** 12
    return len(s)
""",
        frozenset({"limit"}),
    ),
    _a(
        "res-deep-json",
        "resources",
        "json.loads of a document nested 100 000 levels deep.",
        """
import json
def run():
    return json.loads("[" * 100000 + "]" * 100000)
""",
        frozenset({"error", "limit"}),
        error_types=frozenset({"RecursionError"}),
    ),
    _a(
        "res-regex-backtracking",
        "resources",
        "Catastrophic regex backtracking (ReDoS) is a CPU limit.",
        """
import re
def run():
    return bool(re.match(r"(a+)+$", "a" * 64 + "b"))
""",
        frozenset({"limit"}),
        limits={"cpu": 1, "wall": 3},
    ),
    _a(
        "res-fork",
        "process",
        "os.fork / subprocess from restricted code.",
        """
import os
def run():
    os.fork()
    return 1
""",
        BLOCKED,
    ),
    _a(
        "res-subprocess",
        "process",
        "Start a detached process that escapes the process group.",
        """
import subprocess
def run():
    subprocess.Popen(["sleep", "3600"], start_new_session=True)
""",
        BLOCKED,
    ),
    _a(
        "res-threads",
        "process",
        "Thread bomb.",
        """
import threading
def run():
    while True:
        threading.Thread(target=run).start()
""",
        BLOCKED,
    ),
    _a(
        "res-rlimit-raise",
        "process",
        "Raise the soft limits back to the hard limits.",
        """
import resource
def run():
    resource.setrlimit(resource.RLIMIT_AS, (-1, -1))
""",
        BLOCKED,
    ),
    # ------------------------------------ library callbacks (issue 7: the deepcopy-memo escape class)
    _a(
        "copy-deepcopy-memo-getattr",
        "library_callbacks",
        "The reported escape: deepcopy(str.join, memo) with a dict subclass as memo makes copy call the real "
        "getattr (from __reduce_ex__) on arguments the memo's get() chooses: a library function's __globals__, "
        "then builtins' open.",
        """
import copy, json
class Memo(dict):
    def get(self, key, default=None):
        self.step += 1
        if self.step == 2:
            return json.dumps
        if self.step == 3:
            return "__globals__"
        return default
def run():
    memo = Memo()
    memo.step = 0
    found = copy.deepcopy(str.join, memo)
    return found["__builtins__"]["open"]("@SECRET_PATH@").read()
""",
        BLOCKED,
        reason="memo argument",
    ),
    _a(
        "copy-deepcopy-memo-snippet",
        "library_callbacks",
        "The same escape from a caller snippet against a harmless tool, the memo passed through functools.partial.",
        """
import copy, functools, json
class Memo(dict):
    def get(self, key, default=None):
        self.step += 1
        if self.step == 2:
            return json.dumps
        if self.step == 3:
            return "__globals__"
        return default
memo = Memo()
memo.step = 0
found = apply(functools.partial(copy.deepcopy, memo=memo), [str.join])[0]
ans = found["__builtins__"]["open"]("@SECRET_PATH@").read()
""",
        BLOCKED,
        mode="snippet",
        reason="memo argument",
    ),
    _a(
        "copy-method-descriptor-reduce",
        "library_callbacks",
        "No memo, but a library method descriptor: copy rebuilds it by calling what __reduce_ex__ names.",
        """
import copy
def run():
    return copy.deepcopy({"f": [str.join]})
""",
        BLOCKED,
        reason="copying method_descriptor",
    ),
    _a(
        "copy-library-object-in-tool-object",
        "library_callbacks",
        "A library object hidden in a tool object's attributes, copied through the tool object's state.",
        """
import copy, functools
class Box(object):
    def __init__(self):
        self.inner = functools.partial(max, 1)
def run():
    return copy.deepcopy(Box()).inner
""",
        BLOCKED,
        reason="copying partial objects",
    ),
    _a(
        "libinit-chainmap-init-on-function",
        "library_callbacks",
        "ChainMap's unbound __init__ (plain Python, no type check) applied to a library function writes an "
        "attribute on it, past the write guard; the attack then fails on purpose so plain Python ends in error.",
        """
import collections, json
def run():
    collections.ChainMap.__init__(json.dumps, {"planted": 1})
    raise RuntimeError("wrote an attribute on json.dumps: " + str(json.dumps.maps))
""",
        BLOCKED,
        reason="ChainMap.__init__() needs a ChainMap object",
    ),
    _a(
        "libinit-re-error-init-on-class",
        "library_callbacks",
        "re.error's unbound __init__ applied to a library class plants msg/pattern/pos attributes on it.",
        """
import collections, re
def run():
    re.error.__init__(collections.Counter, "planted", "p", 0)
    return collections.Counter.pattern
""",
        BLOCKED,
        reason="error.__init__() needs a error object",
    ),
    _a(
        "libinit-reinit-library-exception",
        "library_callbacks",
        "Re-initialise an exception object the library made (not the tool's to write).",
        """
import json
def run():
    try:
        json.loads("[")
    except json.JSONDecodeError as exc:
        json.JSONDecodeError.__init__(exc, "rewritten", "doc", 0)
        raise RuntimeError("re-initialised: " + exc.msg)
""",
        BLOCKED,
        reason="cannot modify JSONDecodeError",
    ),
    _a(
        "libmethod-lru-cache-class-namespace",
        "library_callbacks",
        "functools.lru_cache copies a wrapped class's namespace onto its wrapper: the class's methods come back "
        "unbound, to be applied to any object.",
        """
import collections, functools
class Fake(object):
    pass
def run():
    fake = Fake()
    fake.maps = [{}]
    return functools.lru_cache(collections.ChainMap).new_child(fake)
""",
        BLOCKED,
        reason="ChainMap.new_child",
    ),
    _a(
        "libmethod-property-fget",
        "library_callbacks",
        "A library property's fget is the unbound getter function, applied here to a tool object.",
        """
import collections
class Fake(object):
    pass
def run():
    fake = Fake()
    fake.maps = [{}, {}]
    return collections.ChainMap.parents.fget(fake)
""",
        BLOCKED,
        reason="ChainMap.parents",
    ),
    _a(
        "libstate-abc-register",
        "library_callbacks",
        "ABCMeta.register on an offered library class (Fraction, ChainMap) makes a tool class pass the "
        "isinstance checks library code relies on.",
        """
import fractions
class Fake(object):
    pass
def run():
    fractions.Fraction.register(Fake)
    return fractions.Fraction(Fake())
""",
        BLOCKED,
        reason="Fraction.register",
    ),
    _a(
        "libmethod-attribute-error-obj",
        "library_callbacks",
        "AttributeError.obj is the object whose lookup failed: raised inside library code, a library-internal one.",
        """
def run():
    try:
        (lambda: 0).missing
    except AttributeError as exc:
        return exc.obj
""",
        BLOCKED,
        reason='attribute "obj" of AttributeError',
    ),
    # -------------------------------------------- outcome spoofing (issue 7: outcomes come from the record)
    _a(
        "spoof-caught-output-limit",
        "outcome_spoofing",
        "Print far past the output cap inside a bare except: the sandbox's own control exception is caught and "
        "the call would end ok.",
        """
def run():
    try:
        print("x" * 100000)
    except:
        pass
    return "got away"
""",
        frozenset({"limit"}),
        limits={"output": 4},
    ),
    _a(
        "spoof-caught-output-limit-base-exception",
        "outcome_spoofing",
        "The same with except BaseException.",
        """
def run():
    try:
        print("x" * 100000)
    except BaseException:
        pass
    return "got away"
""",
        frozenset({"limit"}),
        limits={"output": 4},
    ),
    _a(
        "spoof-swallowed-output-limit-exit",
        "outcome_spoofing",
        "A context manager whose __exit__ returns True swallows anything, including the output limit.",
        """
class Quiet(object):
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return True
def run():
    with Quiet():
        print("x" * 100000)
    return "got away"
""",
        frozenset({"limit"}),
        limits={"output": 4},
    ),
    _a(
        "spoof-swallowed-refusal-finally-break",
        "outcome_spoofing",
        "A refusal swallowed by break in finally (no handler at all); the tool then fails on purpose.",
        """
def run():
    for _ in range(1):
        try:
            getattr(run, "__globals__")["__builtins__"]["open"]("@SECRET_PATH@").read()
        finally:
            break
    raise RuntimeError("the refusal was swallowed")
""",
        BLOCKED,
        reason="__globals__",
    ),
    _a(
        "spoof-raise-memory-error",
        "outcome_spoofing",
        "raise MemoryError to report a memory limit the call never hit.",
        """
def run():
    raise MemoryError("fake")
""",
        frozenset({"error"}),
        error_types=frozenset({"NameError"}),
    ),
    _a(
        "spoof-memory-error-class-from-type",
        "outcome_spoofing",
        "Take MemoryError's class from a real one with type() and raise a fresh one later.",
        """
def run():
    try:
        [0] * (10 ** 18)
    except Exception as exc:
        kind = type(exc)
    raise kind("fake")
""",
        BLOCKED,
        reason="type() of a",
    ),
    _a(
        "spoof-name-error-open",
        "outcome_spoofing",
        "raise NameError(name='open') so the call reads as a policy block of a withheld builtin.",
        """
def run():
    raise NameError("name 'open' is not defined", name="open")
""",
        frozenset({"error"}),
        error_types=frozenset({"NameError"}),
    ),
    _a(
        "spoof-finalizer-after-check",
        "outcome_spoofing",
        "A generator in a garbage cycle whose finally, run by the collector during result conversion, acted "
        "after the refusal check (it first spoils the result, so plain Python ends in error too).",
        """
def gen(result):
    try:
        yield 1
    finally:
        result.append(run)
        result.append(getattr(run, "__globals__")["__builtins__"]["open"]("@SECRET_PATH@").read())
def run():
    result = [{"i": i} for i in range(20000)]
    box = [gen(result)]
    next(box[0])
    box.append(box)
    box = None
    return result
""",
        BLOCKED,
        reason="__globals__",
    ),
    _a(
        "result-str-subclass-key-collision",
        "result_channel",
        "A dict with a str-subclass key equal to a plain key: converted, one of them was silently dropped.",
        """
class Twin(str):
    def __hash__(self):
        return 1
    def __eq__(self, other):
        return self is other
def run():
    return {"k": "kept", Twin("k"): "lost"}
""",
        frozenset({"error"}),
        error_types=frozenset({"ResultNotJSON"}),
    ),
    # ------------------- container layer (Docker, plain Python: no policy at all)
    _a(
        "plain-read-host-secret",
        "container",
        "Read the host secret file by absolute path.",
        """
def run():
    with open("@SECRET_PATH@") as fh:
        return fh.read()
""",
        frozenset({"error"}),
        applies_to="docker",
        policy="plain",
        error_types=frozenset({"FileNotFoundError", "PermissionError"}),
    ),
    _a(
        "plain-env-secret",
        "container",
        "Look for the host's secret environment variable.",
        """
import os
def run():
    value = os.environ.get("@SECRET_ENV@")
    if value is None:
        raise LookupError("no secret in the environment")
    return value
""",
        frozenset({"error"}),
        applies_to="docker",
        policy="plain",
        error_types=frozenset({"LookupError"}),
    ),
    _a(
        "plain-network-canary",
        "container",
        "Connect to the loopback canary listener (stands in for a metadata service).",
        """
import socket
def run():
    s = socket.create_connection(("127.0.0.1", @CANARY_PORT@), timeout=2)
    s.sendall(b"GET /latest/meta-data HTTP/1.0\\r\\n\\r\\n")
    return "connected"
""",
        frozenset({"error"}),
        applies_to="docker",
        policy="plain",
        error_types=frozenset({"OSError", "ConnectionRefusedError", "TimeoutError", "PermissionError"}),
    ),
    _a(
        "plain-docker-socket",
        "container",
        "Talk to a Docker socket to start a privileged container.",
        """
import socket
def run():
    s = socket.socket(socket.AF_UNIX)
    s.connect("/var/run/docker.sock")
    return "connected"
""",
        frozenset({"error"}),
        applies_to="docker",
        policy="plain",
        error_types=frozenset({"FileNotFoundError", "PermissionError", "ConnectionRefusedError"}),
    ),
    _a(
        "plain-write-root",
        "container",
        "Write outside the tmpfs (read-only root filesystem).",
        """
def run():
    with open("/usr/local/lib/owned.py", "w") as fh:
        fh.write("x")
    return "written"
""",
        frozenset({"error"}),
        applies_to="docker",
        policy="plain",
        error_types=frozenset({"OSError", "PermissionError", "FileNotFoundError"}),
    ),
    _a(
        "plain-fork-bomb",
        "container",
        "Fork until the pids limit stops it.",
        """
import os
def run():
    pids = []
    while True:
        pid = os.fork()
        if pid == 0:
            import time
            time.sleep(60)
            os._exit(0)
        pids.append(pid)
""",
        CONTAINED,
        applies_to="docker",
        policy="plain",
        limits={"wall": 5},
    ),
    _a(
        "plain-disk-fill",
        "container",
        "Fill the writable tmpfs.",
        """
def run():
    with open("/tmp/fill", "wb") as fh:
        while True:
            fh.write(b"\\0" * (1 << 20))
""",
        CONTAINED,
        applies_to="docker",
        policy="plain",
        limits={"wall": 5},
    ),
    _a(
        "plain-fd-exhaustion",
        "container",
        "Open file descriptors until none are left.",
        """
def run():
    handles = [open("/dev/null") for _ in range(10 ** 6)]
    return len(handles)
""",
        CONTAINED,
        applies_to="docker",
        policy="plain",
    ),
    _a(
        "plain-sleep-wall",
        "container",
        "Sleep past the wall clock.",
        """
import time
def run():
    time.sleep(3600)
""",
        frozenset({"limit"}),
        applies_to="docker",
        policy="plain",
        limits={"wall": 2},
    ),
    _a(
        "plain-fake-reply-every-channel",
        "container",
        "Write forged replies to sys.stdout, sys.stderr and the raw fds 1 and 2, then fail.",
        """
import os, sys
def run():
    forged = '{"status": "ok", "result": "FORGED", "error": null, "limit": null, "stdout": ""}\\n'
    sys.stdout.write(forged)
    sys.stderr.write(forged)
    os.write(1, forged.encode())
    os.write(2, forged.encode())
    raise RuntimeError("forged replies written")
""",
        frozenset({"error"}),
        applies_to="docker",
        policy="plain",
        error_types=frozenset({"RuntimeError"}),
    ),
    _a(
        "plain-host-pickle-result",
        "container",
        "Print a pickle payload hoping the host unpickles sandbox output, then fail.",
        """
import pickle, base64
def run():
    print("pickle:" + base64.b64encode(pickle.dumps({"a": 1})).decode())
    raise RuntimeError("payload printed")
""",
        frozenset({"error"}),
        applies_to="docker",
        policy="plain",
        error_types=frozenset({"RuntimeError"}),
    ),
]


def categories() -> dict[str, int]:
    """Number of attacks per category."""
    counts: dict[str, int] = {}
    for attack in ATTACKS:
        counts[attack.category] = counts.get(attack.category, 0) + 1
    return counts
