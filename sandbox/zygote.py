"""The restricted backend's zygote: a small server that imports the sandbox's
execution code once, then forks one fresh, locked-down child per job.

It runs as its own program, started by `restricted.py`::

    python -I /path/to/sandbox/zygote.py <control-fd>

It loads the sibling modules (`execute.py` and whatever that imports) as a
private package straight from this directory, so it never imports `toolcrib`
(whose ``__init__`` pulls in the registry, pydantic and sqlite-utils).

Wire protocol (all framing is ours; only JSON and raw bytes cross):

- control socket (AF_UNIX SOCK_SEQPACKET, inherited as ``<control-fd>``):
  the zygote first sends one ``ready`` message (JSON facts about what the
  child set-up achieved on this machine). Then each host message is a small
  JSON *header* (limits and the policy flag) carrying one descriptor by
  SCM_RIGHTS: the *call socket*, a fresh socketpair end private to that call.
  EOF on the control socket means the host is gone: the zygote kills every
  child and exits.
- call socket: the host writes ``u32 length + job JSON``; the child (not the
  zygote) reads it, then closes the socket before any tool code runs, so tool
  code cannot talk to the host. When the child has exited and been reaped, the
  zygote writes ``u32 length + trailer JSON`` (pid, exit code or signal, who
  killed it and why, CPU seconds used, reply length) followed by the child's
  reply bytes, and closes the socket.

The child's reply travels through a pipe to the zygote, which reads at most
the output cap plus a little slack and kills the child past that.

This module also serves as the host's source of the protocol constants; it
imports only the standard library.
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import json
import math
import os
import resource
import selectors
import signal
import socket
import struct
import sys
import time
import types

__all__ = [
    "CALL_UID_BASE",
    "CALL_UID_SLOTS",
    "EXIT_SETUP_FAILED",
    "HEADER_MAX",
    "OUTPUT_SLACK",
    "TRAILER_MAX",
    "ZYGOTE_PATH",
    "main",
]

ZYGOTE_PATH: str = os.path.abspath(__file__)

# Each call in flight runs as its own unprivileged uid/gid (when the zygote is
# root), so two concurrent tools cannot signal or ptrace each other, and
# RLIMIT_NPROC (counted per uid) sees exactly one process. The range sits far
# above ordinary users and the usual subordinate-id ranges.
CALL_UID_BASE: int = 2_000_000_000
CALL_UID_SLOTS: int = 4096

EXIT_SETUP_FAILED: int = 111  # the child could not lock itself down: it never ran tool code
HEADER_MAX: int = 4096  # largest control header the zygote accepts
TRAILER_MAX: int = 4096  # largest trailer the host accepts
OUTPUT_SLACK: int = 4096  # bytes read past the output cap before the child is killed
NOFILE_LIMIT: int = 16  # descriptors a child may have open

_PKG = "_toolcrib_sandbox"
_LEN = struct.Struct(">I")
_CLONE_NEWNET = 0x40000000
_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38
_PAGE = os.sysconf("SC_PAGE_SIZE")

_libc = ctypes.CDLL(None, use_errno=True)


# --------------------------------------------------------------------------- child


class _SetupError(Exception):
    """A lock-down step failed where it must not: the child exits unrun."""


def _prctl(option: int, arg: int) -> None:
    if _libc.prctl(option, arg, 0, 0, 0) != 0:
        raise _SetupError(f"prctl({option}) failed: {os.strerror(ctypes.get_errno())}")


def _set_limit(kind: int, value: int) -> None:
    # soft == hard: the tool cannot raise it again, and the kernel's answer at
    # the limit is final.
    resource.setrlimit(kind, (value, value))


def _close_fds_except(keep: tuple[int, ...]) -> None:
    # Descriptors 0-2 are /dev/null (the zygote's own stdio); everything else
    # the zygote holds (control socket, other calls' pipes and sockets, the
    # epoll fd) must not reach tool code.
    low = 3
    for fd in sorted(keep):
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, resource.getrlimit(resource.RLIMIT_NOFILE)[1])


def _lock_down(header: dict, keep: tuple[int, ...], zygote_pid: int, slot: int, netns: bool) -> dict:
    """Everything the child does to itself before it reads the job, in order.

    Returns what was achieved (the start-up probe reports it to the host).
    Raises _SetupError (or OSError) if a step that must succeed fails.
    """
    # Python ignores SIGXFSZ (a write past RLIMIT_FSIZE would only raise
    # EFBIG, and tool code could swallow that); the default action kills, so
    # the zygote can report the disk limit from the exit signal.
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    signal.signal(signal.SIGXCPU, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

    # Own session and process group: the zygote kills the whole group, and no
    # terminal signal meant for the host reaches the tool.
    os.setsid()

    # Die with the zygote (it is single-threaded, so the "parent thread exits"
    # caveat of PDEATHSIG does not apply). Re-check the parent afterwards: it
    # may already have died before the prctl took effect.
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != zygote_pid:
        raise _SetupError("zygote exited during set-up")

    # A fresh network namespace has only a loopback interface, and it is
    # down. Creating one needs CAP_SYS_ADMIN, so it comes before dropping
    # privileges. `netns` says whether the start-up probe managed it: if it
    # did, failing now is an error (fail closed); if not, the zygote
    # recorded that and the host reports it.
    if netns and _libc.unshare(_CLONE_NEWNET) != 0:
        raise _SetupError(f"unshare(CLONE_NEWNET) failed: {os.strerror(ctypes.get_errno())}")

    _close_fds_except(keep)

    # The address-space limit is measured from here: the forked interpreter
    # already maps tens of MiB, and the tool's allowance comes on top.
    with open("/proc/self/statm", "rb") as statm:
        baseline = int(statm.read().split()[0]) * _PAGE

    uid_switched = False
    if os.geteuid() == 0:
        ident = CALL_UID_BASE + slot
        os.setgroups([])
        os.setresgid(ident, ident, ident)
        os.setresuid(ident, ident, ident)
        if os.getuid() == 0 or os.geteuid() == 0:
            raise _SetupError("could not leave root")
        uid_switched = True

    # No set-uid binary or file capability can give privileges back.
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)

    _set_limit(resource.RLIMIT_CORE, 0)
    _set_limit(resource.RLIMIT_CPU, max(1, math.ceil(header["cpu"])))
    _set_limit(resource.RLIMIT_FSIZE, header["disk"] * 1024 * 1024)
    _set_limit(resource.RLIMIT_NOFILE, NOFILE_LIMIT)
    # Zero other processes or threads for this (non-root) uid: fork, clone
    # and thread creation all fail with EAGAIN.
    _set_limit(resource.RLIMIT_NPROC, 0)
    _set_limit(resource.RLIMIT_AS, baseline + header["memory"] * 1024 * 1024)

    return {
        "uid": os.getuid(),
        "gid": os.getgid(),
        "uid_switched": uid_switched,
        "own_group": os.getpgid(0) == os.getpid(),
        "netns": netns,
        "no_new_privs": True,
        "baseline_vm_mib": round(baseline / 2**20, 1),
    }


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(min(size - len(chunks), 1 << 20))
        if not chunk:
            raise _SetupError("the host closed the call socket before sending the job")
        chunks += chunk
    return bytes(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _child_main(header: dict, call_fd: int, reply_fd: int, zygote_pid: int, slot: int, netns: bool, run_job) -> None:
    """The forked child: lock down, read the job, run it, reply, exit. Never returns."""
    code = 0
    try:
        _lock_down(header, (call_fd, reply_fd), zygote_pid, slot, netns)
        call = socket.socket(fileno=call_fd)
        call.settimeout(max(1.0, header["wall"]))
        (size,) = _LEN.unpack(_recv_exact(call, _LEN.size))
        job = json.loads(_recv_exact(call, size))
        # From here on nothing but the reply pipe leads out of this process.
        call.close()
    except BaseException:  # noqa: BLE001 - any set-up failure: never run the tool
        os._exit(EXIT_SETUP_FAILED)
    try:
        _write_all(reply_fd, run_job(job, restricted=header["restricted"]))
    except BaseException:  # noqa: BLE001 - a broken pipe means the zygote is gone
        code = 1
    os._exit(code)


# --------------------------------------------------------------------------- zygote


class _Call:
    __slots__ = ("pid", "pidfd", "reply_fd", "sock", "cap", "deadline", "reply", "killed", "slot")

    def __init__(self, pid: int, pidfd: int, reply_fd: int, sock: socket.socket, cap: int, deadline: float, slot: int):
        self.pid = pid
        self.pidfd = pidfd
        self.reply_fd: int | None = reply_fd
        self.sock = sock
        self.cap = cap
        self.deadline = deadline
        self.reply = bytearray()
        self.killed: str | None = None
        self.slot = slot


def _kill(call: _Call, reason: str) -> None:
    # Only the zygote kills its children, and only before it has reaped them:
    # until then the pid cannot be reused, so this never hits a stranger.
    if call.killed is None:
        call.killed = reason
    for kill, target in ((os.killpg, call.pid), (os.kill, call.pid)):
        try:
            kill(target, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _parse_header(data: bytes) -> dict:
    raw = json.loads(data)
    header = {
        "cpu": float(raw["cpu"]),
        "wall": float(raw["wall"]),
        "memory": int(raw["memory"]),
        "disk": int(raw["disk"]),
        "output": int(raw["output"]),
        "restricted": bool(raw["restricted"]),
    }
    if not (header["cpu"] > 0 and header["wall"] > 0 and header["memory"] > 0 and header["disk"] >= 0 and header["output"] > 0):
        raise ValueError("limits out of range")
    return header


class _Zygote:
    def __init__(self, control: socket.socket, run_job, netns: bool) -> None:
        self.control = control
        self.run_job = run_job
        self.netns = netns
        self.pid = os.getpid()
        self.sel = selectors.DefaultSelector()
        self.calls: dict[int, _Call] = {}
        self.free_slots = list(range(CALL_UID_SLOTS - 1, -1, -1))
        self.sel.register(control, selectors.EVENT_READ, None)

    def serve(self) -> None:
        while True:
            for key, _ in self.sel.select(self._next_timeout()):
                if key.data is None:
                    if not self._accept():
                        return
                else:
                    kind, call = key.data
                    if kind == "reply":
                        self._read_reply(call)
                    else:
                        self._reap(call)
            now = time.monotonic()
            for call in list(self.calls.values()):
                if call.killed is None and call.deadline <= now:
                    _kill(call, "wall")

    def _next_timeout(self) -> float | None:
        deadlines = [c.deadline for c in self.calls.values() if c.killed is None]
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def shutdown(self) -> None:
        for call in self.calls.values():
            _kill(call, "shutdown")

    def _accept(self) -> bool:
        try:
            data, ancdata, _flags, _addr = self.control.recvmsg(HEADER_MAX, socket.CMSG_SPACE(4 * 4))
        except InterruptedError:
            return True
        fds: list[int] = []
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                usable = len(payload) - len(payload) % 4
                fds.extend(struct.unpack(f"{usable // 4}i", payload[:usable]))
        if not data and not fds:
            return False  # EOF: the host is gone
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            return True
        sock = socket.socket(fileno=fds[0])
        try:
            header = _parse_header(data)
        except (ValueError, KeyError, TypeError):
            sock.close()
            return True
        if not self.free_slots:
            sock.close()  # the host sees EOF without a trailer: "too many calls"
            return True
        self._start(header, sock)
        return True

    def _start(self, header: dict, sock: socket.socket) -> None:
        slot = self.free_slots.pop()
        reply_r, reply_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            _child_main(header, sock.fileno(), reply_w, self.pid, slot, self.netns, self.run_job)
        os.close(reply_w)
        os.set_blocking(reply_r, False)
        pidfd = os.pidfd_open(pid)
        call = _Call(pid, pidfd, reply_r, sock, header["output"] * 1024 + OUTPUT_SLACK, time.monotonic() + header["wall"], slot)
        self.calls[pid] = call
        self.sel.register(reply_r, selectors.EVENT_READ, ("reply", call))
        self.sel.register(pidfd, selectors.EVENT_READ, ("exit", call))

    def _read_reply(self, call: _Call) -> None:
        fd = call.reply_fd
        if fd is None:
            return
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                return
            if not chunk:
                self._close_reply(call)
                return
            call.reply += chunk
            if len(call.reply) > call.cap:
                _kill(call, "output")
                self._close_reply(call)
                return

    def _close_reply(self, call: _Call) -> None:
        if call.reply_fd is not None:
            self.sel.unregister(call.reply_fd)
            os.close(call.reply_fd)
            call.reply_fd = None

    def _reap(self, call: _Call) -> None:
        self.sel.unregister(call.pidfd)
        os.close(call.pidfd)
        _pid, status, usage = os.wait4(call.pid, 0)
        # The child is gone, so whatever it wrote is already in the pipe.
        self._read_reply(call)
        self._close_reply(call)
        del self.calls[call.pid]
        self.free_slots.append(call.slot)
        reply = bytes(call.reply) if call.killed is None else b""
        trailer = {
            "pid": call.pid,
            "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            "killed": call.killed,
            "cpu": round(usage.ru_utime + usage.ru_stime, 4),
            "maxrss_kib": usage.ru_maxrss,
            "reply_len": len(reply),
        }
        head = json.dumps(trailer).encode()
        try:
            # The host thread is waiting on this socket; a generous timeout only
            # guards against a host that stopped reading.
            call.sock.settimeout(10.0)
            call.sock.sendall(_LEN.pack(len(head)) + head + reply)
        except OSError:
            pass
        finally:
            call.sock.close()


# --------------------------------------------------------------------------- start-up


def _load_run_job():
    """Import this directory's `execute` as a private package (not `toolcrib`)."""
    here = os.path.dirname(ZYGOTE_PATH)
    package = types.ModuleType(_PKG)
    package.__path__ = [here]
    package.__package__ = _PKG
    sys.modules[_PKG] = package
    execute = importlib.import_module(_PKG + ".execute")
    warm = getattr(execute, "warm", None)
    if warm is not None:
        warm()
    return execute.run_job


def _probe(netns: bool) -> dict:
    """Fork one child through the real lock-down and report what it achieved."""
    reply_r, reply_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = EXIT_SETUP_FAILED
        try:
            facts = _lock_down(
                {"cpu": 1, "wall": 1, "memory": 64, "disk": 0, "output": 1, "restricted": True},
                (reply_w,),
                os.getppid(),
                CALL_UID_SLOTS - 1,
                netns,
            )
            if netns:
                facts["interfaces"] = sorted(name for _i, name in socket.if_nameindex())
            _write_all(reply_w, json.dumps(facts).encode())
            code = 0
        except BaseException as exc:  # noqa: BLE001 - reported to the zygote
            try:
                _write_all(reply_w, json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
            except BaseException:  # noqa: BLE001
                pass
        os._exit(code)
    os.close(reply_w)
    with os.fdopen(reply_r, "rb") as pipe:
        data = pipe.read(65536)
    _pid, status = os.waitpid(pid, 0)
    facts = json.loads(data) if data else {"error": f"probe exited with status {status}"}
    facts["status"] = status
    return facts


def main(argv: list[str]) -> int:
    control = socket.socket(fileno=int(argv[1]))
    # Terminal signals go to the host; the zygote stops only on control EOF.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        run_job = _load_run_job()
        netns = False
        facts = _probe(False)
        if os.geteuid() == 0:
            attempt = _probe(True)
            if "error" not in attempt and attempt.get("status") == 0:
                facts, netns = attempt, True
            else:
                facts["netns_error"] = attempt.get("error", "unknown")
        if "error" in facts or facts.get("status") != 0:
            raise RuntimeError(f"child lock-down failed: {facts.get('error', facts)}")
        if not hasattr(os, "pidfd_open"):
            raise RuntimeError("os.pidfd_open is missing (needs Linux 5.3+, Python 3.9+)")
    except BaseException as exc:  # noqa: BLE001 - the host reports it as "unavailable"
        control.sendall(json.dumps({"ready": False, "error": f"{type(exc).__name__}: {exc}"}).encode())
        return 1
    ready = {"ready": True, "pid": os.getpid(), "python": sys.version.split()[0], **facts}
    # Everything imported so far lives as long as the zygote: keep the
    # collector from touching it in each child (fewer copied pages per fork).
    gc.collect()
    gc.freeze()
    control.sendall(json.dumps(ready).encode())
    # Nothing more to say on stderr: the host stops reading it after `ready`.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    zygote = _Zygote(control, run_job, netns)
    try:
        zygote.serve()
    finally:
        zygote.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
