"""The host's cache of compiled tool code for the restricted backend
(issue 19; the child's side and the wire field: `inside/precompiled.py`).

A source seen a second time (a verification's cases, fuzzing's inputs, a
tool called again) is compiled here once, by the very function a child
runs (`inside.execute.compile_job`), and its marshalled code rides with
every later job of the same texts; the child checks each part's digest
against the texts it was sent and only unmarshals. A source seen once is
left to the child, as before: a single call (the CLI's) neither imports
the compiler here nor pays for it twice.

Bounded: at most `CAPACITY` entries and `MAX_BYTES` of marshalled code,
least recently used dropped first; texts over
`precompiled.MAX_TEXT_BYTES` in all are never compiled here. A job whose
compile is refused is remembered as such and always left to the child,
which refuses it with the outcome it always had.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import OrderedDict
from typing import Any

from .inside import precompiled

__all__ = ["CAPACITY", "MAX_BYTES", "CodeCache"]

CAPACITY = 256
MAX_BYTES = 32 * 1024 * 1024

_SEEN = b""  # seen once: not compiled (yet)
_REFUSED = b"-"  # the host's compile gave no code: the child compiles and answers


class CodeCache:
    """Thread-safe; one per backend."""

    def __init__(self, capacity: int = CAPACITY, max_bytes: int = MAX_BYTES) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.compiled = 0  # compiles done here (for tests and benches)

    def field(self, job: dict[str, Any], restricted: bool) -> bytes | None:
        """The JSON of the ``compiled`` field for ``job`` (its wire form),
        or None: seen for the first time, refused, too big, or this
        interpreter compiles differently from the zygote's (``-O``)."""
        if sys.flags.optimize:
            return None  # the zygote compiles without -O; code made here would differ
        key = self._key(job, restricted)
        if key is None:
            return None
        with self._lock:
            known = self._entries.get(key)
            if known is None:
                self._put(key, _SEEN)
                return None
            self._entries.move_to_end(key)
            if known == _REFUSED:
                return None
            if known != _SEEN:
                return known
        field = self._compile(job, restricted)
        with self._lock:
            self._put(key, _REFUSED if field is None else field)
        return field

    def _key(self, job: dict[str, Any], restricted: bool) -> str | None:
        digests = [precompiled.digest(name, texts, restricted) for name, texts in precompiled.parts_of(job)]
        if any(d is None for d in digests):
            return None
        return "/".join(d for d in digests if d is not None)

    def _compile(self, job: dict[str, Any], restricted: bool) -> bytes | None:
        # Imported on first need: the policy's compiler (RestrictedPython)
        # is not loaded on the host for calls that never repeat a source.
        from .inside import execute

        try:
            parts = execute.compile_parts(job, restricted)
        except Exception:  # noqa: BLE001 - anything unforeseen: the child compiles, as before
            parts = None
        self.compiled += 1
        if parts is None:
            return None
        return json.dumps(precompiled.entry(parts), separators=(",", ":")).encode("ascii")

    def _put(self, key: str, value: bytes) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= len(old)
        self._entries[key] = value
        self._bytes += len(value)
        while self._entries and (len(self._entries) > self.capacity or self._bytes > self.max_bytes):
            _key, dropped = self._entries.popitem(last=False)
            self._bytes -= len(dropped)
