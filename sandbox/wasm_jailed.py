"""The wasm backend's second wall on Linux: the wasmtime host itself runs in
a jailed child process, one per call, so a bug in wasmtime (or in the
host's own code around it) still meets the kernel.

A fork server (`main`, started by `JailedHosts`) imports wasmtime and loads
the compiled guest once; for every call it forks a child, so a call pays
neither for the import nor for the load. The child, single-threaded after
the fork, enters a fresh network namespace, reads its one job; as root, it
leaves root for a call uid of its own (`_leave_root`: a block claimed by
the server from `uids.py`, no groups, no capabilities, its grants reached
through descriptors opened before); then it enters the jail before
wasmtime makes a store, opens a file or starts a thread (a thread inherits
Landlock and seccomp only from the thread that makes it, and wasmtime
starts I/O threads for WASI): ``no_new_privs``; rlimits (no
file may be written, no core, few descriptors, a CPU backstop);
`jail.ZygoteJail`: Landlock that allows only reading the interpreter's,
wasmtime's and toolcrib's files, the libraries, the wasm cache and the
call's site folder (writing only /dev/null), TCP bind/connect handled with
no rule, signals and abstract sockets scoped; and its seccomp filter
(no socket, exec, ptrace, namespace, mount, SysV IPC, bpf, io_uring, shared
futex...). Under it, the child opens the guest's read-only grants and
its stdin (the job, in a private file the host writes under the wasm
cache's ``jobs/`` and removes after the call), and runs the guest. The
child writes the call's fields
as one JSON line on its own socket and exits; the host kills it at the wall
limit plus a grace if it has not. The fork server itself runs no guest.

What the parent reads from the child is checked like any reply (bounded,
JSON, `Result`'s own checks): the child ran the guest, so it is not trusted
more than the guest's reply under plain.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import resource
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .contract import Cancel, ErrorInfo, Job

__all__ = ["JailedHosts", "main", "share_grants"]

READY = b"toolcrib-wasm-host-ready\n"
_GRACE = 5.0
_START_TIMEOUT = 60.0
_MAX_REQUEST = 64 * 1024 * 1024
_SLACK = 256 * 1024
_SPARES = 2  # children warmed up ahead (fresh single-use instances, the harness imported)
_O_PATH = getattr(os, "O_PATH", 0o10000000)
_PR_SET_DUMPABLE = 4
_SERVER = "import sys; from toolcrib.sandbox.wasm_jailed import main; main(int(sys.argv[1]))"


# -- the fork server and its children -------------------------------------------------


def _readable(site: str | None, cache: Path) -> tuple[str, ...]:
    import wasmtime

    from .inside import jail

    here = Path(__file__).resolve().parent
    paths = {
        sys.prefix,
        sys.base_prefix,
        str(Path(wasmtime.__file__).resolve().parent),
        str(here.parent),
        str(cache),
        *(p for p in sys.path if p and os.path.isdir(p)),
        *jail.LIBRARY_DIRS,
    }
    if site:
        paths.add(site)
    return tuple(sorted(paths))


def _limit(which: int, value: int) -> None:
    try:
        resource.setrlimit(which, (value, value))
    except (ValueError, OSError):
        pass


def _recv_line(sock: socket.socket, cap: int) -> bytes:
    buf = bytearray()
    while not buf.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk or len(buf) > cap:
            raise ValueError("no request")
        buf += chunk
    return bytes(buf)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        chunk = sock.recv(min(1 << 20, size - len(buf)))
        if not chunk:
            raise ValueError("the request was cut short")
        buf += chunk
    return bytes(buf)


def _answer(sock: socket.socket, fields: dict[str, Any]) -> None:
    error = fields.get("error")
    if isinstance(error, ErrorInfo):
        fields["error"] = error.to_json()
    fields["layers"] = list(fields.get("layers") or ())
    sock.sendall(json.dumps(fields, ensure_ascii=True).encode() + b"\n")


def _serve_call(runtime: Any, sock: socket.socket, uid: int | None = None) -> None:
    """In the forked child: one call, in the jail (see the module's
    docstring). The host names the call's site folder and job folder first;
    the child enters the jail and warms a fresh instance (the harness
    imported), which then waits for the job: a spare child waits there
    before any call takes it."""
    from . import wasm
    from .inside import jail

    sock.sendall(b"%d\n" % os.getpid())
    netns = jail.new_network_namespace()  # single-threaded here: a user namespace needs it
    try:
        header = json.loads(_recv_line(sock, 64 * 1024))
        site, job_dir = header.get("site"), Path(str(header["job_dir"]))
        imports = tuple(str(name) for name in header.get("imports") or ())
    except Exception as exc:  # noqa: BLE001 - a bad header is the host's bug: report it
        _answer(sock, {"status": "error", "error": ErrorInfo("SandboxProtocolError", f"bad header: {exc}"[:500])})
        return
    layers = ["wasm", "wasi_read_only_grants", "epoch_deadline", "store_memory_limit"]
    if netns.get("netns"):
        layers.append("netns")
    stage = jail.ZygoteJail(_readable(site, wasm.cache_dir()))
    if uid is not None:
        # Root leaves root for the call's own uid, after opening what the
        # guest is granted: that uid cannot walk /root or the owner-only
        # cache, so the grants are reached through /proc/self/fd.
        try:
            site, job_dir = _leave_root(runtime, uid, site, job_dir)
        except OSError as exc:
            _answer(sock, _unavailable(f"the wasm host could not leave root: {exc}"[:500]))
            return
        layers.append("host_uid")
    # The jail first, before wasmtime makes a store or opens a file: the
    # threads it starts for WASI's I/O are then made inside it (a thread
    # inherits Landlock and seccomp; one made before would be outside).
    jail._libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
    layers.append("no_new_privs")
    _limit(resource.RLIMIT_FSIZE, 0)
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_NOFILE, 256)
    layers.extend(f"host_{name}" for name in stage.enter())
    warm = wasm._Warm(runtime, job_dir=job_dir, site=Path(site) if site else None, imports=imports)
    try:
        size = int(_recv_line(sock, 32))
        if not 0 < size <= _MAX_REQUEST:
            raise ValueError("request too large")
        request = json.loads(_recv_exact(sock, size))
        job = Job(**request["job"])
    except Exception as exc:  # noqa: BLE001 - a bad request is the host's bug: report it
        warm.discard()
        _answer(sock, {"status": "error", "error": ErrorInfo("SandboxProtocolError", f"bad request: {exc}"[:500])})
        return
    # A CPU backstop under the epoch deadline: the warm-up's own time plus the call's.
    used = resource.getrusage(resource.RUSAGE_SELF)
    _limit(resource.RLIMIT_CPU, int(used.ru_utime + used.ru_stime + job.limits.cpu) + 1 + int(_GRACE))
    exit_code, trap = warm.serve(None, job.limits)
    fields = wasm._outcome(warm.call, exit_code, trap, job)
    fields["layers"] = tuple(layers)
    if stage.errors:
        fields["environment"] = {"host_jail_errors": json.dumps(stage.errors, sort_keys=True)[:500]}
    _answer(sock, fields)


def _leave_root(runtime: Any, uid: int, site: str | None, job_dir: Path) -> tuple[str | None, Path]:
    """In the child, still root: open each folder the guest is granted,
    become `uid` (no groups, no capabilities), and point the grants at
    ``/proc/self/fd/<n>``. Returns the site and job folder's new paths (the
    runtime's own two are changed in place: this child's copy)."""
    from .inside import jail

    def through_fd(path: str | Path) -> str:
        fd = os.open(str(path), _O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        return f"/proc/self/fd/{fd}"

    stdlib, harness = through_fd(runtime.stdlib_dir), through_fd(runtime.harness_dir)
    job = through_fd(job_dir)
    site_fd = through_fd(site) if site else None
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if 0 in os.getresuid() or 0 in os.getresgid():
        raise OSError("still root")
    # A change of uid makes the process non-dumpable, which hands its /proc
    # entries (and so /proc/self/fd) to root.
    if jail._libc.prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0) != 0:
        raise OSError("prctl(PR_SET_DUMPABLE) failed")
    runtime.stdlib_dir, runtime.harness_dir = Path(stdlib), Path(harness)
    return site_fd, Path(job)


def _call_uids() -> tuple[Any, Any]:
    """As root: a block of call uids claimed machine-wide (`uids.py`, as the
    restricted backend's zygote does) and the next uid to give a child,
    cycling through the block's slots 1..BLOCK_SIZE-1. (None, None) when
    not root; (None, error text) when no block could be claimed."""
    if os.geteuid() != 0:
        return None, None
    from .inside import uids

    try:
        block = uids.claim()
    except (OSError, uids.UidsExhausted) as exc:
        return None, f"no block of call uids: {exc}"
    slots = itertools.cycle(range(1, uids.BLOCK_SIZE))
    return block, (lambda: block.base + next(slots))


def main(control_fd: int) -> None:
    """The fork server: load the guest once, then fork a child per call
    handed over on the control socket (one descriptor per message)."""
    from . import wasm

    try:
        runtime = wasm._Runtime(wasm.cache_dir(), precompile=False)  # no instance before the forks
    except Exception as exc:  # noqa: BLE001 - the host reports it as unavailable
        sys.stdout.buffer.write(json.dumps({"error": str(exc)[:500]}).encode() + b"\n")
        sys.stdout.buffer.flush()
        return
    block, next_uid = _call_uids()
    if block is None and isinstance(next_uid, str):
        # Root without a block of call uids: no child would leave root.
        sys.stdout.buffer.write(json.dumps({"error": next_uid[:500]}).encode() + b"\n")
        sys.stdout.buffer.flush()
        return
    control = socket.socket(fileno=control_fd)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    sys.stdout.buffer.write(READY)
    sys.stdout.buffer.flush()
    while True:
        try:
            _msg, fds, _flags, _addr = socket.recv_fds(control, 16, 1)
        except OSError:
            return
        if not fds:
            return  # the host hung up
        uid = next_uid() if block is not None else None
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                control.close()
                with socket.socket(fileno=fds[0]) as sock:
                    _serve_call(runtime, sock, uid)
            except BaseException:  # noqa: BLE001 - the host sees the socket close
                code = 70
            finally:
                os._exit(code)
        os.close(fds[0])


# -- the host side -------------------------------------------------------------------


def _read_line(sock: socket.socket, deadline: float, cap: int) -> bytes | None:
    """One line from `sock`, at most `cap` bytes, by `deadline` (None if not)."""
    buf = bytearray()
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or len(buf) > cap:
            return None
        ready, _, _ = select.select([sock], [], [], min(left, 0.5))
        if not ready:
            continue
        try:
            chunk = sock.recv(1 << 16)
        except OSError:
            return None
        if not chunk:
            return None
        buf += chunk
    return bytes(buf[: buf.index(b"\n") + 1])


class JailedHosts:
    """The fork server, started on first use (and again if it dies), and
    one jailed child of it per call."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self._lock = threading.Lock()
        self._server: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        # The pids of the children running a call now (tests, doctor).
        self.running: set[int] = set()
        # Children warmed up, waiting for a call: by site folder ("" for none).
        self._spares: dict[str, list[_Pending]] = {}
        self._warming: dict[str, int] = {}
        self._shared_sites: set[str] = set()
        self._closed = False

    def _start(self) -> tuple[subprocess.Popen[bytes], socket.socket]:
        share_grants(Path(self.env["TOOLCRIB_WASM_CACHE"]))
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with theirs:
            server = subprocess.Popen(
                [sys.executable, "-I", "-c", _SERVER, str(theirs.fileno())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=self.env,
                pass_fds=[theirs.fileno()],
                start_new_session=True,
            )
        assert server.stdout is not None
        deadline = time.monotonic() + _START_TIMEOUT
        line = b""
        fd = server.stdout.fileno()
        while not line.endswith(b"\n") and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                line += chunk
        if line != READY:
            _stop(server)
            ours.close()
            try:
                said = str(json.loads(line or b"{}").get("error") or "")
            except ValueError:
                said = ""
            raise RuntimeError(said or "the wasm host did not start")
        return server, ours

    def start(self) -> None:
        self._connect()
        self._refill()
        _sweep(Path(self.env["TOOLCRIB_WASM_CACHE"]) / "jobs")

    def _connect(self) -> socket.socket:
        with self._lock:
            if self._closed:  # a refill still running as the backend closed starts no new server
                raise RuntimeError("the wasm backend is closed")
            if self._server is None or self._server.poll() is not None or self._control is None:
                if self._server is not None:
                    _stop(self._server)
                if self._control is not None:
                    self._control.close()
                self._server, self._control = None, None
                self._server, self._control = self._start()
            return self._control

    def _hand_over(self, far: socket.socket) -> None:
        for _attempt in range(2):
            control = self._connect()
            try:
                with self._lock:
                    socket.send_fds(control, [b"c"], [far.fileno()])
                return
            except OSError:
                with self._lock:
                    if self._control is control:
                        self._control = None  # dead: started again on the next try
        raise RuntimeError("the wasm fork server does not answer")

    def _prepare(self, site: Path | None, imports: tuple[str, ...] = ()) -> _Pending:
        """A child forked for one call, told its folders, warming up."""
        jobs = Path(self.env["TOOLCRIB_WASM_CACHE"]) / "jobs"
        jobs.mkdir(mode=0o700, exist_ok=True)
        job_dir = Path(tempfile.mkdtemp(dir=jobs, prefix="job-"))
        if os.geteuid() == 0:
            os.chmod(job_dir, 0o755)  # the child's uid reads it through its descriptor (jobs/ stays 0700)
            if site is not None and str(site) not in self._shared_sites:
                # A lock's site, read by the call uid: readable by all whatever the umask it was built under.
                _readable_by_all(site, 0, 0)
                self._shared_sites.add(str(site))
        if imports:
            _write_readable(job_dir / "preload.json", json.dumps({"imports": list(imports)}).encode())
        near, far = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pending = _Pending(near, job_dir)
        try:
            with far:
                self._hand_over(far)
            line = _read_line(near, time.monotonic() + _START_TIMEOUT, 32)
            if line is None:
                raise RuntimeError("the wasm host did not take the call")
            pending.pid = int(line)
            header = {"site": str(site) if site else None, "job_dir": str(job_dir)}
            near.sendall(json.dumps(header).encode() + b"\n")
        except (OSError, ValueError, RuntimeError):
            pending.close()
            raise
        return pending

    def _refill(self, site: Path | None = None, imports: tuple[str, ...] = ()) -> None:
        """Spares for jobs without packages (`_SPARES`), or one for a lock."""
        key, want = str(site or ""), (_SPARES if site is None else 1)
        while True:
            with self._lock:
                spares = self._spares.setdefault(key, [])
                if self._closed or len(spares) + self._warming.get(key, 0) >= want:
                    return
                self._warming[key] = self._warming.get(key, 0) + 1
            try:
                spare = self._prepare(site, imports)
            except (OSError, ValueError, RuntimeError):
                return
            finally:
                with self._lock:
                    self._warming[key] -= 1
            with self._lock:
                if not self._closed:
                    self._spares.setdefault(key, []).append(spare)
                    continue
            spare.close()
            return

    def _take(self, site: Path | None, imports: tuple[str, ...] = ()) -> _Pending:
        """A spare child (a fresh one when none is ready). Refilled once the
        call ends (`_refill_soon`), not while it runs: a child warming up
        beside the call would take the CPU the call needs."""
        with self._lock:
            spares = self._spares.get(str(site or "")) or []
            spare = spares.pop(0) if spares else None
        return spare if spare is not None else self._prepare(site, imports)

    def _refill_soon(self, site: Path | None, imports: tuple[str, ...]) -> None:
        threading.Thread(target=self._refill, args=(site, imports), name="toolcrib-wasm-spare", daemon=True).start()

    def run(self, job: Job, site: Path | None, cancel: Cancel | None) -> dict[str, Any]:
        request = json.dumps({"job": job.wire()}).encode()
        imports = tuple(job.lock.imports) if job.lock is not None else ()
        try:
            pending = self._take(site, imports)
        except (OSError, ValueError) as exc:
            self._refill_soon(site, imports)
            return _unavailable(f"the wasm host did not take the call: {exc}")
        killed: list[bool] = []

        def stop() -> None:
            killed.append(True)
            pending.stop()

        forget = cancel.on_cancel(stop) if cancel is not None else None
        self.running.add(pending.pid or 0)
        try:
            # The job, in the folder the child's guest reads it from (this
            # side writes it: the jailed child can write nothing).
            _write_readable(pending.job_dir / "job.json", json.dumps(job.wire(), separators=(",", ":")).encode())
            try:
                pending.near.sendall(b"%d\n" % len(request) + request)
            except OSError:
                pass
            cap = job.limits.output * 1024 * 2 + _SLACK
            answer = _read_line(pending.near, time.monotonic() + job.limits.wall + _GRACE, cap)
            if killed:
                return _unavailable("the sandbox was stopped during the call (cancelled)")
            if answer is None:
                return _unavailable("the wasm host stopped answering (killed)")
            return _fields(answer)
        finally:
            if forget is not None:
                forget()
            self.running.discard(pending.pid or 0)
            pending.close()
            self._refill_soon(site, imports)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            server, self._server = self._server, None
            control, self._control = self._control, None
            spares, self._spares = [p for ps in self._spares.values() for p in ps], {}
        for spare in spares:
            spare.close()
        if control is not None:
            control.close()
        if server is not None:
            _stop(server)


class _Pending:
    """One forked child, its socket and its job folder (which this side
    made and removes)."""

    def __init__(self, near: socket.socket, job_dir: Path) -> None:
        self.near = near
        self.job_dir = job_dir
        self.pid: int | None = None

    def stop(self) -> None:
        if self.pid is not None:
            _kill(self.pid)
        with contextlib.suppress(OSError):
            self.near.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        if self.pid is not None:
            _kill(self.pid)
        self.near.close()
        shutil.rmtree(self.job_dir, ignore_errors=True)


def _write_readable(path: Path, data: bytes) -> None:
    """A file of the job folder, readable by the child's uid whatever the
    umask (the folder is reachable only through the child's descriptor)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), 0o644)
        fh.write(data)


def share_grants(cache: Path) -> None:
    """As root, before the fork server starts: the guest's standard library
    and harness folders (inside the owner-only cache) readable by the call
    uids the children switch to: folders 0755, files 0644. The cache itself
    stays 0700, so no other user reaches them by path."""
    if os.geteuid() != 0:
        return
    from . import wasm

    for top in (wasm._stdlib_dir(cache), wasm._harness_dir(cache)):
        _readable_by_all(top, 0o755, 0o644)


def _readable_by_all(top: Path, dirs: int, files: int) -> None:
    """Folders under `top` (itself included) given mode `dirs`, files
    `files`; a mode of 0 means "add read (and search) for all, keep the
    rest" (a lock's read-only site)."""
    for folder, _subdirs, names in os.walk(top):
        os.chmod(folder, dirs or stat.S_IMODE(os.lstat(folder).st_mode) | 0o555)
        for name in names:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if not stat.S_ISLNK(info.st_mode):
                os.chmod(path, files or stat.S_IMODE(info.st_mode) | 0o444)


def _sweep(jobs: Path, older: float = 86400.0) -> None:
    """Job folders a process that ended abruptly left behind (a day old)."""
    now = time.time()
    for folder in jobs.glob("job-*"):
        with contextlib.suppress(OSError):
            if now - folder.stat().st_mtime > older:
                shutil.rmtree(folder, ignore_errors=True)


def _unavailable(message: str) -> dict[str, Any]:
    return {"status": "unavailable", "error": ErrorInfo("SandboxUnavailable", message)}


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _stop(server: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(server.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if server.stdout is not None:
        server.stdout.close()
    try:
        server.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


_FIELDS = {"status", "result", "error", "limit", "stdout", "calls", "layers", "environment"}


def _fields(line: bytes) -> dict[str, Any]:
    """The child's answer as `Result` fields; anything off is an error."""
    try:
        fields = json.loads(line)
        if not isinstance(fields, dict) or not set(fields) <= _FIELDS:
            raise ValueError("not the fields of a result")
        if fields.get("error") is not None:
            fields["error"] = ErrorInfo.from_json(fields["error"])
        if not isinstance(fields.get("layers", []), list):
            raise ValueError("layers")
        fields["layers"] = tuple(str(x) for x in fields.get("layers", []))
        return fields
    except (ValueError, TypeError) as exc:
        return {
            "status": "error",
            "error": ErrorInfo("SandboxProtocolError", f"the wasm host wrote a bad answer: {exc}"),
        }
