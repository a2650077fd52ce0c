"""A warm sandbox shared by commands (issue 21): one per-user service that
keeps the restricted backend's zygotes (the main one and each lock's) warm
across `toolcrib` processes, in the manner of a build daemon.

With ``TOOLCRIB_SANDBOX_SERVICE=1`` the table's "restricted" backend is a
`ServiceBackend`: each call goes over a Unix socket to the service, which
runs it on its own `RestrictedBackend`, jailed exactly as in a process of
its own. Without it nothing changes.

Where and who:

- The socket is ``sandbox.sock`` in ``$TOOLCRIB_SERVICE_DIR``, else
  ``$XDG_RUNTIME_DIR/toolcrib``, else ``/tmp/toolcrib-<uid>``: a directory
  this user owns, mode 0700 (made so when created), the socket 0600. A
  directory or socket owned by someone else, a symlink, or a directory open
  to others is refused with a message saying what and where: never used,
  never removed.
- The service answers only a peer of its own uid (``SO_PEERCRED``); there is
  no network listener.
- It is started on first use (a double fork: it outlives the command, in a
  session of its own), one at a time (an exclusive ``flock`` on
  ``service.lock``, held for its life: whoever holds it may replace a stale
  socket left by a service that died), and stops after
  ``TOOLCRIB_SERVICE_IDLE`` seconds (default 600) without a call.
- `status` (``toolcrib doctor``) reads the pid file and asks the service.

Frames are a 4-byte big-endian length and that much JSON, bounded
(`MAX_FRAME`). A call is ``{"op": "run", "job": Job.wire()}``; the reply is
the `Result`. A client that goes away cancels its call.

More operations are plugged in, never imported from here (this package
knows nothing of the registry or the doors): each entry point of the group
``toolcrib.service`` (`PLUGIN_GROUP`, pyproject.toml) names a function that
is given the service's own backend (`LocalBackend`: its clients' view of it)
and answers the operations it serves, ``{op: handler(conn, request,
cancel)}``. toolcrib's own plugin (`toolcrib.cli.served_call`) serves a
whole `toolcrib call` (issue 21): see docs/sandbox-restricted.md.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import stat
import struct
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .backends import SERVICE_ENV  # named where the table reads it without importing this module
from .contract import Backend, Cancel, ErrorInfo, Job, Lock, PolicyName, Result

__all__ = [
    "DIR_ENV",
    "IDLE_ENV",
    "MAX_FRAME",
    "PLUGIN_GROUP",
    "SERVICE_ENV",
    "Handler",
    "LocalBackend",
    "ServiceBackend",
    "ServiceRefused",
    "enabled",
    "peer_uid",
    "service_dir",
    "status",
]


DIR_ENV = "TOOLCRIB_SERVICE_DIR"
IDLE_ENV = "TOOLCRIB_SERVICE_IDLE"
DEFAULT_IDLE_S = 600.0
MAX_FRAME = 64 << 20  # a job's source and arguments, a result at the output cap: far below
_HEADER = struct.Struct(">I")
_SOCKET, _LOCK, _PID = "sandbox.sock", "service.lock", "service.pid"
# The entry points whose handlers the service serves (see the module's doc).
PLUGIN_GROUP = "toolcrib.service"

# One operation a plugin serves: the connection (its request already read;
# the handler writes its own reply), the request, and the call's Cancel
# (cancelled when the client goes away).
Handler = Callable[[socket.socket, dict[str, Any], Cancel], None]


class ServiceRefused(RuntimeError):
    """The service's directory or socket is not this user's own (or not safe)."""


def enabled() -> bool:
    """Whether calls go through the service (``TOOLCRIB_SANDBOX_SERVICE=1``)."""
    return os.environ.get(SERVICE_ENV, "") == "1"


def service_dir() -> Path:
    """Where the socket lives (see the module's doc)."""
    explicit = os.environ.get(DIR_ENV)
    if explicit:
        return Path(explicit)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "toolcrib"
    return Path("/tmp") / f"toolcrib-{os.getuid()}"


def _check_dir(path: Path) -> None:
    """Refuse a directory that is not this user's own and closed to others."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise ServiceRefused(f"sandbox service directory {path} is not a directory (a symlink or a file): refused")
    if info.st_uid != os.getuid():
        raise ServiceRefused(
            f"sandbox service directory {path} belongs to uid {info.st_uid}, not to you (uid {os.getuid()}): "
            f"refused; set {DIR_ENV} to a directory of your own"
        )
    if info.st_mode & 0o077:
        raise ServiceRefused(
            f"sandbox service directory {path} is open to others (mode {stat.S_IMODE(info.st_mode):04o}): "
            f"refused; make it 0700 or remove it"
        )


def _check_socket(path: Path) -> bool:
    """Whether a socket is there (False: nothing); refuses anything else, or one not ours."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISSOCK(info.st_mode):
        raise ServiceRefused(f"{path} is not a socket: refused (remove it to let the sandbox service start)")
    if info.st_uid != os.getuid():
        raise ServiceRefused(f"the sandbox service socket {path} belongs to uid {info.st_uid}, not to you: refused")
    return True


def peer_uid(conn: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket (SO_PEERCRED)."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


# -- frames ---------------------------------------------------------------


def _send(conn: socket.socket, value: Any) -> None:
    data = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if len(data) > MAX_FRAME:
        raise ValueError(f"a frame of {len(data)} bytes is over the {MAX_FRAME} limit")
    conn.sendall(_HEADER.pack(len(data)) + data)


def _read_exactly(conn: socket.socket, size: int) -> bytes | None:
    chunks: list[bytes] = []
    left = size
    while left:
        chunk = conn.recv(min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _recv(conn: socket.socket) -> Any | None:
    """One frame's JSON, None when the peer closed before a whole frame."""
    header = _read_exactly(conn, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_FRAME:
        raise ValueError(f"a frame of {size} bytes is over the {MAX_FRAME} limit")
    body = _read_exactly(conn, size)
    if body is None:
        return None
    try:
        return json.loads(body)
    except RecursionError:  # nested past the interpreter's stack: unreadable, as any bad JSON
        raise ValueError("a frame nested too deeply") from None


def _result_json(result: Result) -> dict[str, Any]:
    return {**result.to_json(), "calls": result.calls}


def _result_of(data: dict[str, Any]) -> Result:
    error = data.get("error")
    return Result(
        status=data["status"],
        backend=data["backend"],
        result=data.get("result"),
        error=ErrorInfo(**error) if isinstance(error, dict) else None,
        limit=data.get("limit"),
        stdout=data.get("stdout", ""),
        duration_ms=data.get("duration_ms", 0.0),
        environment=dict(data.get("environment") or {}),
        layers=tuple(data.get("layers") or ()),
        calls=data.get("calls"),
    )


# -- the service ------------------------------------------------------------


class LocalBackend:
    """The service's own backend as its clients see it through
    `ServiceBackend`, for a plugin that runs jobs in the service process:
    the same name, policy default, no-op `prepare` and results (each one
    made from its wire form, as a client reads it), counted as calls."""

    name = "restricted"

    def __init__(self, service: _Service) -> None:
        self._service = service

    def default_policy(self, declared: PolicyName) -> PolicyName:
        return declared

    def start(self) -> None:
        self._service.backend().start()

    def prepare(self, lock: Lock, *, build: bool | None = None, progress: Callable[[str], None] | None = None) -> None:
        return None

    def run(self, job: Job, cancel: Cancel | None = None) -> Result:
        return _result_of(_result_json(self._service.run_job(job, cancel)))

    def health(self) -> dict[str, Any]:
        return self._service.backend().health()

    def close(self) -> None:
        return None  # the service's, closed when it stops


def _plugins(backend: LocalBackend) -> dict[str, Handler]:
    """The operations the installed plugins serve (`PLUGIN_GROUP`). A plugin
    that fails to load is left out: the service still runs jobs."""
    from importlib.metadata import entry_points  # here: only the service reads them, once

    ops: dict[str, Handler] = {}
    for entry in entry_points(group=PLUGIN_GROUP):
        try:
            served = entry.load()(backend)
        except Exception:  # noqa: BLE001 - a detached process has no one to tell; its clients fall back
            continue
        for op, handler in dict(served).items():
            if op not in _OWN_OPS and callable(handler):
                ops[str(op)] = handler
    return ops


_OWN_OPS = frozenset({"ping", "stop", "run"})


class _Service:
    """The serving side: one listening socket, one thread per call."""

    def __init__(
        self,
        directory: Path,
        idle: float,
        backend: Callable[[], Backend],
        plugins: Callable[[LocalBackend], Mapping[str, Handler]] | None = _plugins,
    ) -> None:
        self.directory = directory
        self.idle = idle
        self._make_backend = backend
        self._load_plugins = plugins
        self._ops: dict[str, Handler] = {}
        self._backend: Backend | None = None
        self._guard = threading.Lock()
        self._active = 0
        self._calls = 0
        self._last = time.monotonic()
        self._started = time.time()
        self._stop = threading.Event()

    def backend(self) -> Backend:
        with self._guard:
            if self._backend is None:
                self._backend = self._make_backend()
            return self._backend

    def serve(self) -> int:
        """Serve until idle; 0 also when another service already serves here."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        _check_dir(self.directory)
        lock = open(self.directory / _LOCK, "a")  # held (flock) for the service's life
        try:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # another service holds the directory
            path = self.directory / _SOCKET
            if _check_socket(path):
                path.unlink()  # stale: its service is gone (we hold the lock)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            old = os.umask(0o177)
            try:
                listener.bind(str(path))
            finally:
                os.umask(old)
            os.chmod(path, 0o600)
            if self._load_plugins is not None:
                self._ops = dict(self._load_plugins(LocalBackend(self)))
            listener.listen(64)
            listener.settimeout(0.5)
            pid_file = self.directory / _PID
            pid_file.write_text(json.dumps({"pid": os.getpid(), "socket": str(path), "started": self._started}))
            try:
                self._loop(listener)
            finally:
                listener.close()
                path.unlink(missing_ok=True)
                pid_file.unlink(missing_ok=True)
                if self._backend is not None:
                    self._backend.close()
            return 0
        finally:
            lock.close()

    def _loop(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            with self._guard:
                if self._active == 0 and time.monotonic() - self._last > self.idle:
                    return
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with self._guard:
                self._active += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        op = None
        try:
            with conn:
                if peer_uid(conn) != os.getuid():
                    return  # not this user: not a word
                request = _recv(conn)
                if not isinstance(request, dict):
                    return
                op = request.get("op")
                if op == "ping":
                    _send(conn, self._status())
                elif op == "stop":
                    self._stop.set()
                    _send(conn, {"stopping": True})
                elif op == "run":
                    _send(conn, {"result": _result_json(self._run(conn, request.get("job")))})
                elif isinstance(op, str) and op in self._ops:
                    self._ops[op](conn, request, _watch(conn))
                # Ended both ways before it is closed: a thread still
                # waiting on it (`_cancel_on_close`) wakes, and the client
                # reads the end of the answer at once.
                _shutdown(conn)
        except (OSError, ValueError):
            pass  # the client went away, or sent something unreadable
        finally:
            with self._guard:
                self._active -= 1
                if op == "run" or (isinstance(op, str) and op in self._ops):  # only calls keep it awake
                    self._last = time.monotonic()

    def _run(self, conn: socket.socket, wire: Any) -> Result:
        try:
            if not isinstance(wire, dict):
                raise ValueError("a run request needs a job")
            job = Job(**wire)
        except (TypeError, ValueError) as exc:
            return Result(
                status="unavailable",
                backend="restricted",
                error=ErrorInfo(type="SandboxUnavailable", message=f"the sandbox service refused the job: {exc}"),
            )
        return self.run_job(job, _watch(conn))

    def run_job(self, job: Job, cancel: Cancel | None) -> Result:
        """One job on the service's backend, counted."""
        with self._guard:
            self._calls += 1
        return self.backend().run(job, cancel)

    def _status(self) -> dict[str, Any]:
        with self._guard:
            return {
                "pid": os.getpid(),
                "calls": self._calls,
                "active": self._active - 1,  # not counting this question
                "started": self._started,
                "idle_stop_s": self.idle,
                "serves": sorted(self._ops),
            }


def _watch(conn: socket.socket) -> Cancel:
    """A Cancel cancelled when the client goes away. The client sends
    nothing after its request: anything readable is its going away."""
    cancel = Cancel()
    threading.Thread(target=_cancel_on_close, args=(conn, cancel), daemon=True).start()
    return cancel


def _cancel_on_close(conn: socket.socket, cancel: Cancel) -> None:
    try:
        conn.recv(1)
    except OSError:
        pass
    cancel.cancel()


# -- the client -------------------------------------------------------------


def _idle_seconds() -> float:
    try:
        return max(1.0, float(os.environ.get(IDLE_ENV, DEFAULT_IDLE_S)))
    except ValueError:
        return DEFAULT_IDLE_S


def _connect(path: Path) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
    except BaseException:
        conn.close()
        raise
    return conn


def _spawn(directory: Path) -> None:
    """Start a service for `directory` (it detaches: this returns at once)."""
    import subprocess  # here: a command that finds the service warm never spawns it

    subprocess.run(
        [sys.executable, "-m", "toolcrib.sandbox.service", "serve", "--dir", str(directory)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        close_fds=True,
        check=False,
        timeout=30,
    )


def open_connection(directory: Path | None = None, *, start: bool = True, timeout: float = 15.0) -> socket.socket:
    """A connection to this user's service, started if it is not running
    (and `start`). Raises ServiceRefused for a directory or socket that is
    not ours, RuntimeError when no service answers within `timeout`."""
    directory = directory or service_dir()
    _check_dir(directory)
    path = directory / _SOCKET
    deadline = time.monotonic() + timeout
    spawned = False
    while True:
        if _check_socket(path):
            try:
                return _connect(path)
            except (ConnectionRefusedError, FileNotFoundError):
                pass  # stale: the service that made it is gone; a new one replaces it
        if not start:
            raise RuntimeError(f"no sandbox service at {path}")
        if not spawned:
            _spawn(directory)
            spawned = True
            _check_dir(directory)
        if time.monotonic() > deadline:
            raise RuntimeError(f"the sandbox service did not start at {path} within {timeout:.0f} s")
        time.sleep(0.02)


def _ask(op: str, directory: Path | None = None, *, start: bool = False) -> Any:
    with open_connection(directory, start=start) as conn:
        _send(conn, {"op": op})
        return _recv(conn)


def status(directory: Path | None = None) -> dict[str, Any]:
    """What `toolcrib doctor` shows: whether calls use the service, where its
    socket is, and the running service's pid and calls (never starts one)."""
    directory = directory or service_dir()
    out: dict[str, Any] = {"enabled": enabled(), "socket": str(directory / _SOCKET), "running": False}
    try:
        answer = _ask("ping", directory)
    except ServiceRefused as exc:
        return {**out, "error": str(exc)}
    except (OSError, RuntimeError, ValueError):
        return out
    return {**out, "running": True, **(answer if isinstance(answer, dict) else {})}


def stop(directory: Path | None = None) -> bool:
    """Ask a running service to stop (False: none was running)."""
    try:
        _ask("stop", directory)
    except (OSError, RuntimeError, ValueError):
        return False
    return True


class ServiceBackend:
    """The restricted backend, through this user's sandbox service: the
    same jobs, results and name ("restricted"), run by a service whose
    zygotes stay warm between commands. `close` leaves the service running
    (it stops itself when idle)."""

    name = "restricted"

    def __init__(self, directory: Path | None = None, **_options: Any) -> None:
        # Options of an in-process RestrictedBackend do not travel: the
        # service runs the defaults (the same as the table's shared one).
        self.directory = directory

    def default_policy(self, declared: PolicyName) -> PolicyName:
        return declared

    def start(self) -> None:
        try:
            _ask("ping", self.directory, start=True)
        except (ServiceRefused, OSError, ValueError) as exc:
            raise RuntimeError(str(exc)) from None

    def prepare(self, lock: Lock, *, build: bool | None = None, progress: Callable[[str], None] | None = None) -> None:
        return None

    def run(self, job: Job, cancel: Cancel | None = None) -> Result:
        started = time.perf_counter()
        try:
            conn = open_connection(self.directory, start=True)
        except (ServiceRefused, RuntimeError, OSError) as exc:
            return self._unavailable(str(exc), started)
        with conn:
            remove = cancel.on_cancel(lambda: _shutdown(conn)) if cancel is not None else None
            try:
                _send(conn, {"op": "run", "job": job.wire()})
                reply = _recv(conn)
            except (OSError, ValueError) as exc:
                reply = None
                reason = f"the sandbox service failed: {exc}"
            else:
                reason = "the sandbox service closed the connection"
            finally:
                if remove is not None:
                    remove()
        if not isinstance(reply, dict) or not isinstance(reply.get("result"), dict):
            if cancel is not None and cancel.cancelled:
                reason = "cancelled"
            return self._unavailable(reason, started)
        return _result_of(reply["result"])

    def _unavailable(self, message: str, started: float) -> Result:
        return Result(
            status="unavailable",
            backend=self.name,
            error=ErrorInfo(type="SandboxUnavailable", message=message),
            duration_ms=(time.perf_counter() - started) * 1000,
        )

    def health(self) -> dict[str, Any]:
        info = status(self.directory)
        return {
            "backend": self.name,
            "available": "error" not in info,
            **({"error": info["error"]} if "error" in info else {}),
            "service": info,
        }

    def close(self) -> None:
        return None


def _shutdown(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _serve_detached(directory: Path, idle: float) -> int:
    """Double fork: the caller's child exits at once (so the command that
    started the service never waits on it), the grandchild serves in a
    session of its own."""
    if os.fork() > 0:
        return 0
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    try:
        from .restricted import RestrictedBackend

        code = _Service(directory, idle, lambda: RestrictedBackend()).serve()
    except BaseException:  # noqa: BLE001 - a detached process has no one to tell
        code = 1
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    import argparse  # here: the service's own command line, not its clients'

    parser = argparse.ArgumentParser(prog="python -m toolcrib.sandbox.service")
    parser.add_argument("command", choices=["serve", "status", "stop"])
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--idle", type=float, default=None)
    parser.add_argument("--foreground", action="store_true")
    opts = parser.parse_args(argv)
    directory = opts.dir or service_dir()
    if opts.command == "status":
        print(json.dumps(status(directory)))
        return 0
    if opts.command == "stop":
        return 0 if stop(directory) else 1
    idle = opts.idle if opts.idle is not None else _idle_seconds()
    if opts.foreground:
        from .restricted import RestrictedBackend

        return _Service(directory, idle, lambda: RestrictedBackend()).serve()
    return _serve_detached(directory, idle)


if __name__ == "__main__":
    sys.exit(main())
