"""`toolcrib call` run whole in the warm sandbox service, for a `toolcrib`
process that handed it over (toolcrib/console.py; issue 21).

The service (sandbox/service.py) loads this module through its plugin entry
point (``toolcrib.service``: `install`), once, when it starts: the service
process then holds click, the command line and the registry's call path
warm, and serves the operation ``call``. A call runs the very click command
line of `toolcrib.cli` in the service's thread for that client, so
everything the normal path does is done by the same code: the reference
resolved, the gates (status, review, yanked), the argument check, the
sandbox run on the service's own backend (`LocalBackend`, which behaves as
the `ServiceBackend` a normal `toolcrib call` gets), the audit entry with the
client's actor, the output through `terminal_text`, the refusal JSON and
the exit code.

What differs from a process of its own, and how it is made the same:

- the global options and environment: the client resolves ``--registry``
  (served only when it is an absolute path: a message names it as the
  client wrote it), ``--actor`` and ``--backend`` as click would, from its
  own environment, and they reach the command as explicit options; the
  service's own ``TOOLCRIB_REGISTRY``, ``TOOLCRIB_ACTOR`` and
  ``TOOLCRIB_BACKEND`` are dropped when it loads this module;
- stdout and stderr: the service's `sys.stdout` and `sys.stderr` become
  per-thread streams (`_ThreadStream`). In a call's thread they encode each
  write as the client's own streams would (UTF-8, the client's error
  handler) and keep it, in order; whether ANSI styles are stripped follows
  the client's terminals. Other threads write where they wrote before;
- the end: the command's SystemExit is its exit code; any other exception is
  the line `toolcrib.cli.main` prints for an internal error (exit 70);
- the client going away cancels the call (`served_cancel`), which is
  audited as cancelled: never missing from the log.

A call that could not be served the same way is answered ``fallback``
before anything ran or was audited, and the client runs the normal path:
a default backend other than restricted here, or a request this version
does not read.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

from ..console import MAX_CHUNK, MAX_END, PROTOCOL, REPLY_HEADER
from ..sandbox.backends import register
from ..sandbox.contract import Backend, Cancel, Job, Result

__all__ = ["install"]

# Error handlers a client's stream may have (`str.encode`'s).
_ERRORS = frozenset(
    {"strict", "surrogateescape", "replace", "backslashreplace", "ignore", "namereplace", "xmlcharrefreplace"}
)
_FLAGS = {"json": "--json", "allow_unverified": "--allow-unverified", "allow_yanked": "--allow-yanked"}
_FLAGS["no_build"] = "--no-build"
_POLICIES = ("restricted", "plain")
# The environment a forwarded call must not read from the service's: the
# client sends what it resolved from its own.
_CLIENT_ENV = ("TOOLCRIB_REGISTRY", "TOOLCRIB_ACTOR", "TOOLCRIB_BACKEND", "_TOOLCRIB_COMPLETE")

_local = threading.local()


class _Capture:
    """What one call wrote: (kind, bytes) in order, b"o" stdout, b"e" stderr."""

    def __init__(self, ttys: tuple[bool, bool], errors: tuple[str, str]) -> None:
        self.ttys = ttys
        self.errors = errors
        self.chunks: list[tuple[bytes, bytearray]] = []

    def write(self, index: int, text: str) -> None:
        # Encoded now, as a TextIOWrapper does: a character the client's
        # stream cannot encode raises here, in the command, as it would there.
        data = text.encode("utf-8", self.errors[index])
        if not data:
            return
        kind = b"o" if index == 0 else b"e"
        if self.chunks and self.chunks[-1][0] == kind:
            self.chunks[-1][1].extend(data)
        else:
            self.chunks.append((kind, bytearray(data)))


class _ThreadStream:
    """The service process's sys.stdout (index 0) or sys.stderr (1): in a
    served call's thread, that call's capture; elsewhere the stream it
    replaced. Looks to click like a UTF-8 text stream (so click writes to it
    as it is, `click._compat._force_correct_text_writer`)."""

    encoding = "utf-8"

    def __init__(self, index: int, replaced: Any) -> None:
        self.index = index
        self.replaced = replaced

    @property
    def errors(self) -> str:
        capture: _Capture | None = getattr(_local, "capture", None)
        if capture is not None:
            return capture.errors[self.index]
        return str(getattr(self.replaced, "errors", None) or "strict")

    def write(self, text: str) -> int:
        capture: _Capture | None = getattr(_local, "capture", None)
        if capture is None:
            return self.replaced.write(text) if self.replaced is not None else len(text)
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        capture.write(self.index, text)
        return len(text)

    def flush(self) -> None:
        if getattr(_local, "capture", None) is None and self.replaced is not None:
            self.replaced.flush()

    def isatty(self) -> bool:
        capture: _Capture | None = getattr(_local, "capture", None)
        if capture is not None:
            return capture.ttys[self.index]
        return bool(self.replaced is not None and self.replaced.isatty())

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False


class _Quiet:
    """The table's restricted backend in the service: the service's own
    (`LocalBackend`), with a call's capture set aside while the sandbox
    runs (whatever the backend itself might print is the service's, as in
    the normal path, never the client's)."""

    name = "restricted"

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def run(self, job: Job, cancel: Cancel | None = None) -> Result:
        capture = getattr(_local, "capture", None)
        _local.capture = None
        try:
            return self._backend.run(job, cancel)
        finally:
            _local.capture = capture

    def close(self) -> None:
        return None


def install(backend: Backend) -> dict[str, Callable[[socket.socket, dict[str, Any], Cancel], None]]:
    """The service's plugin (pyproject.toml, ``toolcrib.service``): make
    this process ready to run calls for clients, and serve ``call``."""
    for name in _CLIENT_ENV:
        os.environ.pop(name, None)
    register("restricted", lambda **_options: _Quiet(backend))
    sys.stdout = _ThreadStream(0, sys.stdout)
    sys.stderr = _ThreadStream(1, sys.stderr)
    threading.Thread(target=_warm, name="toolcrib-served-call-warm", daemon=True).start()
    return {"call": handle}


def _warm() -> None:
    """Import what a call runs now, not in the first client's time."""
    try:
        import click

        from ..registry import calls  # noqa: F401 - imported for its warmth
        from . import cli

        cli.get_command(click.Context(cli), "call")
    except Exception:  # noqa: BLE001 - the first call imports it, or says why
        pass


def _text(value: Any) -> bool:
    return isinstance(value, str) and "\x00" not in value


def _texts(value: Any) -> list[str] | None:
    """A request's list of texts (``--arg`` or ``--limit`` pairs), or None."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(_text(item) for item in value):
        return None
    return [str(item) for item in value]


def command_line(request: dict[str, Any]) -> list[str] | str:
    """The click command line for a client's request (every option explicit,
    each value inside its own ``--option=value`` word), or why it cannot be
    served here (the client falls back)."""
    if request.get("v") != PROTOCOL:
        return "a request of another toolcrib version"
    ref, registry, actor = request.get("ref"), request.get("registry"), request.get("actor")
    args, policy, backend, flags = (
        request.get("args"),
        request.get("policy"),
        request.get("backend"),
        request.get("flags"),
    )
    pairs, limits = _texts(request.get("arg")), _texts(request.get("limit"))
    if not (isinstance(ref, str) and isinstance(registry, str) and isinstance(actor, str)):
        return "an unreadable request"
    if not (_text(ref) and _text(registry) and _text(actor)) or not ref or ref.startswith("-") or not actor:
        return "an unreadable request"
    if not os.path.isabs(registry) or (args is not None and not _text(args)) or policy not in (None, *_POLICIES):
        return "an unreadable request"
    if pairs is None or limits is None or not isinstance(flags, list) or not set(flags) <= set(_FLAGS):
        return "an unreadable request"
    if backend is None:
        from ..sandbox.default_backend import default_backend

        if default_backend() != "restricted":
            return "the default backend here is not the restricted one"
    elif backend != "restricted":
        return "a backend the service does not run"
    argv = [f"--registry={registry}", f"--actor={actor}", "call", ref, "--backend=restricted"]
    if args is not None:
        argv.append(f"--args={args}")
    argv += [f"--arg={pair}" for pair in pairs]
    argv += [f"--limit={pair}" for pair in limits]
    if policy is not None:
        argv.append(f"--policy={policy}")
    argv += [_FLAGS[flag] for flag in flags]
    return argv


def _streams(request: dict[str, Any]) -> tuple[tuple[bool, bool], tuple[str, str]] | None:
    streams = request.get("streams")
    if not isinstance(streams, list) or len(streams) != 2 or not all(isinstance(s, dict) for s in streams):
        return None
    ttys = tuple(s.get("tty") for s in streams)
    errors = tuple(s.get("errors") for s in streams)
    if not all(isinstance(t, bool) for t in ttys) or not all(e in _ERRORS for e in errors):
        return None
    return (bool(ttys[0]), bool(ttys[1])), (str(errors[0]), str(errors[1]))


def _exit_code(code: object, capture: _Capture) -> int:
    """What the interpreter makes of ``sys.exit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    capture.write(1, f"{code}\n")
    return 1


def run_command(argv: list[str], capture: _Capture, cancel: Cancel | None) -> int:
    """`toolcrib.cli.main` on `argv` in this thread, writing into `capture`:
    its exit code."""
    from . import cli, report_internal_error
    from .common import bind_served_cancel

    _local.capture = capture
    bind_served_cancel(cancel)
    try:
        try:
            cli.main(args=argv, prog_name="toolcrib", standalone_mode=True)
        except SystemExit as exit:
            return _exit_code(exit.code, capture)
        except Exception as err:  # noqa: BLE001 - the last line of defence, as toolcrib.cli.main
            return report_internal_error(err)
        return 0
    finally:
        bind_served_cancel(None)
        _local.capture = None


def handle(conn: socket.socket, request: dict[str, Any], cancel: Cancel) -> None:
    """The ``call`` operation: run the client's call, answer what it wrote
    and its exit code (or ``fallback``, before anything ran)."""
    argv = command_line(request)
    streams = _streams(request)
    if isinstance(argv, str) or streams is None:
        _end(conn, b"f", argv if isinstance(argv, str) else "an unreadable request")
        return
    capture = _Capture(*streams)
    code = run_command(argv, capture, cancel)
    try:
        for kind, data in capture.chunks:
            view = memoryview(data)
            for start in range(0, len(view), MAX_CHUNK):
                piece = view[start : start + MAX_CHUNK]
                conn.sendall(REPLY_HEADER.pack(kind, len(piece)))
                conn.sendall(piece)
    except OSError:
        return  # the client went away: the call was audited (cancelled, if it was still running)
    _end(conn, b"x", str(code))


def _end(conn: socket.socket, kind: bytes, text: str) -> None:
    """The closing frame: ``x`` and the exit code, or ``f`` (fall back) and why."""
    body = text.encode("utf-8", "replace")[:MAX_END]
    try:
        conn.sendall(REPLY_HEADER.pack(kind, len(body)) + body)
    except OSError:
        pass
