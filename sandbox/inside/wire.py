"""The one wire between a sandboxed process and the host, for both backends.

The restricted backend's host (`restricted.py`), the Docker harness inside
the container (`harness.py`) and the Docker host (`docker.py`) all read and
write the sandbox's reply through this module, so they agree on what a reply
is and on how strict to be. It imports only the standard library: it is
copied into the Docker image next to the harness.

Two things cross, and they are trusted differently:

- The *reply*: the JSON object `execute.run_job` writes. Under the
  ``restricted`` policy it is built by the policy's own code; under ``plain``
  the tool is arbitrary Python in the same process and could have written any
  bytes. `parse_reply` checks it hard either way: JSON only (``NaN``,
  ``Infinity`` and numbers that overflow to infinity, like ``1e400``,
  refused; integers of at most MAX_INT_DIGITS digits), at most the output cap in bytes, nested no deeper
  than the sandbox ever nests a result (checked on the text before it is
  parsed, so a forged reply 1,000 levels deep is refused, never a
  RecursionError), the exact shape, and lone surrogates replaced with U+FFFD
  so nothing downstream (the audit log, a terminal, ``json.dumps`` of the
  caller) meets a string it cannot encode.
- The *facts*: how the process ended, from something that ran no tool code
  (the zygote's trailer; the Docker harness's parent; the host's own kills):
  exit code, signal, who killed it and why, CPU seconds, peak and starting
  resident memory, the cgroup's OOM-kill and pids-limit counters.

`classify` turns both into a `Result`'s fields. The tool's words never decide
a limit or a refusal on their own:

- ``wall`` and ``output`` come from a kill or a cut the host side made;
  ``output`` also from the sandbox's own reply encoder, which replaces a
  reply over the cap with an ``output`` claim. (Under ``plain`` that
  accounting runs in the tool's process, so a tool could make the claim
  itself; it gains nothing, as the call then returns no result.)
- ``cpu``: SIGXCPU or SIGKILL, and the CPU time used reaches 70% of the
  whole-second rlimit (rusage is tick-sampled and reads a little low).
- ``memory`` (the *memory rule*): the cgroup's OOM killer fired during the
  call, or the peak resident size rose above the starting one by at least
  half the memory allowance. Under ``plain`` a reply claiming the memory
  limit is believed only then; otherwise it is an ``error`` of type
  MemoryError (a tool can ``raise MemoryError`` or write the claim itself;
  a single request the limit refused before any memory was used looks the
  same from outside, and is reported the same way). A death by SIGKILL,
  SIGSEGV, SIGBUS or SIGABRT is ``memory`` under the same rule.
- ``disk``: SIGXFSZ, when the disk really was used (at least half the
  allowance) or the backend cannot say how much was used.
- ``pids`` (Docker): an ``error`` reply or a death while the pids cgroup
  counted refusals (its ``max`` event counter rose during the call).
- ``blocked`` only under the ``restricted`` policy, whose guard keeps the
  record; under ``plain`` no policy ran, so such a reply is an ``error``.
- A well-formed ``ok`` or ``error`` reply is the tool's own answer (which it
  controls under any policy) and settles the call. Under ``plain`` a reply
  that claims a limit (or a refusal) counts only if the process then ended
  normally (exit 0, not killed by a signal): otherwise the facts decide, as
  if there were no reply.
"""

from __future__ import annotations

import hmac
import json
import math
import re
import signal
from collections.abc import Callable, Iterator, Mapping
from typing import Any

__all__ = [
    "FACT_KEYS",
    "KEY_CHARS",
    "LIMIT_NAMES",
    "MAX_FILE_DEPTH",
    "MAX_INT_DIGITS",
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_REPLY_DEPTH",
    "MAX_RESULT_DEPTH",
    "NotJSON",
    "OverBound",
    "OverCap",
    "ProtocolError",
    "REPLY_STATUSES",
    "VALUE_BYTES",
    "check_facts",
    "classify",
    "frame",
    "job_message",
    "max_values",
    "memory_used",
    "needs_facts",
    "parse_float",
    "parse_frame_header",
    "parse_int",
    "parse_reply",
    "read_json",
    "safe_text",
    "value_count_over",
]

REPLY_STATUSES: tuple[str, ...] = ("ok", "error", "blocked", "limit")
# Same as contract.LIMIT_NAMES (this module cannot import it; a test checks).
LIMIT_NAMES: tuple[str, ...] = ("cpu", "wall", "memory", "output", "pids", "disk")
# Same as results.MAX_RESULT_DEPTH: containers the sandbox nests a result in.
MAX_RESULT_DEPTH = 64
# The reply object itself is one more level.
MAX_REPLY_DEPTH = MAX_RESULT_DEPTH + 1
# What the sandbox itself may claim in a reply: execute.py only ever names
# these two (the others are seen from outside the process).
_REPLY_LIMITS = frozenset({"memory", "output"})
_REPLY_KEYS = frozenset({"status", "result", "error", "limit", "stdout", "calls"})
_ERROR_KEYS = frozenset({"type", "message", "line"})
_MAX_TYPE_CHARS = 200
_MAX_MESSAGE_CHARS = 4000
_MIB_KIB = 1024

FACT_KEYS: tuple[str, ...] = (
    "exit",  # exit code, or None if killed by a signal
    "signal",  # the signal that ended it, or None
    "killed",  # who killed it and why, if the host side did: "wall", "output", ...
    "cpu",  # CPU seconds used (user + system)
    "maxrss_kib",  # peak resident size
    "baseline_rss_kib",  # resident size it started with (the forking parent's)
    "oom_kills",  # OOM kills in its cgroup during the call (None: unknown)
    "pids_max",  # pids-limit refusals in its cgroup during the call (None: unknown)
    "disk_used_kib",  # what it left on its writable disk (None: unknown)
    "error",  # the fact source's own failure (e.g. the harness got a bad job)
)
# Why the host side killed it: "wall" and "output" are limits; any other
# reason ("abandoned", "shutdown", "protocol", ...) means the sandbox stopped.
_KILL_REASON = re.compile(r"[a-z_]{1,32}")

# For bytes.translate: braces read as brackets (only nesting counts here),
# and every byte that is no bracket deleted.
_AS_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# An escaped UTF-16 surrogate anywhere: json.loads joins pairs and keeps lone
# ones, so only then can a parsed string hold a surrogate.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
# Strings are cut out of a JSON text this many bytes at a time (`_outside_strings`).
_PIECE = 1 << 16
# The host's memory for a reply: json.loads makes one Python object per
# value, 30 to 70 bytes whatever its size in the text (``[],`` is 3 bytes of
# JSON and 64 of memory), so the output cap bounds the reply's values as well
# as its bytes: at most one value per VALUE_BYTES bytes of the cap (65,536
# per MiB), a string (key or value) counting as two (it costs ~57 bytes
# before its first character). Parsed, a reply at the cap is then at most
# about 2.7 times the cap, more only for text beyond U+FFFF (4 bytes a
# character in Python); see docs/sandbox-restricted.md, "The host's memory
# for a reply".
VALUE_BYTES = 16
# The reply object's own keys and fields (a string counting as two), beyond the result's.
_ENVELOPE_VALUES = 32
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class ProtocolError(ValueError):
    """The bytes are not a reply (or facts) of the documented shape."""


class OverCap(ProtocolError):
    """The reply is larger than the output cap: the host cuts it off."""


# --------------------------------------------------------------------------- text


def safe_text(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD (encodable as UTF-8)."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def _safe_value(value: Any) -> Any:
    """`value` (fresh from json.loads) with every lone surrogate replaced,
    changed in place: a copy of a reply at the output cap would double the
    host's memory for it. Recursion is bounded: the text was checked for
    depth before parsing."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, list):
        for index, item in enumerate(value):
            if not isinstance(item, (int, float, bool)) and item is not None:
                value[index] = _safe_value(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(item, (int, float, bool)) and item is not None:
                value[key] = _safe_value(item)  # a value changes: the keys, and their order, stay
        if any(_LONE_SURROGATE.search(key) for key in value):
            renamed = [(safe_text(key), item) for key, item in value.items()]
            value.clear()
            value.update(renamed)
    return value


def _unescaped(raw: bytes) -> bytes:
    """The JSON text without its escape pairs (``\\\\`` and ``\\"``), removed
    left to right as a JSON reader pairs them: every quote left opens or
    closes a string (in UTF-8 no byte of a multi-byte character is a quote
    or a backslash)."""
    return raw.replace(b"\\\\", b"").replace(b'\\"', b"")


def _outside_strings(unescaped: bytes) -> Iterator[bytes]:
    """The text (`_unescaped`) with its strings cut out, quotes and all, in
    pieces of at most _PIECE bytes: cutting the whole text at every quote
    at once made one object per string, about 20 times the text's size for
    a reply of short strings."""
    inside = 0  # 1 while the chunk starts inside a string
    for start in range(0, len(unescaped), _PIECE):
        parts = unescaped[start : start + _PIECE].split(b'"')
        yield b"".join(parts[inside::2])
        inside ^= (len(parts) - 1) & 1


def _structural(text: bytes) -> int:
    # Every value but the outermost follows one of these: ``[`` or ``,`` in
    # an array; ``{``, ``,`` or ``:`` in an object (keys counted as values).
    return text.count(b",") + text.count(b":") + text.count(b"[") + text.count(b"{")


def value_count_over(raw: bytes, most: int) -> bool:
    """Whether the JSON text holds more than `most` values, a string (key or
    value) counting as two: its quotes. Counted without parsing, at C speed:
    first with strings' contents counted too (never under), then, only if
    that is over, outside strings."""
    if _structural(raw) + raw.count(b'"') + 1 <= most:
        return False
    unescaped = _unescaped(raw)
    count = 1 + unescaped.count(b'"')
    for piece in _outside_strings(unescaped):
        count += _structural(piece)
        if count > most:
            return True
    return count > most


def _shallow(raw: bytes, max_depth: int = MAX_REPLY_DEPTH) -> bool:
    """Whether the JSON text nests arrays and objects at most `max_depth`
    deep, found without parsing it (so without recursion) at C speed.

    Strings are cut out first (escape pairs removed left to right, as a JSON
    reader pairs them; in UTF-8 no byte of a multi-byte character is a quote
    or a backslash), braces become brackets, and innermost ``[]`` pairs are
    removed, one level per pass (one ``replace`` never cascades). Valid JSON
    empties in exactly its depth; text that does not empty
    is too deep or not JSON, and on text that is not JSON this never counts
    less than a JSON reader would descend before it failed.
    """
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return True  # brackets inside strings counted too: never under
    pieces = _outside_strings(_unescaped(raw))
    brackets = b"".join(piece.translate(_AS_BRACKETS, _NOT_BRACKETS) for piece in pieces)
    for _level in range(max_depth):
        if not brackets:
            return True
        inner = brackets.replace(b"[]", b"")
        if inner == brackets:
            return False  # unbalanced: not JSON
        brackets = inner
    return not brackets


# --------------------------------------------------------------------------- bounded JSON
#
# `read_json` is the one JSON reader for everything the host reads from
# users, files and peers (call arguments, bundles, tests and task files, the
# sandbox's reply): the bounds below hold for all of them, so a hostile input
# is a clean refusal (exit 2 at the CLI), never a RecursionError, a
# ValueError from deep inside int(), or an ``Infinity`` printed as JSON.

# Python refuses to turn an int of more digits than this into text (its
# int-to-string limit, sys.get_int_max_str_digits() by default); such a
# number could be read but never written back, so it is refused on the way in.
MAX_INT_DIGITS = 4300
# Arrays and objects nested in one another, outermost included: a call's
# arguments (the object, and values as deep as a result may be)...
MAX_JSON_DEPTH = 64
# ...and a file that holds such values in a structure of its own (a bundle,
# a tests file, a task file): values nested up to registry.cases' 100 levels.
MAX_FILE_DEPTH = 128
# Any one JSON text the host reads (a bundle is the largest honest one).
MAX_JSON_BYTES = 64 * 1024 * 1024
# A run of more digits than MAX_INT_DIGITS anywhere in the text: only then is
# the (slower, per-number) integer check needed. Found at C speed in linear
# time: every digit read as "0", everything else as " ", then one substring
# search. (A pattern like [0-9]{4301} is not linear: text made of runs just
# under the limit costs a run's length at every digit, 20 s for 4 MB.)
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_TOO_MANY_DIGITS = b"0" * (MAX_INT_DIGITS + 1)


def _has_long_digit_run(raw: bytes) -> bool:
    return len(raw) > MAX_INT_DIGITS and _TOO_MANY_DIGITS in raw.translate(_DIGITS_AS_ZEROS)


class NotJSON(ProtocolError):
    """The text is not JSON (``NaN`` and ``Infinity`` included: they are not
    JSON). ``detail``: why, without the name of what was read."""

    def __init__(self, what: str, detail: str) -> None:
        super().__init__(f"{what} is not JSON: {detail}")
        self.detail = detail


class OverBound(ProtocolError):
    """JSON over one of `read_json`'s bounds: size, depth, an integer's digits,
    or a number too large to be finite. ``detail``: which, without the name
    of what was read."""

    def __init__(self, what: str, detail: str) -> None:
        super().__init__(f"{what}: {detail}")
        self.detail = detail


class _Refused(Exception):
    # Raised inside json.loads by a hook, which cannot know what is being read.
    def __init__(self, problem: str, bound: bool) -> None:
        super().__init__(problem)
        self.problem, self.bound = problem, bound


def _refuse_constant(name: str) -> Any:
    raise _Refused(f"{name} is not JSON", bound=False)


def parse_int(text: str) -> int:
    """A JSON integer, refused (before int() sees it) past MAX_INT_DIGITS digits."""
    digits = len(text) - (text[:1] == "-")
    if digits > MAX_INT_DIGITS:
        raise _Refused(f"integer with {digits} digits (limit {MAX_INT_DIGITS})", bound=True)
    return int(text)


def parse_float(text: str) -> float:
    """A JSON number with a fraction or exponent; one that overflows to an
    infinity (``1e400``) is refused, so a non-finite number never gets in,
    however it is spelled."""
    value = float(text)
    if not math.isfinite(value):
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise _Refused(f"number {shown} is too large (not a finite float)", bound=True)
    return value


def read_json(
    data: bytes | str,
    what: str,
    *,
    max_bytes: int = MAX_JSON_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
    encoding: str = "utf-8",
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
) -> Any:
    """Parse one JSON text the host was given, within bounds.

    Raises OverBound past ``max_bytes`` (of UTF-8), nested deeper than
    ``max_depth`` (checked on the text before parsing: never a
    RecursionError), an integer of more than MAX_INT_DIGITS digits or a
    number that overflows to infinity; NotJSON for anything else that is not
    JSON, ``NaN`` and ``Infinity`` included. Messages start with `what`
    (``--args: integer with 5000 digits (limit 4300)``, ``--args is not
    JSON: line 1 column 4: Expecting value``).
    """
    if isinstance(data, str):
        text, raw = data, data.encode("utf-8", "surrogatepass")
    else:
        raw = data
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            raise NotJSON(what, f"not {encoding.upper()} text") from None
    if len(raw) > max_bytes:
        raise OverBound(what, f"{len(raw)} bytes (limit {max_bytes})")
    if not _shallow(raw, max_depth):
        raise OverBound(what, f"nested deeper than {max_depth} levels (or not JSON)")
    hooks: dict[str, Any] = {"parse_constant": _refuse_constant, "parse_float": parse_float}
    if _has_long_digit_run(raw):
        hooks["parse_int"] = parse_int
    try:
        return json.loads(text, object_pairs_hook=object_pairs_hook, **hooks)
    except _Refused as exc:
        raise (OverBound if exc.bound else NotJSON)(what, exc.problem) from None
    except json.JSONDecodeError as exc:
        raise NotJSON(what, f"line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except (ValueError, RecursionError) as exc:
        raise NotJSON(what, str(exc)[:200]) from None


def _loads(raw: bytes, what: str, encoding: str = "utf-8") -> Any:
    # A reply or a frame header: nested no deeper than the sandbox nests.
    return read_json(raw, f"the {what}", max_bytes=len(raw), max_depth=MAX_REPLY_DEPTH, encoding=encoding)


# --------------------------------------------------------------------------- replies


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_error(error: Any) -> dict[str, Any] | None:
    if error is None:
        return None
    if (
        not isinstance(error, dict)
        or not set(error) <= _ERROR_KEYS
        or not isinstance(error.get("type"), str)
        or not isinstance(error.get("message"), str)
        or not (error.get("line") is None or _is_int(error.get("line")))
    ):
        raise ProtocolError("the reply's error is malformed")
    return {
        "type": error["type"][:_MAX_TYPE_CHARS],
        "message": error["message"][:_MAX_MESSAGE_CHARS],
        "line": error.get("line"),
    }


def max_values(cap: int) -> int:
    """How many JSON values a reply under the output cap `cap` (bytes) may hold."""
    return cap // VALUE_BYTES + _ENVELOPE_VALUES


def parse_reply(raw: bytes, *, cap: int) -> dict[str, Any]:
    """The sandbox's reply as plain data: ``status``, ``result``, ``error``
    (``{"type", "message", "line"}`` or None), ``limit``, ``stdout``.

    ``cap``: the output limit in bytes. Raises OverCap past it (in bytes, or
    in values: `max_values`), and ProtocolError for anything that is not a
    reply of exactly this shape (ASCII JSON, as the sandbox writes it).
    Lone surrogates in any string come back as U+FFFD.
    """
    if len(raw) > cap:
        raise OverCap(f"the reply is {len(raw)} bytes, over the output limit of {cap}")
    if value_count_over(raw, max_values(cap)):
        raise OverCap(
            f"the reply holds more than {max_values(cap)} JSON values, over the output limit of "
            f"{cap} bytes (one value per {VALUE_BYTES} bytes, a string counting as two)"
        )
    if not raw.isascii():
        # The sandbox writes its reply as ASCII JSON (ensure_ascii): raw UTF-8
        # is a forgery, and would let one 4-byte character widen a whole
        # decoded reply to 4 bytes per character.
        raise ProtocolError("the reply is not ASCII JSON (the sandbox escapes every other character)")
    obj = _loads(raw, "reply")
    if not isinstance(obj, dict) or not set(obj) <= _REPLY_KEYS or obj.get("status") not in REPLY_STATUSES:
        raise ProtocolError("the reply is not a sandbox reply object")
    if (b"\\ud" in raw or b"\\uD" in raw) and _SURROGATE_ESCAPE.search(raw):
        obj = _safe_value(obj)
    status, limit, stdout = obj["status"], obj.get("limit"), obj.get("stdout", "")
    if not isinstance(stdout, str):
        raise ProtocolError("the reply's stdout is not a string")
    error = _check_error(obj.get("error"))
    if (status == "limit") != (limit is not None) or (limit is not None and limit not in LIMIT_NAMES):
        raise ProtocolError("the reply names no valid limit")
    if status in ("error", "blocked") and error is None:
        raise ProtocolError(f"a {status!r} reply without an error")
    if status == "ok" and error is not None:
        raise ProtocolError("an 'ok' reply with an error")
    result = obj.get("result")
    if status != "ok" and result is not None:
        raise ProtocolError(f"a {status!r} reply with a result")
    parsed = {"status": status, "result": result, "error": error, "limit": limit, "stdout": stdout}
    calls = obj.get("calls")
    if calls is not None:  # a snippet's calls of the entrypoint (LATM make reads it; only on "ok")
        if status != "ok" or not _is_int(calls) or calls < 0:
            raise ProtocolError("the reply's calls is not a count on an 'ok' reply")
        parsed["calls"] = calls
    return parsed


# --------------------------------------------------------------------------- facts


def check_facts(facts: Any) -> dict[str, Any]:
    """Facts as plain data with every key of FACT_KEYS (missing ones None,
    ``cpu`` 0.0, the sizes 0). Raises ProtocolError for the wrong types."""
    if not isinstance(facts, Mapping):
        raise ProtocolError("the facts are not an object")
    out: dict[str, Any] = dict.fromkeys(FACT_KEYS)
    for key in ("exit", "signal", "oom_kills", "pids_max", "disk_used_kib"):
        value = facts.get(key)
        if value is not None and not _is_int(value):
            raise ProtocolError(f"the fact {key!r} is not an integer")
        out[key] = value
    for key in ("maxrss_kib", "baseline_rss_kib"):
        value = facts.get(key, 0)
        if not _is_int(value) or value < 0:
            raise ProtocolError(f"the fact {key!r} is not a size")
        out[key] = value
    cpu = facts.get("cpu", 0.0)
    if not isinstance(cpu, (int, float)) or isinstance(cpu, bool) or not math.isfinite(cpu) or cpu < 0:
        raise ProtocolError("the fact 'cpu' is not a number of seconds")
    out["cpu"] = float(cpu)
    killed = facts.get("killed")
    if killed is not None and (not isinstance(killed, str) or not _KILL_REASON.fullmatch(killed)):
        raise ProtocolError("the fact 'killed' is not a reason")
    out["killed"] = killed
    error = facts.get("error")
    if error is not None and not isinstance(error, str):
        raise ProtocolError("the fact 'error' is not text")
    out["error"] = safe_text(error)[:_MAX_MESSAGE_CHARS] if error is not None else None
    return out


def memory_used(facts: Mapping[str, Any], memory_mib: float) -> bool:
    """The memory rule: the cgroup's OOM killer fired during the call, or the
    peak resident size rose above the starting one by at least half the
    allowance (``memory_mib``)."""
    if (facts.get("oom_kills") or 0) > 0:
        return True
    grown = (facts.get("maxrss_kib") or 0) - (facts.get("baseline_rss_kib") or 0)
    return grown >= 0.5 * memory_mib * _MIB_KIB


def _cpu_used(facts: Mapping[str, Any], cpu_seconds: float) -> bool:
    # RLIMIT_CPU counts whole seconds; the kernel's tick-sampled rusage can
    # read up to ~15% under the precise time the limit uses, hence the margin.
    rlimit = max(1, math.ceil(cpu_seconds - 0.05))
    return float(facts.get("cpu") or 0.0) >= 0.7 * rlimit


def _disk_used(facts: Mapping[str, Any], disk_mib: float) -> bool:
    used = facts.get("disk_used_kib")
    return used is None or (disk_mib > 0 and used >= 0.5 * disk_mib * _MIB_KIB)


# --------------------------------------------------------------------------- outcomes


def _fields(
    status: str, *, result: Any = None, error: dict[str, Any] | None = None, limit: str | None = None, stdout: str = ""
) -> dict[str, Any]:
    return {"status": status, "result": result, "error": error, "limit": limit, "stdout": stdout}


def _error(kind: str, message: str, stdout: str = "") -> dict[str, Any]:
    return _fields("error", error={"type": kind, "message": message, "line": None}, stdout=stdout)


def _limit(name: str, stdout: str = "") -> dict[str, Any]:
    return _fields("limit", limit=name, stdout=stdout)


def needs_facts(reply: Mapping[str, Any] | None, *, restricted: bool) -> bool:
    """Whether the outcome needs the exit facts as well as this reply.

    Under the restricted policy a well-formed reply settles the call (the
    policy's own code wrote it); so does an ``ok`` or ``error`` reply under
    plain (the tool's own answer). Without a reply, or for a limit claimed
    under plain, the facts decide.
    """
    return reply is None or (not restricted and reply["status"] == "limit")


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def _from_facts(facts: Mapping[str, Any], limits: Mapping[str, Any], problem: str | None) -> dict[str, Any]:
    """The outcome of a process whose reply (if any) does not count."""
    sig, code = facts.get("signal"), facts.get("exit")
    if sig is not None:
        if sig == signal.SIGKILL and (facts.get("oom_kills") or 0) > 0:
            return _limit("memory")
        if sig in (signal.SIGXCPU, signal.SIGKILL) and _cpu_used(facts, float(limits["cpu"])):
            return _limit("cpu")
        if sig == signal.SIGXFSZ and _disk_used(facts, float(limits.get("disk", 0))):
            return _limit("disk")
        if sig in (signal.SIGKILL, signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT) and memory_used(
            facts, float(limits["memory"])
        ):
            # Out of memory somewhere MemoryError could not be raised (a C
            # allocation, stack growth), or the kernel's OOM killer.
            return _limit("memory")
        if (facts.get("pids_max") or 0) > 0:
            return _limit("pids")
        return _error("SandboxCrash", f"the sandboxed process died with {_signal_name(sig)}")
    if (facts.get("pids_max") or 0) > 0:
        return _limit("pids")
    if problem is not None:
        return _error("SandboxProtocolError", problem)
    return _error("SandboxCrash", f"the sandboxed process exited with code {code} without a complete reply")


def classify(
    reply: Mapping[str, Any] | None,
    facts: Mapping[str, Any] | None,
    *,
    restricted: bool,
    limits: Mapping[str, Any],
    problem: str | None = None,
) -> dict[str, Any]:
    """A `Result`'s fields (status, result, error as a dict, limit, stdout)
    from a parsed reply (`parse_reply`, or None if there was none or it was
    refused, with `problem` saying why) and the facts (`check_facts`; may be
    None only when `needs_facts` says so). ``limits``: the job's limits
    (cpu, memory, disk...). The rules are in the module's docstring.
    """
    if facts is not None:
        killed = facts.get("killed")
        if killed in ("wall", "output"):
            return _limit(str(killed))
        if killed is not None:
            return _fields(
                "unavailable",
                error={
                    "type": "SandboxUnavailable",
                    "line": None,
                    "message": f"the sandbox was stopped during the call ({killed})",
                },
            )
        if facts.get("error") is not None:
            return _error("SandboxError", str(facts["error"]))
        if (
            not restricted
            and reply is not None
            and reply["status"] in ("limit", "blocked")
            and (facts.get("signal") is not None or facts.get("exit") != 0)
        ):
            reply = None  # a claim, and the process did not end the way the sandbox ends it after replying
    elif needs_facts(reply, restricted=restricted):
        raise ValueError("this outcome needs the exit facts")
    if reply is None:
        assert facts is not None
        return _from_facts(facts, limits, problem)
    status, stdout, error = reply["status"], reply["stdout"], reply["error"]
    if status == "ok":
        fields = _fields("ok", result=reply["result"], stdout=stdout)
        if reply.get("calls") is not None:
            fields["calls"] = reply["calls"]
        return fields
    if status == "error":
        if facts is not None and (facts.get("pids_max") or 0) > 0:
            return _limit("pids", stdout)
        return _fields("error", error=error, stdout=stdout)
    if status == "blocked":
        if restricted:
            return _fields("blocked", error=error, stdout=stdout)
        # No policy ran: nothing was refused by one.
        return _fields("error", error=error, stdout=stdout)
    limit = reply["limit"]
    if limit not in _REPLY_LIMITS:
        return _error("SandboxProtocolError", f"the sandbox cannot know of a {limit!r} limit from inside")
    if limit == "memory" and not restricted:
        assert facts is not None
        if not memory_used(facts, float(limits["memory"])):
            return _error(
                "MemoryError",
                "the tool raised MemoryError, but its process never used its memory allowance (not the memory limit)",
                stdout,
            )
    return _fields("limit", limit=limit, error=error, stdout=stdout)


# --------------------------------------------------------------------------- framing


KEY_CHARS = 32  # the per-call key: hex, sent by the host after the job


def frame(facts: Mapping[str, Any], reply: bytes | None, key: str) -> bytes:
    """What the Docker harness writes to the host: one line of JSON (the
    call's key, the facts and the reply's length), then the reply's bytes as
    the child wrote them, then a newline.

    The key is the one the host sent with the job; the harness parent holds
    it and the child (which runs the tool) never did, so a frame the tool
    forged (on a descriptor it reached through /proc) carries no valid key."""
    header = json.dumps(
        {"key": key, "facts": dict(facts), "reply_bytes": None if reply is None else len(reply)},
        ensure_ascii=True,
        allow_nan=False,
        separators=(",", ":"),
    )
    return header.encode("ascii") + b"\n" + (reply if reply is not None else b"") + b"\n"


def job_message(job: bytes, key: str) -> bytes:
    """What the Docker host sends the harness: the job's length on a line,
    the job's JSON, then the call's key (`KEY_CHARS` hex characters)."""
    if len(key) != KEY_CHARS or not all(c in "0123456789abcdef" for c in key):
        raise ValueError("the key must be lowercase hex")
    return str(len(job)).encode("ascii") + b"\n" + job + key.encode("ascii")


def parse_frame_header(line: bytes, key: str) -> tuple[dict[str, Any], int | None]:
    """The first line of a `frame`: (checked facts, reply length or None).
    Raises ProtocolError, also when it does not carry this call's `key`."""
    if len(line) > 64 * 1024:
        raise ProtocolError("the frame header is too long")
    obj = _loads(line, "frame header", "ascii")
    if not isinstance(obj, dict) or set(obj) != {"key", "facts", "reply_bytes"}:
        raise ProtocolError("the frame header is not a header object")
    if not isinstance(obj["key"], str) or not hmac.compare_digest(
        obj["key"].encode("ascii", "replace"), key.encode("ascii")
    ):
        raise ProtocolError("the frame does not carry this call's key (not written by the harness)")
    size = obj["reply_bytes"]
    if size is not None and (not _is_int(size) or size < 0):
        raise ProtocolError("the frame header's reply length is not a size")
    return check_facts(obj["facts"]), size
