"""The restricted backend's zygote: a small server that imports the sandbox's
execution code once, then forks fresh, locked-down children, one per call.

It runs as its own program, started by `restricted.py`::

    python -I -S /path/to/sandbox/inside/zygote.py <control-fd> <spares> [--preload=a,b] [--site=DIR] [--slots=i/n] [<sys.path entry>...]

It loads the sibling modules (`execute.py` and whatever that imports) as a
private package straight from this directory, so it never imports `toolcrib`
(whose ``__init__`` pulls in the registry, pydantic and sqlite-utils).

Start-up (`main`): the standard library, RestrictedPython and this
directory's modules are imported; then the zygote enters a jail of its own
(`jail.ZygoteJail`: as root a user namespace on a machine-wide uid block,
`uids.py`; network and UTS namespaces; capabilities dropped; no_new_privs;
read-only Landlock over the interpreter's files and the lock's site;
seccomp) and only then imports a lock's packages (`--site=`, `--preload=`):
nothing a tool brings runs before that jail. See docs/sandbox-restricted.md.

Processes and channels (all framing is ours; only JSON and raw bytes cross):

- The zygote keeps ``<spares>`` children forked ahead of demand. Each spare
  locks itself down (`_lock_down`), warms up on a tiny built-in job (unless
  calls come back to back: `_Zygote._fork_spare`), enters
  the jail (`jail.py`: Landlock, then the seccomp allowlist; from then on it
  can open nothing and make no socket, process or thread), and then
  waits on the shared *control* socket (AF_UNIX SOCK_SEQPACKET): the kernel
  hands each host message to exactly one waiting spare. A spare takes one
  call and exits; it never sees a second one.
- A host message is a small JSON *header* (limits, policy flag) carrying two
  descriptors by SCM_RIGHTS: the *call* socket (host <-> that child: ``u32
  length + job JSON`` in, the reply JSON out, EOF when done) and the *status*
  socket (zygote -> host). The spare closes the control socket at once,
  passes the header and the status socket to the zygote over its private
  *link*, applies the job's limits, reads the job, runs it, writes the reply
  and exits.
- The zygote never sits on the call's fast path. It enforces the wall clock
  (SIGKILL to the child's process group), reaps the child, and writes a
  ``u32 length + trailer JSON`` (exit code or signal, who killed it and why,
  CPU seconds, peak RSS) on the status socket, which the host reads only when
  the reply alone does not settle the outcome. The host closing the status
  socket means "abandon this call": the zygote kills the child.
- The zygote's first message on the control socket is ``ready`` (facts about
  what the child lock-down and the jail achieve on this machine, from a probe
  child that tries an open and a socket inside the jail; every later child
  must achieve at least as much or exit before taking a call). When the host's end of
  the control socket closes, the host is gone: the spares see EOF and exit,
  the zygote kills every child and exits.

This module is also the host's source of the protocol constants; it imports
only the standard library.
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import json
import math
import os
import resource
import select
import signal
import socket
import struct
import sys
import time
import types
from collections.abc import Callable
from typing import Any

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

# Each child runs as its own unprivileged uid/gid (when the zygote is root),
# so two concurrent tools cannot signal or ptrace each other, and
# RLIMIT_NPROC (counted per uid) sees exactly one process. The zygote claims
# a block of CALL_UID_SLOTS uids machine-wide (`uids.py`, which owns these
# numbers; tests/sandbox/test_uids.py checks they agree) and maps its user
# namespace's 0..CALL_UID_SLOTS-1 onto it: itself 0, each child its slot.
CALL_UID_BASE: int = 2_000_000_000
CALL_UID_SLOTS: int = 4096

EXIT_SETUP_FAILED: int = 111  # the child could not lock itself down: it never ran tool code
HEADER_MAX: int = 4096  # largest control header
TRAILER_MAX: int = 4096  # largest trailer the host accepts
OUTPUT_SLACK: int = 4096  # bytes the host reads past the output cap before giving up on the call
NOFILE_LIMIT: int = 16  # descriptors a child may have open

RunJob = Callable[..., bytes]  # execute.run_job(job, *, restricted) -> reply bytes

# Inside the jail nothing can be read from disk, so a tool can import only
# what the zygote loaded before: everything the policy's facades need, plus
# these standard modules that `plain`-policy tools commonly use, chosen for
# costing the cold start almost nothing (most are loaded already). Heavier
# ones are left out, each measured: pprint (it pulls in dataclasses and
# inspect, 6 ms), cmath (2 ms), csv, difflib, base64, hashlib, urllib.parse;
# see docs/sandbox-restricted.md.
PLAIN_PRELOAD: tuple[str, ...] = (
    "array",
    "binascii",
    "calendar",
    "enum",
    "fcntl",
    "io",
    "numbers",
    "operator",
    "struct",
    "textwrap",
    "unicodedata",
)

_PKG = "_toolcrib_sandbox"
_LEN = struct.Struct(">I")
_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38
_PAGE = os.sysconf("SC_PAGE_SIZE")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


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
    # Descriptors 0-2 are replaced by the child's own (`_own_stdio`);
    # everything else the zygote holds (other calls' status sockets, pidfds,
    # the epoll fd) must not reach tool code.
    low = 3
    for fd in sorted(keep):
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, resource.getrlimit(resource.RLIMIT_NOFILE)[1])


def _own_stdio(devnull: str = os.devnull) -> str:
    """Give this child descriptors 0-2 of its own: new open file
    descriptions, shared with no other process.

    Inherited, they would be the zygote's own /dev/null descriptions, and
    their status flags (O_APPEND, O_NONBLOCK: F_SETFL is allowed) live on the
    description: one call would set them and a later call of another tool
    read them back. Normally a fresh /dev/null (the zygote may read and write
    it, Landlock or not). Where it cannot be opened (no Landlock: the
    zygote's root is an empty tmpfs, see jail.empty_root), fresh pipes: 0
    reads EOF (its writer is closed), 1 and 2 write into a pipe whose reader
    is closed (EPIPE; SIGPIPE is ignored). Returns which one."""
    try:
        fd = os.open(devnull, os.O_RDWR)
    except OSError:
        read, write = os.pipe()
        os.dup2(read, 0)
        os.close(read)
        os.close(write)
        read, write = os.pipe()
        os.close(read)
        os.dup2(write, 1)
        os.dup2(write, 2)
        os.close(write)
        return "pipes"
    for target in (0, 1, 2):
        if fd != target:
            os.dup2(fd, target)
    if fd > 2:
        os.close(fd)
    return "devnull"


# What a child adds to its uid slot: 0 when the zygote lives in its own user
# namespace (in-namespace ids are the slots), the block's first host uid when
# it could not make one and stayed root.
_uid_base: int = 0

# The address-space size a child measures itself against (`_vm_bytes`).
_VM_PROBE_LIMIT = 1 << 44  # 16 TiB: far more than any process maps, far less than the 128 TiB of user space
_MAP_FAILED = ctypes.c_void_p(-1).value
_MAP_FLAGS = 0x02 | 0x20 | 0x4000  # MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE


def _fits(size: int) -> bool:
    addr = _libc.mmap(None, size, 0, _MAP_FLAGS, -1, 0)  # PROT_NONE: nothing is ever touched
    if addr is None or addr == _MAP_FAILED:
        return False
    _libc.munmap(addr, size)
    return True


# Pages the zygote itself maps (its own `_vm_bytes`, measured once before it
# forks any spare): a child maps about as much, so its search starts there.
_vm_hint_pages: int | None = None
_GALLOP_PAGES = 64


def _bracket(top: int) -> tuple[int, int]:
    """(pages that map, pages that do not) around the answer, in pages: the
    whole range without a hint; with one, found by doubling steps from the
    zygote's own size, a dozen probes instead of the whole range's 32."""
    if _vm_hint_pages is None or not 0 < top - _vm_hint_pages < top:
        return 0, top + 1
    step = _GALLOP_PAGES
    lower = upper = top - _vm_hint_pages
    if _fits(lower * _PAGE):
        while True:
            upper = lower + step
            if upper > top:
                return lower, top + 1
            if not _fits(upper * _PAGE):
                return lower, upper
            lower, step = upper, step * 2
    while True:
        lower = upper - step
        if lower <= 0:
            return 0, upper
        if _fits(lower * _PAGE):
            return lower, upper
        upper, step = lower, step * 2


def _vm_bytes() -> int:
    """The address space this process maps, with no file to read (a child
    of the jailed zygote can open nothing, not even /proc): with RLIMIT_AS
    set to a known L for a moment, the largest anonymous PROT_NONE mapping
    the kernel still grants is L minus what is mapped (the kernel's own
    RLIMIT_AS check). A binary search of mmap/munmap pairs, a few
    microseconds each (some 32 over the whole range, about half that from
    the zygote's size, `_bracket`), done by a spare while it waits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _VM_PROBE_LIMIT if hard == resource.RLIM_INFINITY else min(_VM_PROBE_LIMIT, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        fits, misses = _bracket(limit // _PAGE)  # in pages: `fits` maps, `misses` does not
        while misses - fits > 1:
            middle = (fits + misses) // 2
            if _fits(middle * _PAGE):
                fits = middle
            else:
                misses = middle
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    return limit - fits * _PAGE


def _lock_down(keep: tuple[int, ...], zygote_pid: int, slot: int) -> dict[str, Any]:
    """Everything a fresh child does to itself before it may receive a job,
    in order. The limits that depend on the job come later (`_apply_limits`).

    Returns what was achieved (the start-up probe reports it to the host).
    Raises _SetupError (or OSError) if a step that must succeed fails.
    """
    # Signal dispositions come from the zygote, set once in `main`.

    # Own session and process group: the zygote kills the whole group, and no
    # terminal signal meant for the host reaches the tool.
    os.setsid()

    _close_fds_except(keep)
    stdio = _own_stdio()

    uid_switched = False
    if os.geteuid() == 0:
        # In the zygote's user namespace `slot` is this child's own id; the
        # host sees block base + slot, which no other live call has.
        ident = _uid_base + slot
        os.setgroups([])
        os.setresgid(ident, ident, ident)
        os.setresuid(ident, ident, ident)
        if 0 in os.getresuid() or 0 in os.getresgid():
            raise _SetupError("could not leave root")
        uid_switched = True

    # Die with the zygote (it is single-threaded, so the "parent thread exits"
    # caveat of PDEATHSIG does not apply). This must follow the uid switch:
    # any change of credentials clears the setting. Re-check the parent
    # afterwards: it may already have died before the prctl took effect.
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != zygote_pid:
        raise _SetupError("zygote exited during set-up")

    # No set-uid binary or file capability can give privileges back.
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)

    _set_limit(resource.RLIMIT_CORE, 0)
    _set_limit(resource.RLIMIT_NOFILE, NOFILE_LIMIT)
    # Zero other processes or threads for this (non-root) uid: fork, clone
    # and thread creation all fail with EAGAIN.
    _set_limit(resource.RLIMIT_NPROC, 0)

    return {
        "uid": os.getuid(),
        "gid": os.getgid(),
        "uid_switched": uid_switched,
        "own_group": os.getpgid(0) == os.getpid(),
        "no_new_privs": True,
        "stdio": stdio,
    }


def _apply_limits(header: dict[str, Any], vm_base: int) -> None:
    """The job's own limits, set once it is known (only ever lowered).
    ``vm_base``: the address space mapped when the child entered the jail
    (read then: afterwards it cannot open /proc)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # RLIMIT_CPU counts whole seconds over the whole life of the process,
    # warm-up included (some milliseconds): the tool gets `cpu` seconds on top
    # of that, rounded to the next whole second unless that second would only
    # be the warm-up's sliver (then the tool gets up to 50 ms less).
    spent = usage.ru_utime + usage.ru_stime
    _set_limit(resource.RLIMIT_CPU, max(1, math.ceil(spent + header["cpu"] - 0.05)))
    _set_limit(resource.RLIMIT_FSIZE, header["disk"] * 1024 * 1024)
    # The forked interpreter already maps some tens of MiB; the tool's
    # allowance comes on top of what is mapped now.
    _set_limit(resource.RLIMIT_AS, vm_base + header["memory"] * 1024 * 1024)


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


def _receive(sock: socket.socket, size: int) -> tuple[bytes, list[int]]:
    """One SEQPACKET message and the descriptors it carries."""
    data, ancdata, _flags, _addr = sock.recvmsg(size, socket.CMSG_SPACE(4 * 4))
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds.extend(struct.unpack(f"{usable // 4}i", payload[:usable]))
    return data, fds


def _parse_header(data: bytes) -> dict[str, Any]:
    raw = json.loads(data)
    header = {
        "cpu": float(raw["cpu"]),
        "wall": float(raw["wall"]),
        "memory": int(raw["memory"]),
        "disk": int(raw["disk"]),
        "output": int(raw["output"]),
        "restricted": bool(raw["restricted"]),
    }
    if not (
        header["cpu"] > 0
        and header["wall"] > 0
        and header["memory"] > 0
        and header["disk"] >= 0
        and header["output"] > 0
    ):
        raise ValueError("limits out of range")
    return header


# A tiny job each spare runs before it waits for a real one: the compiler,
# the policy and the JSON encoder touch their pages here, so most
# copy-on-write faults are paid while the spare waits, not during a call.
_WARM_JOB = {
    "source": "def warm(x):\n    return [x, {'k': x * 2}]\n",
    "entrypoint": "warm",
    "mode": "args",
    "args": {"x": 1},
    "snippet": None,
    "limits": {"cpu": 1, "wall": 1, "memory": 64, "output": 4, "pids": 1, "disk": 0},
    "policy": "restricted",
}


# Runs of the warm-up job in the zygote before it forks (`main`).
_SPECIALISING_RUNS = 10


class _NotLoaded:
    """The last import finder in a jailed child: a module that was not
    loaded before the jail closed cannot be read now; say so plainly."""

    @staticmethod
    def find_spec(name: str, path: Any = None, target: Any = None) -> None:
        raise ModuleNotFoundError(
            f"module {name!r} is not available in the sandbox (only modules loaded before the jail "
            "closed can be imported)",
            name=name,
        )


def _with_code(job: dict[str, Any]) -> dict[str, Any]:
    """``job`` with its code compiled as the host sends it (`precompiled`)."""
    execute = sys.modules[_PKG + ".execute"]
    precompiled = sys.modules[_PKG + ".precompiled"]
    parts = execute.compile_parts(job, True)
    return {**job, precompiled.FIELD: precompiled.entry(parts)} if parts else job


def _warm_fork_hooks() -> bool:
    """Run here, in the zygote, the standard library's after-fork hooks that
    every child runs inside `os.fork` (`threading` reinitialises its locks,
    `random` reseeds its shared generator), `_SPECIALISING_RUNS` times.

    The zygote never forks itself, so it never ran them, and each child ran
    them for the first time: writing to their code objects as CPython 3.11
    warms and specialises them, and so copying those pages. Run here first,
    every child inherits them warmed: some 40 fewer page faults and 0.1 ms
    less CPU per call (bench/profile_call.py). The children still run them
    (each child reseeds `random` itself, as before). Both hooks assume the
    process has one thread, as a child just forked has; the zygote has one,
    and if it ever had more this does nothing. Returns whether it ran."""
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() != 1:
        return False
    found = (getattr(threading, "_after_fork", None), getattr(sys.modules.get("random"), "seed", None))
    hooks: list[Callable[[], Any]] = [hook for hook in found if callable(hook)]
    for _ in range(_SPECIALISING_RUNS):
        for hook in hooks:
            hook()
    return bool(hooks)


def _close_imports() -> None:
    # Built-in and frozen modules need no file; every path-based finder
    # would only meet EPERM.
    sys.meta_path[:] = [f for f in sys.meta_path if getattr(f, "__name__", "") in ("BuiltinImporter", "FrozenImporter")]
    sys.meta_path.append(_NotLoaded)
    sys.path_importer_cache.clear()


def _spare_main(
    control_fd: int, link_fd: int, zygote_pid: int, slot: int, run_job: RunJob, jail: Any, warm: bool = True
) -> None:
    """A forked spare: lock down, warm up (``warm``), enter the jail, take
    one call, run it, reply, exit. Never returns."""
    try:
        _lock_down((control_fd, link_fd), zygote_pid, slot)
        if warm:
            run_job(_WARM_JOB, restricted=True)
        vm_base = _vm_bytes()
        # From here on the child can open nothing and make no new socket,
        # process or thread: it only has the descriptors it holds. All of
        # this happens while the spare waits, off the call's path.
        jail.enter()
        # Imports were closed by the zygote itself before it forked any
        # spare (`main`): nothing to do here per call.
        control = socket.socket(fileno=control_fd)
        data, fds = _receive(control, HEADER_MAX)
        control.close()
        if not data and not fds:
            os._exit(0)  # the host is gone
        link = socket.socket(fileno=link_fd)
        if len(fds) != 2:
            raise _SetupError("a control message without its two sockets")
        call = socket.socket(fileno=fds[0])
        header = _parse_header(data)
        # The zygote takes over the status socket; it starts the wall clock
        # when this message arrives.
        link.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fds[1]))])
        os.close(fds[1])
        link.close()
        _apply_limits(header, vm_base)
        call.settimeout(header["wall"])
        (size,) = _LEN.unpack(_recv_exact(call, _LEN.size))
        job = json.loads(_recv_exact(call, size))
        call.settimeout(None)
    except BaseException:  # noqa: BLE001 - any set-up failure: never run the tool
        os._exit(EXIT_SETUP_FAILED)
    code = 0
    try:
        call.sendall(run_job(job, restricted=header["restricted"]))
        call.close()
    except BaseException:  # noqa: BLE001 - the host gave up on the call
        code = 1
    os._exit(code)


# --------------------------------------------------------------------------- zygote


def _own_slots(index: int, count: int) -> list[int]:
    """The uid slots zygote ``index`` (0-based) of ``count`` hands its
    children, the lowest last (`list.pop` takes it first)."""
    return [s for s in range(CALL_UID_SLOTS - 1, 0, -1) if s % count == (index + 1) % count]


class _Child:
    """A forked child: a spare until it takes a call."""

    __slots__ = ("pid", "pidfd", "link", "slot", "status", "deadline", "killed")

    def __init__(self, pid: int, pidfd: int, link: socket.socket, slot: int) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self.link: socket.socket | None = link
        self.slot = slot
        self.status: socket.socket | None = None  # the call's status socket, once taken
        self.deadline = math.inf
        self.killed: str | None = None


def _kill(child: _Child, reason: str) -> None:
    # Only the zygote kills its children, and only before it has reaped them:
    # until then the pid cannot be reused, so this never hits a stranger.
    if child.killed is None:
        child.killed = reason
    for kill in (os.killpg, os.kill):
        try:
            kill(child.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


# A spare forked within this many seconds of the last call taken skips the
# warm-up (`_Zygote._fork_spare`).
_BACK_TO_BACK = 0.05
# Seconds without an event before the zygote refills its spares (`serve`).
_REFILL_QUIET = 0.002

_IN = select.EPOLLIN
_GONE = select.EPOLLHUP | select.EPOLLRDHUP | select.EPOLLERR


class _Zygote:
    def __init__(
        self, control: socket.socket, run_job: RunJob, jail: Any, spares: int, slots: tuple[int, int] = (0, 1)
    ) -> None:
        self.control = control
        self.run_job = run_job
        self.jail = jail
        self.target_spares = max(1, spares)
        # When a spare last took a call (`_taken`): see `_fork_spare`.
        self.last_taken = -math.inf
        self.pid = os.getpid()
        self.poll = select.epoll()
        self.handlers: dict[int, tuple[str, _Child | None]] = {}
        self.children: dict[int, _Child] = {}
        self.spares: set[_Child] = set()
        # Slot 0 is the zygote's own id; a zygote never runs more children
        # than the rest of its block (past that a call waits in the control
        # socket's queue for a slot to come free). Zygote i of a backend's n
        # (`--slots=i/n`) takes only the slots s with s % n == i (i: 1..n,
        # n taking s % n == 0): the children of one backend's zygotes never
        # share an id, not even inside their user namespaces (on the host
        # each zygote's block differs anyway).
        self.free_slots = _own_slots(*slots)
        # Only hang-up: the messages themselves are for the spares.
        self._watch(control.fileno(), _GONE, "host", None)

    def _watch(self, fd: int, mask: int, kind: str, child: _Child | None) -> None:
        self.poll.register(fd, mask)
        self.handlers[fd] = (kind, child)

    def _unwatch(self, fd: int) -> None:
        self.poll.unregister(fd)
        del self.handlers[fd]

    def serve(self) -> None:
        while True:
            # Refill the pool when nothing else has come for a moment
            # (`_REFILL_QUIET`), so a fork never delays a reap or a kill;
            # but with no spare left at all a call may be queued on the
            # control socket, so fork at once. Either way the pool is
            # refilled in one burst: every fork write-protects the zygote's
            # pages again, and each page its loop then writes (taking calls,
            # reaping children) is copied once per fork. Under calls back to
            # back the spares run out before a quiet moment comes, and the
            # loop's pages are copied once per burst instead of once a call.
            refill = len(self.spares) < self.target_spares and bool(self.free_slots)
            if refill and not self.spares:
                self._refill()
                continue
            events = self.poll.poll(self._next_timeout(_REFILL_QUIET if refill else None))
            # Handling one event can close a descriptor and reuse its number
            # for a new one; an event is acted on only if its registration
            # is still the one that was current when the batch arrived.
            batch = [(fd, self.handlers.get(fd)) for fd, _mask in events]
            for fd, entry in batch:
                if entry is None or self.handlers.get(fd) is not entry:
                    continue
                kind, child = entry
                if kind == "host":
                    return
                assert child is not None, kind  # only the host's registration has no child
                if kind == "link":
                    self._taken(child)
                elif kind == "status":
                    _kill(child, "abandoned")  # the host hung up on this call
                    self._drop_status(child)
                elif kind == "exit":
                    self._reap(child)
            now = time.monotonic()
            for child in list(self.children.values()):
                if child.killed is None and child.deadline <= now:
                    _kill(child, "wall")
            if refill and not events:
                self._refill()

    def _refill(self) -> None:
        while len(self.spares) < self.target_spares and self.free_slots:
            self._fork_spare()

    def _next_timeout(self, at_most: float | None = None) -> float:
        deadline = min((c.deadline for c in self.children.values() if c.killed is None), default=math.inf)
        wait = math.inf if deadline == math.inf else max(0.0, deadline - time.monotonic())
        if at_most is not None:
            wait = min(wait, at_most)
        return -1 if wait == math.inf else wait

    def shutdown(self) -> None:
        for child in self.children.values():
            _kill(child, "shutdown")

    def _fork_spare(self) -> None:
        slot = self.free_slots.pop()
        link, link_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # The warm-up pays a call's copy-on-write faults while a spare
        # waits, for an idle zygote's next call. Under calls back to back (a
        # verification's cases) no spare waits: there it is only CPU spent
        # ahead of the call that the call would have spent anyway, and more
        # (its own compile and run), so such spares skip it.
        warm = time.monotonic() - self.last_taken > _BACK_TO_BACK
        pid = os.fork()
        if pid == 0:
            _spare_main(self.control.fileno(), link_child.fileno(), self.pid, slot, self.run_job, self.jail, warm)
        link_child.close()
        child = _Child(pid, os.pidfd_open(pid), link, slot)
        self.children[pid] = child
        self.spares.add(child)
        self._watch(link.fileno(), _IN, "link", child)
        self._watch(child.pidfd, _IN, "exit", child)

    def _taken(self, child: _Child) -> None:
        """A spare took a call: keep its status socket, start its wall clock."""
        link, child.link = child.link, None
        assert link is not None
        self.last_taken = time.monotonic()
        self._unwatch(link.fileno())
        self.spares.discard(child)
        try:
            data, fds = _receive(link, HEADER_MAX)
        except OSError:
            data, fds = b"", []
        link.close()
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            return  # the spare died before taking a call: its exit is reaped as usual
        child.status = socket.socket(fileno=fds[0])
        try:
            child.deadline = time.monotonic() + _parse_header(data)["wall"]
        except (ValueError, KeyError, TypeError):
            _kill(child, "protocol")
        self._watch(child.status.fileno(), _IN | _GONE, "status", child)

    def _drop_status(self, child: _Child) -> socket.socket | None:
        status, child.status = child.status, None
        if status is not None:
            self._unwatch(status.fileno())
        return status

    def _reap(self, child: _Child) -> None:
        self._unwatch(child.pidfd)
        os.close(child.pidfd)
        _pid, code, usage = os.wait4(child.pid, 0)
        del self.children[child.pid]
        self.free_slots.append(child.slot)
        self.spares.discard(child)
        if child.link is not None:
            self._unwatch(child.link.fileno())
            child.link.close()
            child.link = None
        status = self._drop_status(child)
        if status is None:
            return
        trailer = {
            "pid": child.pid,
            "exit": os.WEXITSTATUS(code) if os.WIFEXITED(code) else None,
            "signal": os.WTERMSIG(code) if os.WIFSIGNALED(code) else None,
            "killed": child.killed,
            "cpu": round(usage.ru_utime + usage.ru_stime, 4),
            "maxrss_kib": usage.ru_maxrss,
        }
        head = json.dumps(trailer).encode()
        try:
            status.setblocking(False)  # a few hundred bytes always fit; never wait on the host
            status.send(_LEN.pack(len(head)) + head)
        except OSError:
            pass
        finally:
            status.close()


# --------------------------------------------------------------------------- start-up


def _load_run_job() -> tuple[RunJob, Any]:
    """Import this directory's `execute` and `jail` as a private package (not
    `toolcrib`); returns ``run_job`` and the `jail` module."""
    here = os.path.dirname(ZYGOTE_PATH)
    package = types.ModuleType(_PKG)
    package.__path__ = [here]
    package.__package__ = _PKG
    sys.modules[_PKG] = package
    execute = importlib.import_module(_PKG + ".execute")
    warm = getattr(execute, "warm", None)
    if warm is not None:
        warm()
    run_job: RunJob = execute.run_job
    for name in PLAIN_PRELOAD:
        importlib.import_module(name)
    return run_job, importlib.import_module(_PKG + ".jail")


def _jail_holds() -> dict[str, bool]:
    """Inside the probe, after entering the jail: try what it must refuse."""
    checks: dict[str, bool] = {}
    try:
        os.close(os.open("/", os.O_RDONLY))
        checks["no_open"] = False
    except OSError:
        checks["no_open"] = True
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
        checks["no_socket"] = False
    except OSError:
        checks["no_socket"] = True
    return checks


def _probe(jail: Any, slot: int = 1) -> dict[str, Any]:
    """Fork one child through the real lock-down and jail and report what it
    achieved (and that the jail refuses what it must)."""
    reply_r, reply_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = EXIT_SETUP_FAILED
        try:
            # The zygote's first slot: the probe has exited before any spare is forked.
            facts = _lock_down((reply_w,), os.getppid(), slot)
            vm_base = _vm_bytes()
            facts["baseline_vm_mib"] = round(vm_base / 2**20, 1)
            facts["jail"] = jail.enter()
            facts["jail_errors"] = dict(jail.errors)
            facts["jail_checks"] = _jail_holds()
            _apply_limits({"cpu": 1, "wall": 1, "memory": 64, "disk": 0, "output": 1, "restricted": True}, vm_base)
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


def _parse_args(argv: list[str]) -> tuple[int, list[str], str | None, list[str], tuple[int, int]]:
    """(spares, packages to preload, the lock's site directory, library
    paths such as RestrictedPython's, (index, count) of `--slots=i/n`)."""
    spares = int(argv[2]) if len(argv) > 2 else 2
    preload: list[str] = []
    site: str | None = None
    paths: list[str] = []
    slots = (0, 1)
    for arg in argv[3:]:
        if arg.startswith("--preload="):
            preload.extend(name for name in arg.partition("=")[2].split(",") if name)
        elif arg.startswith("--site="):
            site = arg.partition("=")[2]
        elif arg.startswith("--slots="):
            index, _, count = arg.partition("=")[2].partition("/")
            slots = (int(index), int(count))
            if not 0 <= slots[0] < slots[1] <= 64:
                raise ValueError(f"bad --slots: {arg}")
        else:
            paths.append(arg)
    return spares, preload, site, paths, slots


def _mapped_files() -> list[str]:
    """Files this process has mapped (the interpreter, libpython, the
    extension modules and libraries loaded so far): the zygote's Landlock
    lets it read them again wherever they live."""
    found: set[str] = set()
    with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            path = fields[5].strip() if len(fields) == 6 else ""
            if path.startswith("/") and not path.endswith(" (deleted)"):
                found.add(path)
    return sorted(found)


def _through_fds(reachable: dict[str, str]) -> None:
    """Point every import path (sys.path and the packages already loaded)
    at ``/proc/self/fd/<n>`` of its directory's descriptor: once the zygote
    runs as its unprivileged uid it may not walk a parent such as /root,
    but the descriptor it opened before still leads in. Landlock judges the
    directory itself, not the path used to reach it."""
    prefixes = sorted(reachable, key=len, reverse=True)

    def under(path: str) -> str | None:
        for prefix in prefixes:
            if path == prefix or path.startswith(prefix + "/"):
                return reachable[prefix] + path[len(prefix) :]
        return None

    def through(path: str) -> str:
        # Most paths are real already; realpath (a stat per component)
        # only for the rest (a venv's lib64 -> lib).
        return under(path) or under(os.path.realpath(path)) or path

    sys.path[:] = [through(p) for p in sys.path]
    for module in list(sys.modules.values()):
        search = getattr(module, "__path__", None)
        if isinstance(search, list):
            search[:] = [through(p) if isinstance(p, str) else p for p in search]
    sys.path_importer_cache.clear()


# What the zygote keeps once it has become its block's in-namespace root:
# enough to fork children, switch each to its slot's uid and kill them.
_KEPT_CAPABILITIES = ("CAP_KILL", "CAP_SETGID", "CAP_SETUID")


def _isolate(jail_module: Any) -> tuple[dict[str, Any], Any]:
    """Namespaces and uid for the zygote (before anything it did not bring
    is imported): as root, a machine-wide uid block and a user namespace
    mapped onto it; as an ordinary user, a user namespace that maps only
    that user. Returns (facts, the claimed block or None)."""
    global _uid_base
    if os.geteuid() != 0:
        return jail_module.new_network_namespace(), None
    uids = importlib.import_module(_PKG + ".uids")
    try:
        block = uids.claim()
    except (OSError, uids.UidsExhausted) as exc:
        raise RuntimeError(f"no machine-wide uid block for the calls: {exc}") from None
    facts = jail_module.namespaces_as_block(block.base, CALL_UID_SLOTS)
    if not facts.get("netns"):
        # No user namespace here (a container that forbids them): today's
        # way, root in a network namespace, children on the block's host uids.
        _uid_base = block.base
        error = facts.get("netns_error")
        facts = jail_module.new_network_namespace()
        facts["userns_error"] = error
    facts["uid_block"] = block.base
    return facts, block


def _enter_zygote_jail(jail_module: Any, stage: Any, netns: dict[str, Any], in_userns: bool) -> dict[str, Any]:
    """Capabilities down, no_new_privs, then the zygote stage's Landlock and
    seccomp; returns facts. The children's own jail comes on top of it."""
    if netns.get("netns_via", "").startswith("user namespace"):
        # Granted by the new user namespace and used already (hostname,
        # empty root); as its root the zygote keeps what its children need.
        keep = tuple(getattr(jail_module, name) for name in _KEPT_CAPABILITIES) if in_userns else ()
        jail_module.drop_capabilities(keep)
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)
    entered = stage.enter()
    # Nothing the zygote imports from now on may leave a file behind.
    sys.dont_write_bytecode = True
    return {"zygote_jail": entered, "zygote_jail_errors": dict(stage.errors), **stage.facts()}


class _PackagesRefused(Exception):
    """A lock's packages are not imported: the zygote's jail is incomplete,
    or their import left something every call of the lock would share."""


def _open_self_views() -> tuple[int, int]:
    """Descriptors of this process's /proc/self/maps and status, opened
    before the jail (afterwards the zygote can open nothing under /proc):
    read again once a lock's packages are imported (`_check_nothing_shared`)."""
    return os.open("/proc/self/maps", os.O_RDONLY), os.open("/proc/self/status", os.O_RDONLY)


def _read_view(fd: int) -> str:
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 1 << 16, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def _check_nothing_shared(views: tuple[int, int]) -> None:
    """Every child of a lock's zygote is forked from its memory. A package
    that left a writable *shared* mapping in it (an anonymous MAP_SHARED, a
    memfd) would give every call of the lock the same page to write and
    read: a channel between calls that no jail layer sees. A thread it left
    running could make one later. Either way the lock's packages are
    refused. Raises _PackagesRefused."""
    maps, status = (_read_view(fd) for fd in views)
    for fd in views:
        os.close(fd)
    threads = next((line.split()[1] for line in status.splitlines() if line.startswith("Threads:")), "1")
    if threads != "1":
        raise _PackagesRefused(
            f"the lock's packages left {threads} threads running in the zygote after import "
            "(a thread could share memory between calls)"
        )
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) >= 2 and "w" in fields[1] and fields[1].endswith("s"):
            where = fields[5].strip() if len(fields) == 6 else "anonymous"
            raise _PackagesRefused(
                f"the lock's packages left a writable shared mapping in the zygote ({where[:80]!r}): "
                "every call of the lock would share it"
            )


def _import_packages(site: str, names: list[str], stage: Any, facts: dict[str, Any]) -> dict[str, Any]:
    """The lock's packages, imported inside the zygote's jail only."""
    missing = [layer for layer in stage.LAYERS if layer not in facts["zygote_jail"]]
    if os.geteuid() == 0 and _uid_base:
        missing.append("user namespace")
    if missing:
        raise _PackagesRefused(
            f"the lock's packages are imported only inside the zygote's jail, and part of it is missing here "
            f"({', '.join(missing)}: {facts['zygote_jail_errors'] or facts.get('userns_error')})"
        )
    sys.path.append(stage.reachable.get(os.path.realpath(site), site))
    if not names:
        return {}
    preloaded: dict[str, Any] = importlib.import_module(_PKG + ".preload").preload(names, submodules=True)
    return preloaded


def main(argv: list[str]) -> int:
    global _vm_hint_pages
    # Its work is done when the process starts (restricted.ZYGOTE_ENV): no
    # child, so no tool, sees it.
    os.environ.pop("LD_BIND_NOW", None)
    # Start-up makes hardly any garbage; the collector's passes while every
    # module is imported cost the cold start milliseconds for nothing.
    gc.disable()
    control = socket.socket(fileno=int(argv[1]))
    # Terminal signals go to the host; the zygote stops only when the host's
    # end of the control socket closes. Children inherit these dispositions.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGXCPU, signal.SIG_DFL)
    # Python ignores SIGXFSZ, so a write past RLIMIT_FSIZE would only raise
    # EFBIG, which tool code could swallow. The default action kills, and the
    # disk limit shows in the exit signal. (The zygote itself writes no files.)
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    try:
        # Started with -I -S: sys.path is the interpreter's standard library
        # alone; the host names where RestrictedPython lives, and, for a
        # lock's zygote, its site directory (`--site=`) and packages
        # (`--preload=a,b`). Nothing but the standard library,
        # RestrictedPython and this directory is imported before the jail.
        spares, names, site, paths, slots = _parse_args(argv)
        stdlib = [p for p in sys.path if os.path.isdir(p)]
        sys.path.extend(paths)
        run_job, jail_module = _load_run_job()
        # Opened now: without Landlock the root is about to become empty.
        devnull = os.open(os.devnull, os.O_WRONLY)
        readable = (
            *stdlib,
            *paths,
            os.path.dirname(ZYGOTE_PATH),
            *([site] if site else []),
            *jail_module.LIBRARY_DIRS,
            *_mapped_files(),
        )
        stage = jail_module.ZygoteJail(readable)
        # Before the namespaces and the empty root: /proc is not there afterwards.
        views = _open_self_views() if site else None
        _through_fds(stage.reachable)
        jail = jail_module.Jail()
        netns, _block = _isolate(jail_module)  # the block stays claimed while the zygote lives
        in_userns = os.geteuid() == 0 and _uid_base == 0
        # Read before the filter refuses sockets (a netlink socket): what a
        # child will see.
        interfaces = sorted(name for _i, name in socket.if_nameindex())
        root: dict[str, Any] = {}
        if jail.abi <= 0:
            # No Landlock: an empty root stands in for its filesystem rights
            # (a lock's zygote refuses to import its packages without it).
            root = jail_module.empty_root()
        facts = _enter_zygote_jail(jail_module, stage, netns, in_userns)
        preloaded = _import_packages(site, names, stage, facts) if site else {}
        if views is not None:
            _check_nothing_shared(views)
        facts.update(_probe(jail, _own_slots(*slots)[-1]))
        if in_userns and _block is not None and isinstance(facts.get("uid"), int):
            # The probe saw its in-namespace id; the host sees block + slot.
            facts["uid_in_namespace"] = facts["uid"]
            facts["uid"] = _block.base + facts["uid"]
        facts["interfaces"] = interfaces
        facts.update(preloaded)
        facts.update(netns)
        facts.update(root)
        facts.update(jail.facts())
        # Every child must achieve at least what the probe did.
        jail.require = frozenset(facts.get("jail", ()))
        if "error" in facts or facts.get("status") != 0:
            raise RuntimeError(f"child lock-down failed: {facts.get('error', facts)}")
        if not hasattr(os, "pidfd_open"):
            raise RuntimeError("os.pidfd_open is missing (needs Linux 5.3+, Python 3.9+)")
    except BaseException as exc:  # noqa: BLE001 - the host reports it as "unavailable"
        # A package's own failure (preload.PreloadError) already says what
        # and where; anything else is named by its type.
        own = type(exc).__name__ in ("PreloadError", "_PackagesRefused")
        why = str(exc) if own else f"{type(exc).__name__}: {exc}"
        control.sendall(json.dumps({"ready": False, "error": why[:2000]}).encode())
        return 1
    # The bytecode the host may compile a tool's code for (`precompiled`).
    magic = importlib.import_module("importlib._bootstrap_external").MAGIC_NUMBER.hex()
    ready = {"ready": True, "pid": os.getpid(), "python": sys.version.split()[0], "bytecode_magic": magic, **facts}
    # CPython 3.11 specialises a function's bytecode after some calls (8),
    # writing to its code object on each call until then. Done here, every
    # child inherits the specialised code of a call's path (compile, run,
    # reply) instead of writing, and so copying, those pages itself: some
    # 75 fewer page faults a call, for 1.5 ms of the zygote's start.
    # The same for the path of a job that brings the host's compiled code
    # (`precompiled`): unmarshalling instead of compiling.
    warm_with_code = _with_code(_WARM_JOB)
    for _ in range(_SPECIALISING_RUNS):
        run_job(_WARM_JOB, restricted=True)
        run_job(warm_with_code, restricted=True)
    _warm_fork_hooks()
    # Closed once here, for every child (which can open nothing anyway once
    # jailed): a module not loaded by now is not loaded in a call.
    _close_imports()
    _vm_hint_pages = _vm_bytes() // _PAGE
    # Everything imported so far lives as long as the zygote: keep the
    # collector from touching it in each child (fewer copied pages per fork).
    # No collection first: it cost 5-8 ms of the cold start to free the
    # little garbage start-up makes.
    gc.freeze()
    gc.enable()
    frozen = getattr(sys.modules[_PKG + ".execute"], "heap_frozen_for_good", None)
    if frozen is not None:
        frozen()
    control.sendall(json.dumps(ready).encode())
    # Nothing more to say on stderr: the host stops reading it after `ready`.
    os.dup2(devnull, 2)
    os.close(devnull)
    zygote = _Zygote(control, run_job, jail, spares, slots)
    try:
        zygote.serve()
    finally:
        zygote.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
