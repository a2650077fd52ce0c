"""The `toolcrib` console command: a plain `toolcrib call` handed whole to
the warm sandbox service, everything else to the click command line
(issue 21).

A fresh Python process that imports click has spent 40 ms of CPU before it
reads its first argument, and four `toolcrib call` loops on 2 cores cannot
reach 43 calls/s that way. So with ``TOOLCRIB_SANDBOX_SERVICE=1`` this
module, standard library only, reads the command line itself; when it is a
`call` whose every option it knows (`parse_call`), it sends the call to this
user's running service, which runs the very `toolcrib call` command there
(`toolcrib.cli.served_call`: the same resolution, gates, argument check,
sandbox, audit entry and actor) and answers the bytes it wrote to stdout and
stderr, in order, and its exit code; this process writes them and exits so.
Anything else, or any doubt, is `toolcrib.cli.main`, unchanged: another
command, an option it does not know (``--snippet``, ``--help``), a value
starting with ``-``, an option given twice, no running service, a service
directory or socket that is not this user's own (the normal path refuses it
with its message), a peer of another uid, a terminal encoding other than
UTF-8, a relative registry path (the service runs in another directory),
``TOOLCRIB_DEBUG`` or Python warnings asked for, or a service that answers
``fallback`` (a default backend other than restricted, a request it does not
read) or closes the connection before answering anything.

The wire: the request is the service's frame (a 4-byte big-endian length and
that much JSON, ``{"op": "call", ...}``); the reply is frames of a kind byte,
a 4-byte length and that many bytes: ``o`` (stdout), ``e`` (stderr), then
one ``x`` (the exit code in ASCII digits) or ``f`` (fall back; its reason,
for a person). Every length is bounded (`MAX_CHUNK`, `MAX_OUTPUT`,
`MAX_END`) before it is read.

What it imports is what a warm call pays for on each run: no `json` (which
imports `re`; the request is written with `_json`'s C string encoder and the
answer holds no JSON), no `socket` (enum, selectors), no `getpass`. (pip's
console-script wrapper, which runs this, imports `re` itself: about 6 ms of a
call's CPU, kept so that `uvx toolcrib` and `uv tool install`, which expose
entry points only, find the command.)
"""

from __future__ import annotations

# The C module under `socket`: socket.py's own import (enum, selectors,
# array) costs this one-shot process more than the rest of its imports.
import _socket
import os
import stat
import struct
import sys
from _json import encode_basestring_ascii as _quote  # the C encoder under json.dumps

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["MAX_CHUNK", "MAX_END", "MAX_OUTPUT", "main", "parse_call", "try_served_call"]

# The service's request frame: a 4-byte big-endian length, then JSON
# (sandbox/service.py, MAX_FRAME).
MAX_REQUEST = 64 << 20
# A reply frame: a kind byte and a 4-byte big-endian length.
REPLY_HEADER = struct.Struct(">cI")
MAX_CHUNK = 16 << 20  # one write of the command, at most (the service splits longer ones)
MAX_OUTPUT = 1 << 30  # all of them together
MAX_END = 4096  # the closing frame
PROTOCOL = 1

_FLAGS = {"--json": "json", "--allow-unverified": "allow_unverified", "--allow-yanked": "allow_yanked"}
_FLAGS["--no-build"] = "no_build"
_ONCE = {"--args": "args", "--policy": "policy", "--backend": "backend", "--registry": "registry", "--actor": "actor"}
_REPEATED = {"--arg": "arg", "--limit": "limit"}
_GLOBAL = ("--registry", "--actor")
_POLICIES = ("restricted", "plain")


def parse_call(argv: list[str]) -> dict[str, Any] | None:
    """The options of ``toolcrib [--registry F] [--actor A] call REF ...``
    when this module reads them exactly as click would (`toolcrib.cli`), else
    None: then the click command line takes it."""
    found: dict[str, Any] = {"arg": [], "limit": []}
    flags: set[str] = set()
    i, in_call = 0, False
    while i < len(argv):
        token = argv[i]
        if not token.startswith("-"):
            if not in_call:
                if token != "call":
                    return None
                in_call = True
            elif "ref" in found:
                return None  # an extra argument: click's usage error
            else:
                found["ref"] = token
            i += 1
            continue
        if in_call and token in _FLAGS:
            flags.add(_FLAGS[token])
            i += 1
            continue
        name, equals, value = token.partition("=")
        if name not in _ONCE and name not in _REPEATED:
            return None  # --snippet, --help, --version, "--", a short option, a typo...
        if not in_call and name not in _GLOBAL:
            return None
        if not equals:
            if i + 1 >= len(argv):
                return None
            value = argv[i + 1]
            # A value that looks like an option: the global options' hoisting
            # (cli/argv.py) could read it otherwise; not worth the doubt.
            if value.startswith("-"):
                return None
            i += 2
        else:
            i += 1
        if name in _REPEATED:
            found[_REPEATED[name]].append(value)
        elif _ONCE[name] in found:
            return None  # given twice
        else:
            found[_ONCE[name]] = value
    if "ref" not in found or found.get("registry") == "" or found.get("actor") == "":
        return None
    if found.get("policy") not in (None, *_POLICIES):
        return None
    found["flags"] = sorted(flags)
    return found


def _utf8(stream: Any) -> bool:
    encoding = getattr(stream, "encoding", None)
    return isinstance(encoding, str) and encoding.lower().replace("_", "-") in ("utf-8", "utf8")


def _service_socket() -> str | None:
    """This user's service socket, when its directory and the socket are
    this user's own and closed to others (sandbox/service.py's checks; any
    doubt is None, and the normal path says what is wrong)."""
    explicit = os.environ.get("TOOLCRIB_SERVICE_DIR")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if explicit:
        directory = explicit
    elif runtime:
        directory = os.path.join(runtime, "toolcrib")
    else:
        directory = f"/tmp/toolcrib-{os.getuid()}"
    path = os.path.join(directory, "sandbox.sock")
    try:
        folder, sock = os.lstat(directory), os.lstat(path)
    except OSError:
        return None
    uid = os.getuid()
    if not stat.S_ISDIR(folder.st_mode) or folder.st_uid != uid or folder.st_mode & 0o077:
        return None
    if not stat.S_ISSOCK(sock.st_mode) or sock.st_uid != uid:
        return None
    return path


def _registry_path(option: str | None) -> str | None:
    """The registry path the click path would open, written as it would
    write it in a message (``~`` expanded, as `Path.expanduser` does), when
    that is absolute; else None. A relative path names a file in this
    process's directory, which the service is not in: the normal path."""
    given = option or os.environ.get("TOOLCRIB_REGISTRY") or None
    if given is None:  # registry.store.default_registry_path
        data = os.environ.get("XDG_DATA_HOME") or None
        base = os.path.expanduser(data) if data else os.path.join(os.path.expanduser("~"), ".local", "share")
        given = os.path.join(base, "toolcrib", "registry.db")
    path = os.path.expanduser(given)
    return path if os.path.isabs(path) else None


def _actor(option: str | None) -> str:
    """registry.store.default_actor, as the click path resolves ``--actor``."""
    explicit = option or os.environ.get("TOOLCRIB_ACTOR") or None
    if explicit:
        return explicit
    # getpass.getuser, without importing getpass (contextlib, warnings, termios).
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        user = os.environ.get(name)
        if user:
            return user
    try:
        import pwd

        return pwd.getpwuid(os.getuid())[0]
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def _json(value: object) -> str:
    """`value` (texts, integers, lists, dicts, booleans, None) as JSON, ASCII only."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return str(_quote(value))
    if isinstance(value, list):
        return "[" + ",".join(_json(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{_quote(str(key))}:{_json(item)}" for key, item in value.items()) + "}"
    raise TypeError(f"not written as JSON here: {type(value).__name__}")


def _request(argv: list[str]) -> dict[str, Any] | None:
    """The call's request to the service, or None: the normal path."""
    environ = os.environ
    if environ.get("TOOLCRIB_SANDBOX_SERVICE", "") != "1":
        return None
    if (
        environ.get("TOOLCRIB_DEBUG")
        or environ.get("_TOOLCRIB_COMPLETE")
        or environ.get("TOOLCRIB_NO_LINUX_JAIL") == "1"
    ):
        return None
    if sys.warnoptions or sys.flags.dev_mode:
        return None  # a warning the normal path would print
    if not (_utf8(sys.stdout) and _utf8(sys.stderr)):
        return None
    parsed = parse_call(argv)
    if parsed is None:
        return None
    backend = parsed.pop("backend", None) or environ.get("TOOLCRIB_BACKEND") or None
    if backend not in (None, "restricted"):
        return None
    registry = _registry_path(parsed.pop("registry", None))
    if registry is None:
        return None
    return {
        "op": "call",
        "v": PROTOCOL,
        **parsed,
        "backend": backend,
        "registry": registry,
        "actor": _actor(parsed.pop("actor", None)),
        "streams": [
            {"tty": sys.stdout.isatty(), "errors": sys.stdout.errors},
            {"tty": sys.stderr.isatty(), "errors": sys.stderr.errors},
        ],
    }


def _peer_uid(conn: _socket.socket) -> int:
    creds = conn.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


def _read_exactly(conn: _socket.socket, size: int) -> bytes | None:
    """`size` bytes from the service; None when it closed (or reset) first."""
    chunks: list[bytes] = []
    while size:
        try:
            chunk = conn.recv(min(size, 1 << 20))
        except OSError:
            return None
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _Lost(Exception):
    """The service went away (or said something unreadable) after output began."""


def _relay(conn: _socket.socket) -> int | None:
    """Write the service's reply to this process's stdout and stderr; the
    exit code, or None when the service answered nothing (fall back)."""
    written = 0
    while True:
        header = _read_exactly(conn, REPLY_HEADER.size)
        if header is None:
            if written:
                raise _Lost("the sandbox service closed the connection")
            return None
        kind, size = REPLY_HEADER.unpack(header)
        if kind in (b"o", b"e"):
            written += size
            if size > MAX_CHUNK or written > MAX_OUTPUT:
                raise _Lost(f"the sandbox service sent more output than {MAX_OUTPUT} bytes")
            data = _read_exactly(conn, size)
            if data is None:
                raise _Lost("the sandbox service closed the connection")
            sys.stdout.flush()
            sys.stderr.flush()
            _write(1 if kind == b"o" else 2, data)
            continue
        if kind not in (b"x", b"f") or size > MAX_END:
            raise _Lost("the sandbox service sent a frame this toolcrib does not read")
        raw = _read_exactly(conn, size)
        if raw is None:
            raise _Lost("the sandbox service closed the connection")
        if kind == b"f":
            if written:
                raise _Lost("the sandbox service gave up after it had answered")
            return None
        if not (1 <= len(raw) <= 3 and raw.isdigit() and int(raw) <= 255):
            raise _Lost("the sandbox service sent an unreadable answer")
        return int(raw)


def try_served_call(argv: list[str]) -> int | None:
    """Run ``toolcrib ARGV`` through the warm service when it is a call this
    module fully understands; its exit code, or None: not handled, nothing
    run (the click command line takes it)."""
    request = _request(argv)
    if request is None:
        return None
    try:
        for arg in argv:
            arg.encode("utf-8")
    except UnicodeEncodeError:  # an argument that is not text (undecodable bytes)
        return None
    body = _json(request).encode("ascii")
    path = _service_socket()
    if path is None or len(body) > MAX_REQUEST:
        return None
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        try:
            conn.connect(path)
            if _peer_uid(conn) != os.getuid():
                return None
            conn.sendall(struct.pack(">I", len(body)) + body)
        except OSError:
            return None
        try:
            return _relay(conn)
        except _Lost as lost:
            _write(2, f"Error: {lost}\n".encode())
            return 6
        except BrokenPipeError:
            return 1  # whoever read our output went away: as click's standalone mode ends then
    finally:
        conn.close()


class _Terminated(BaseException):
    """SIGTERM arrived while the service ran the call."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated()


def main() -> None:
    """The console entry point (pyproject's ``toolcrib``): a served call, or
    `toolcrib.cli.main` (never a traceback either way)."""
    if os.environ.get("TOOLCRIB_SANDBOX_SERVICE", "") == "1":
        # The C module under `signal`, whose own import brings enum.
        import _signal as signal  # type: ignore[import-not-found]  # no typeshed stub for the C module

        # As toolcrib.cli.main: SIGTERM and Ctrl-C end the command with one
        # line; the service sees the connection close and cancels the call
        # (audited as cancelled).
        signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            code = try_served_call(sys.argv[1:])
        except KeyboardInterrupt:
            _write(2, b"\nAborted!\n")  # as toolcrib.cli.main says it
            sys.exit(130)
        except _Terminated:
            _write(2, b"Terminated.\n")
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            raise SystemExit(143) from None
        if code is not None:
            sys.exit(code)
    from .cli import main as click_main

    click_main()
