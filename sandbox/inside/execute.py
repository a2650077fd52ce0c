"""Sandbox side: run one job in *this* process and return the JSON reply.

The caller (the zygote's forked child, or the Docker harness) has already
isolated this process; this module applies the policy inside it:
RestrictedPython compilation (`transform`) with the run-time guards
(`guards`, `toolbuiltins`) and `facades` for imports (``restricted=True``),
or plain ``compile``/``exec`` (``restricted=False``, Docker plain mode).
Either way the result is turned into JSON here (`results`), by exact type,
under depth and size caps: the host only ever receives bytes.

Reply (UTF-8 JSON object, at most ``job["limits"]["output"]`` KiB):
    {"status": "ok"|"error"|"blocked"|"limit",
     "result": <JSON>, "error": {"type", "message", "line"} | null,
     "limit": null|"memory"|"output", "stdout": "<captured prints>",
     "calls": <int, snippet jobs only: calls of the entrypoint that returned>}

Imports only the standard library, RestrictedPython and the sibling policy
modules, so the container image needs nothing else. Call `warm` once before
forking: after it, running a job imports nothing.
"""

from __future__ import annotations

import ast
import builtins
import codecs
import contextlib
import datetime
import gc
import json
import marshal
from collections.abc import Callable
from typing import Any

from . import precompiled
from .facades import guarded_import, reset_for_call
from .guards import STATE, OutputLimit
from .policy import ABSENT_BUILTINS, ALLOWED_BUILTINS, ALLOWED_EXCEPTIONS, EXCEPTION_ALIASES, TOOL_FILENAMES
from .results import ResultNotJSON, to_json
from .toolbuiltins import build_builtins, guard_hooks
from .transform import ToolTransformer

__all__ = ["compile_parts", "heap_frozen_for_good", "run_job", "compile_job", "warm"]

MAX_MESSAGE_CHARS = 2000
_LIMIT_STDOUT_CHARS = 4096

_BUILTINS = build_builtins(guarded_import)
_HOOKS = guard_hooks()
_OFFERED_NAMES = frozenset(ALLOWED_BUILTINS) | frozenset(ALLOWED_EXCEPTIONS) | frozenset(EXCEPTION_ALIASES)
# Real builtins a tool might reach for that the sandbox does not offer; using
# one is refused at compile time (blocked). At run time (a name the tool also
# binds somewhere) it is an ordinary NameError: `blocked` comes only from the
# compiler or the guards' record, never from an exception the tool can raise.
_WITHHELD_BUILTINS = (
    frozenset(n for n in dir(builtins) if not n.startswith("_")) - _OFFERED_NAMES - frozenset(ABSENT_BUILTINS)
)


def _reply(
    status: str,
    result: Any = None,
    error: dict[str, Any] | None = None,
    limit: str | None = None,
    stdout: str = "",
    calls: int | None = None,
) -> dict[str, Any]:
    reply = {"status": status, "result": result, "error": error, "limit": limit, "stdout": stdout}
    if calls is not None:  # snippet jobs only: how many calls of the entrypoint returned
        reply["calls"] = calls
    return reply


def _error(kind: str, message: str, line: int | None = None) -> dict[str, Any]:
    return {"type": kind, "message": message[:MAX_MESSAGE_CHARS], "line": line}


def _encode(reply: dict[str, Any]) -> bytes:
    # ensure_ascii: lone surrogates in tool strings must not break encoding.
    return json.dumps(reply, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


# Built now: under memory exhaustion there may be no room to build it later.
_MEMORY_REPLY = _encode(_reply("limit", error=_error("MemoryError", "the tool ran out of memory"), limit="memory"))


# ---------------------------------------------------------------------------
# Compilation
# ---------------------------------------------------------------------------

_FRIENDLY_NODES = {
    "AsyncFunctionDef": "async def",
    "Await": "await",
    "AsyncFor": "async for",
    "AsyncWith": "async with",
    "TryStar": "try/except*",
    "Nonlocal": "nonlocal",
    "Match": "match",
}


def _rewrite_refusal(text: str) -> tuple[str, int | None]:
    """Turn a RestrictedPython error line into ``line N: what``."""
    line: int | None = None
    body = text
    if text.startswith("Line "):
        head, _, body = text.partition(": ")
        try:
            line = int(head[5:])
        except ValueError:
            line = None
    body = body.strip()
    quoted = body.split('"')[1] if body.count('"') >= 2 else ""
    if "invalid variable name because it starts with" in body:
        body = f'name "{quoted}" is not allowed (names starting with "_" are private)'
    elif "invalid attribute name because it starts with" in body:
        body = f'attribute name "{quoted}" is not allowed (names starting with "_" are private)'
    elif "is a restricted name" in body:
        body = f'attribute "{quoted}" is not allowed (frame, code and generator internals)'
    elif body.endswith("is a reserved name."):
        body = f'name "{quoted}" is reserved'
    elif body == '"*" imports are not allowed.':
        body = '"from ... import *" is not allowed'
    elif body.endswith(" statements are not allowed."):
        node = body.split(" ", 1)[0]
        body = f"{_FRIENDLY_NODES.get(node, node)} is not allowed"
    prefix = f"line {line}: " if line is not None else ""
    return prefix + body, line


def _bound_names(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    return names


def _withheld_builtin_use(tree: ast.AST, bound: set[str]) -> tuple[str, int | None] | None:
    """The first use of a withheld builtin that `bound` (the names the
    source binds, and those known from before) does not shadow."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Name)
            and isinstance(node.ctx, ast.Load)
            and node.id in _WITHHELD_BUILTINS
            and node.id not in bound
        ):
            return f'line {node.lineno}: builtin "{node.id}" is not available in the sandbox', node.lineno
    return None


class _Refused(Exception):
    """Compilation produced a reply instead of code."""

    def __init__(self, reply: dict[str, Any]) -> None:
        super().__init__(reply["status"])
        self.reply = reply


def _blocked(message: str, line: int | None) -> _Refused:
    return _Refused(_reply("blocked", error=_error("PolicyViolation", message, line)))


def compile_job(job: dict[str, Any], restricted: bool) -> tuple[Any, Any, Any]:
    """(prelude code or None, the tool's code, snippet code or None) of a
    job, compiled here. Raises _Refused."""
    prelude_code: Any = None
    known: set[str] = set()
    if job.get("prelude") is not None:
        prelude_code, known = _compile(job.get("prelude"), "<prelude>", restricted, set())
    code, bound = _compile(job.get("source"), "<tool>", restricted, known)
    snippet_code = None
    if job.get("mode", "args") == "snippet":
        snippet_code, _ = _compile(job.get("snippet"), "<snippet>", restricted, bound | known)
    return prelude_code, code, snippet_code


def _unpack(sent: dict[str, Any]) -> tuple[Any, Any, Any]:
    return sent.get("<prelude>"), sent["<tool>"], sent.get("<snippet>")


def compile_parts(job: dict[str, Any], restricted: bool) -> dict[str, tuple[str, bytes]] | None:
    """The host's side of `precompiled`: every part of ``job`` compiled by
    the very code a child runs (`compile_job`), as ``{filename:
    (digest, marshalled code)}``; None if the job is not one to send as
    code: a text over `precompiled.MAX_TEXT_BYTES` in all, one the policy
    refuses or that does not compile (the child compiles it and answers as
    it always did), a code object over `precompiled.MAX_CODE_BYTES`."""
    parts = precompiled.parts_of(job)
    texts = [
        job.get("prelude"),
        job.get("source"),
        job.get("snippet") if job.get("mode", "args") == "snippet" else None,
    ]
    if any(text is not None and type(text) is not str for text in texts):
        return None
    if (
        sum(len(text.encode("utf-8", "surrogatepass")) for text in texts if text is not None)
        > precompiled.MAX_TEXT_BYTES
    ):
        return None
    try:
        prelude_code, code, snippet_code = compile_job(job, restricted)
    except _Refused:
        return None
    by_name = {"<prelude>": prelude_code, "<tool>": code, "<snippet>": snippet_code}
    out: dict[str, tuple[str, bytes]] = {}
    for filename, part_texts in parts:
        part_digest = precompiled.digest(filename, part_texts, restricted)
        data = marshal.dumps(by_name[filename])
        if part_digest is None or len(data) > precompiled.MAX_CODE_BYTES:
            return None
        out[filename] = (part_digest, data)
    return out


def _compile(source: Any, filename: str, restricted: bool, known: set[str]) -> tuple[Any, set[str]]:
    if type(source) is not str:
        raise _Refused(_reply("error", error=_error("TypeError", f"{filename} source must be a string")))
    try:
        tree = ast.parse(source, filename, "exec")
    except SyntaxError as exc:
        raise _Refused(_reply("error", error=_error("SyntaxError", str(exc.msg), exc.lineno))) from None
    except (RecursionError, MemoryError):
        raise _blocked(f"{filename} source is too deeply nested to compile", None) from None
    except ValueError as exc:  # e.g. NUL bytes in the source
        raise _Refused(_reply("error", error=_error("SyntaxError", str(exc)))) from None
    bound = _bound_names(tree)
    if not restricted:
        # dont_inherit: this module's own `from __future__ import annotations`
        # must not reach the tool, whose annotations Python evaluates at def time.
        return compile(tree, filename, "exec", dont_inherit=True), bound
    withheld = _withheld_builtin_use(tree, bound | known)
    if withheld is not None:
        raise _blocked(*withheld)
    # RestrictedPython's own compile_restricted_exec is this, but compiles in
    # a module that has `from __future__ import annotations`, which the tool
    # would inherit (annotations never evaluated, `def f(x: Image)` running
    # where Python raises NameError); so the transform runs here and the
    # compile inherits nothing.
    errors: list[str] = []
    try:
        ToolTransformer(errors, [], {}).visit(tree)
        code = None if errors else compile(tree, filename, "exec", dont_inherit=True)
    except (RecursionError, MemoryError):
        # Hostile nesting can exhaust the recursive transformer itself.
        raise _blocked(f"{filename} source is too deeply nested to compile", None) from None
    if errors:
        message, line = _rewrite_refusal(errors[0])
        more = len(errors) - 1
        if more:
            message += f" (and {more} more refusal{'s' if more > 1 else ''})"
        raise _blocked(message, line)
    if code is None:
        raise _blocked(f"{filename} could not be compiled under the policy", None)
    return code, bound


# ---------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------


def _tool_line(exc: BaseException) -> int | None:
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename in TOOL_FILENAMES:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


_PLAIN_ARGS = (str, int, float, bool, bytes, type(None))
# The builtin exception classes themselves (never a tool-made subclass).
_BUILTIN_EXCEPTIONS = frozenset(
    value for value in vars(builtins).values() if isinstance(value, type) and issubclass(value, BaseException)
)

# BaseException's own `args` descriptor (typeshed declares it as a plain
# attribute): read through it, a tool class cannot override what `args` returns.
_BASE_ARGS: Any = vars(BaseException)["args"]


def _plain_arg(value: Any) -> bool:
    # A tuple of plain values too: SyntaxError's (filename, line, offset, text, ...).
    return type(value) in _PLAIN_ARGS or (type(value) is tuple and all(type(v) in _PLAIN_ARGS for v in value))


def _exception_message(exc: BaseException, depth: int = 0) -> str:
    """The exception's text without running any method the tool defined:
    a tool-made __str__ or argument __repr__ could hang or lie."""
    args = _BASE_ARGS.__get__(exc)
    if type(args) is tuple and len(args) == 1 and type(args[0]) in _BUILTIN_EXCEPTIONS and depth < 2:
        # raise ValueError(err) from err (pandas does): the wrapped one's text
        return _exception_message(args[0], depth + 1)
    if type(args) is not tuple or not all(_plain_arg(a) for a in args):
        return f"<{type(exc).__name__} with non-text arguments>"
    try:
        if type(exc).__module__ == "builtins":
            return type(exc).__str__(exc)
        return BaseException.__str__(exc)
    except Exception:  # noqa: BLE001 - e.g. an int argument beyond the digit limit
        return f"<{type(exc).__name__}>"


class _CappedStdout:
    """sys.stdout for plain mode: feeds the same capped buffer as _print_."""

    def write(self, text: str) -> int:
        text = str(text)
        STATE.write_stdout(text)
        return len(text)

    def flush(self) -> None:
        return None


def _namespace(restricted: bool) -> dict[str, Any]:
    if restricted:
        return {"__builtins__": _BUILTINS, **_HOOKS}
    return {"__builtins__": builtins, "__name__": "tool"}


def _execute(job: dict[str, Any], restricted: bool, cap: int) -> dict[str, Any]:
    mode = job.get("mode", "args")
    # A prelude (a library's shared import block) runs first, in the tool's
    # own namespace and under the same policy: what it binds, the tool sees.
    # The host's code for these very texts, when it sent it (`precompiled`);
    # otherwise compiled here.
    sent = precompiled.codes(job, restricted)
    prelude_code, code, snippet_code = compile_job(job, restricted) if sent is None else _unpack(sent)
    if mode not in ("args", "snippet"):
        return _reply("error", error=_error("ValueError", f"unknown call mode {mode!r}"))

    ns = _namespace(restricted)
    calls: Callable[[], int | None] = _no_count
    redirect = contextlib.nullcontext() if restricted else contextlib.redirect_stdout(_CappedStdout())
    with redirect:
        if prelude_code is not None:
            exec(prelude_code, ns)
        exec(code, ns)
        if STATE.violation is not None:  # refused while defining, then caught
            return _violation_reply()
        if snippet_code is None:
            entrypoint = job.get("entrypoint")
            func = ns.get(entrypoint) if type(entrypoint) is str else None
            if func is None or not callable(func):
                return _reply(
                    "error",
                    error=_error("NameError", f"the tool defines no function {entrypoint!r}"),
                    stdout=STATE.stdout(),
                )
            args = job.get("args") or {}
            if job.get("arg_forms"):
                args = _with_forms(args, job["arg_forms"])
            value = func(**args)
        else:
            ns.pop("ans", None)
            calls = _count_calls(ns, job.get("entrypoint"), stub=job.get("stub_entrypoint") is True)
            exec(snippet_code, ns)
            value = ns["ans"] if "ans" in ns else STATE.stdout()
    _tool_finished()
    return _reply("ok", to_json(value, cap - len(STATE.stdout())), stdout=STATE.stdout(), calls=calls())


def _no_count() -> None:
    return None


class _Opaque:
    """What a stubbed entrypoint returns: an object nothing can be made of.
    Every use a snippet could make of a value (truth, comparison, hashing,
    text, numbers, items, iteration, arithmetic) raises, so a snippet that
    uses what the tool returned in any way fails in the stubbed run."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("the tool's return value is not available in this run")

    __bool__ = __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __hash__ = _refuse
    __str__ = __repr__ = __format__ = __bytes__ = __int__ = __float__ = __index__ = __complex__ = _refuse
    __len__ = __iter__ = __getitem__ = __contains__ = __call__ = __reversed__ = _refuse
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __mod__ = __rmod__ = _refuse
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = __neg__ = __abs__ = _refuse


def _count_calls(ns: dict[str, Any], entrypoint: Any, *, stub: bool = False) -> Callable[[], int | None]:
    """Put a counting wrapper in place of the entrypoint, so the reply can say
    how many calls of it returned while the snippet ran (LATM `make` counts a
    use case only if it called the tool: docs/latm.md). The count lives in
    this closure. Under the restricted policy tool and snippet code cannot
    reach it (a closure's cells are underscore attributes, and frames,
    `gc` and `inspect` are out of reach); a snippet that defines its own
    function of that name replaces the wrapper, and its calls are not
    counted. Under plain policy the tool shares this interpreter and could
    change the count, as it could any byte of the reply: there the count
    is as trustworthy as the result itself.

    With ``stub`` the tool is not called at all: each call returns a fresh
    `_Opaque` (and counts), so a snippet that still answers right never
    used what the tool returned."""
    func = ns.get(entrypoint) if type(entrypoint) is str else None
    if func is None or not callable(func):
        return _no_count
    returned = [0]

    def counted(*args: Any, **kwargs: Any) -> Any:
        value = _Opaque() if stub else func(*args, **kwargs)
        returned[0] += 1  # after the return: a call that raised did not run the tool to an answer
        return value

    ns[entrypoint] = counted
    return lambda: returned[0]


class ArgumentFormError(Exception):
    """A DataFrame or ndarray argument could not be made from its JSON."""


def _with_forms(args: dict[str, Any], forms: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments with each JSON value named in ``forms`` made into
    a pandas DataFrame (records, or ``{"columns", "data"}``) or a numpy array
    (docs/formats.md). Only with the library already loaded: inside the jail
    nothing else could be imported, and a tool without packages never
    reaches this."""
    import sys

    out = dict(args)
    for name, form in forms.items():
        value = out.get(name)
        if value is None:
            continue  # an Optional frame left out, or null
        library = "pandas" if form == "dataframe" else "numpy"
        module = sys.modules.get(library)
        if module is None:
            raise ArgumentFormError(
                f"argument {name!r} is a {form}, but {library} is not available in the sandbox "
                f"(add the version with --requires {library})"
            )
        try:
            if form == "ndarray":
                out[name] = module.asarray(value)
            elif isinstance(value, dict):
                out[name] = module.DataFrame(value.get("data"), columns=value.get("columns"))
            else:
                out[name] = module.DataFrame(value)
        except (ValueError, TypeError) as exc:
            # e.g. {"columns": [0], "data": [[]]}: JSON of the right shape
            # that the library cannot build. The tool never ran: the input's
            # fault, said as such, not an exception of the tool's.
            raise ArgumentFormError(f"argument {name!r} cannot be made a {form}: {_exception_message(exc)}") from None
    return out


def _tool_finished() -> None:
    """The tool returned or raised. Finalisers of the garbage it left (a
    generator's ``finally`` in a reference cycle) run now, while what they
    do still counts; then the collector pauses until the reply is built, so
    none runs in the middle of result conversion. Cheap: only objects made
    during the call are looked at (see `run_job`)."""
    gc.collect()
    gc.disable()


def _violation_reply() -> dict[str, Any]:
    return _reply(
        "blocked",
        error=_error("PolicyViolation", STATE.violation or "refused by the policy", STATE.violation_line),
        stdout=STATE.stdout(),
    )


def _output_reply(cap: int) -> dict[str, Any]:
    return _reply(
        "limit",
        limit="output",
        error=_error("OutputLimit", f"the reply exceeds the output limit of {cap // 1024} KiB"),
        stdout=STATE.stdout()[:_LIMIT_STDOUT_CHARS],
    )


def _run(job: dict[str, Any], restricted: bool, cap: int) -> dict[str, Any]:
    try:
        reply = _execute(job, restricted, cap)
    except _Refused as refused:
        return refused.reply  # the compiler's refusal: no tool code ran
    except BaseException as exc:  # noqa: BLE001 - whatever the tool raises is an outcome
        _tool_finished()
        reply = _exception_reply(exc, cap)
    # The reply holds only fresh plain data. The tool's namespace, value and
    # traceback are unreachable now: their finalisers (a generator's
    # `finally`, a socket closing in plain mode) run here, before the record
    # decides, and none is left to run after it.
    gc.collect()
    return _decided(reply, cap)


def _exception_reply(exc: BaseException, cap: int) -> dict[str, Any]:
    """The reply for an exception that ended the call. Which one it was is
    only trusted where tool code cannot make it: OutputLimit and
    PolicyViolation derive from BaseException and cannot be named, caught or
    raised by restricted code (and STATE decides anyway, see `_decided`);
    MemoryError cannot be named or obtained with type() there, so one
    reaching this point was raised by the interpreter or a guard."""
    if isinstance(exc, OutputLimit):
        return _output_reply(cap)
    if isinstance(exc, MemoryError):
        return _reply("limit", limit="memory", error=_error("MemoryError", "the tool ran out of memory"))
    if isinstance(exc, ResultNotJSON):
        return _reply("error", error=_error("ResultNotJSON", str(exc)), stdout=STATE.stdout())
    return _reply(
        "error", error=_error(type(exc).__name__, _exception_message(exc), _tool_line(exc)), stdout=STATE.stdout()
    )


def _decided(reply: dict[str, Any], cap: int) -> dict[str, Any]:
    """The guards' own record outranks whatever the call ended with: a
    refusal or an output overflow the tool caught (``finally: return``, an
    ``__exit__`` returning True) or that happened in a finaliser still
    decides the outcome."""
    if STATE.violation is not None:
        return _violation_reply()
    if STATE.output_exceeded:
        return _output_reply(cap)
    return reply


_FROZEN_FOR_GOOD = False


def heap_frozen_for_good() -> None:
    """The caller froze the heap (gc.freeze) and never thaws it: from now on
    `run_job` need not count the frozen objects."""
    global _FROZEN_FOR_GOOD
    _FROZEN_FOR_GOOD = True


def run_job(job: dict[str, Any], *, restricted: bool = True) -> bytes:
    """Run one job (``Job.wire()``) in this process; never raises.

    Returns the encoded reply, at most the job's output limit in bytes."""
    try:
        cap = int(job.get("limits", {}).get("output", 1024)) * 1024
    except BaseException:  # noqa: BLE001 - a malformed job is still an answer
        cap = 1024 * 1024
    collecting = gc.isenabled()
    # Everything older than this call is not the tool's: frozen, it is left
    # out of the collection when the tool finishes (`_tool_finished`). A
    # child of the zygote inherits a frozen heap and never thaws it (and
    # says so through `heap_frozen_for_good`: gc.get_freeze_count() walks the
    # whole frozen heap, some 30 ms once pandas is loaded).
    thaw = not _FROZEN_FOR_GOOD and gc.get_freeze_count() == 0
    try:
        gc.freeze()
        STATE.reset(cap)
        reset_for_call()
        reply = _run(job, restricted, cap)
        data = _encode(reply)
        if len(data) > cap:
            data = _encode(_output_reply(cap))
            if len(data) > cap:
                data = _encode(_reply("limit", limit="output"))
        return data
    except MemoryError:
        return _MEMORY_REPLY
    except BaseException as exc:  # noqa: BLE001 - the contract: never raise
        try:
            return _encode(_reply("error", error=_error("InternalError", f"{type(exc).__name__} in the sandbox")))
        except BaseException:  # noqa: BLE001
            return _MEMORY_REPLY
    finally:
        if thaw:
            gc.unfreeze()
        if collecting:
            gc.enable()


_WARM_SOURCE = """
import math, itertools, functools, collections, heapq, bisect, fractions, decimal
import statistics, random, string, re, json, datetime, typing, copy
from typing import List, Optional

class Box(object):
    def __init__(self, v):
        self.v = v
    def __repr__(self):
        return "Box(%r)" % (self.v,)

def run(n: int = 3) -> Optional[List[int]]:
    print("warm", "{0}-{k}".format(n, k=2), f"{n:>3}", Box(n))
    c = collections.Counter("abca")
    d = decimal.Decimal("1.10") + decimal.Decimal(2)
    t = datetime.datetime.strptime("2020-01-02", "%Y-%m-%d")
    m = re.search(r"(\\d+)", "ab12")
    s = json.dumps({"a": [1, 2]}) + str(json.loads("[1]"))
    p = list(itertools.permutations([1, 2, 3]))
    x = sorted({3, 1, 2}) + [sum(range(n)), max(1, 2), min([4, 5])]
    y = functools.reduce(lambda a, b: a + b, [1, 2], 0) + statistics.mean([1, 2, 3])
    z = random.randint(1, 6) + heapq.nsmallest(1, [3, 1])[0] + bisect.bisect([1, 2], 1)
    q = fractions.Fraction(1, 3) + math.sqrt(4) + len(string.digits)
    for i, (a, b) in enumerate(zip("ab", "cd")):
        x += [i]
    return [c["a"], str(d), t.year, m.group(1), s, len(p), x, y, z, str(q), copy.deepcopy({1: 2})[1], {1, 2}]
"""


def warm() -> None:
    """Import and build everything a job needs, then run one of each kind,
    so a forked child (which may not be able to read files) imports nothing."""
    for encoding in ("ascii", "latin-1", "utf-8", "utf-8-sig", "utf-16", "utf-32", "cp1252", "idna"):
        codecs.lookup(encoding)
    datetime.datetime.strptime("2020-01-02", "%Y-%m-%d")
    for restricted in (True, False):
        run_job(
            {"source": _WARM_SOURCE, "entrypoint": "run", "mode": "args", "args": {"n": 3}, "limits": {"output": 64}},
            restricted=restricted,
        )
        run_job(
            {
                "source": _WARM_SOURCE,
                "entrypoint": "run",
                "mode": "snippet",
                "snippet": "ans = run(2)",
                "limits": {"output": 64},
            },
            restricted=restricted,
        )
    STATE.reset(1024 * 1024)
