"""Covert channels between calls that need no file, socket or signal, and
the scenarios that try them (`test_channels.py` runs them as root and, via
`channel_driver.py`, as an ordinary user; the futex one also between two
Docker containers).

- **futex on shared text**: a non-private futex on a file-backed mapping is
  keyed by the file's inode and offset, so every process that maps libc
  meets every other one on the same word of libc's text (read-only, yet a
  valid futex word). One side waits, the other wakes: a bit per wake.
- **robust list at exit**: the kernel walks a dying process's robust futex
  list and wakes, *shared*, the word its ``list_op_pending`` names when that
  word is 0 (no write needed), so a call can wake a process outside without
  any futex call of its own.
- **descriptor flags**: ``O_APPEND``/``O_NONBLOCK`` live on the open file
  description, so a child whose 0-2 are the zygote's own descriptions leaves
  them for the next call to read back with ``F_GETFL``.

Every scenario runs its sender and receiver at the same time. Standard
library only (plus `toolcrib.sandbox` for the jobs), so the driver can load
it by path as another uid.
"""

from __future__ import annotations

import concurrent.futures
import errno
import os
import threading
import time
from typing import Any

# The tool-side helpers; the outside process (this one) runs the very same
# code, so both sides compute the same word of the same file.
FUTEX_COMMON = r"""
import ctypes, os, time

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_SYS_FUTEX = {"x86_64": 202, "aarch64": 98}[os.uname().machine]
_SYS_SET_ROBUST_LIST = {"x86_64": 273, "aarch64": 99}[os.uname().machine]
_WAIT, _WAKE = 0, 1  # no FUTEX_PRIVATE_FLAG (128): keyed by inode + offset


class _Timespec(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]


def _text_page():
    # A page of libc's text: read-only, mapped from the same file by every
    # process on the machine (or in the image).
    return ctypes.cast(_libc.syscall, ctypes.c_void_p).value & ~4095


def _zero_word():
    page = _text_page()
    data = ctypes.string_at(page, 4096)
    return page + next(i for i in range(0, 4096, 4) if data[i:i + 4] == bytes(4))


def _futex(addr, op, val, timeout=None):
    ctypes.set_errno(0)
    ts = None if timeout is None else ctypes.byref(_Timespec(int(timeout), int(timeout % 1 * 1e9)))
    rc = _libc.syscall(ctypes.c_long(_SYS_FUTEX), ctypes.c_void_p(addr), ctypes.c_int(op), ctypes.c_uint(val),
                       ts, None, ctypes.c_uint(0))
    return int(rc), ctypes.get_errno()


def _wait(addr, timeout):
    rc, err = _futex(addr, _WAIT, ctypes.c_uint32.from_address(addr).value, timeout)
    return {"woken": rc == 0, "errno": err}


def _wake_until(addr, seconds):
    end = time.monotonic() + seconds
    last = 0
    while time.monotonic() < end:
        rc, last = _futex(addr, _WAKE, 1)
        if rc > 0:
            return {"woke": rc, "errno": 0}
        if last:
            return {"woke": 0, "errno": last}
        time.sleep(0.005)
    return {"woke": 0, "errno": last}
"""

# Hang guards only: a refused call answers at once, a channel at the first
# overlap. The receiver waits longer than the sender tries.
_RECEIVE_SECONDS = 8
_SEND_SECONDS = 6

FUTEX_RECEIVER = (
    FUTEX_COMMON
    + f"""
def run():
    return _wait(_text_page(), {_RECEIVE_SECONDS})
"""
)

FUTEX_SENDER = (
    FUTEX_COMMON
    + f"""
def run():
    return _wake_until(_text_page(), {_SEND_SECONDS})
"""
)

# A robust list whose pending entry is a zero word of libc's text: at exit
# the kernel wakes that word, shared. Both ways in: registering a new head,
# and rewriting the head glibc registered for this thread at fork (found in
# the thread's own struct pthread: list.next pointing at itself, then
# futex_offset, then list_op_pending 0).
ROBUST_SENDER = (
    FUTEX_COMMON
    + r"""
def _own_head():
    _libc.pthread_self.restype = ctypes.c_void_p
    base = _libc.pthread_self()
    words = (ctypes.c_long * (2304 // 8)).from_address(base)
    for i in range(len(words) - 2):
        if words[i] == base + 8 * i and -4096 < words[i + 1] < 0 and words[i + 2] == 0:
            return base + 8 * i
    return None


def run():
    target = _zero_word()
    # malloc'd and never freed: the head must outlive the tool's namespace.
    _libc.malloc.restype = ctypes.c_void_p
    head = (ctypes.c_long * 3).from_address(_libc.malloc(24))
    head[0], head[1], head[2] = ctypes.addressof(head), 0, target
    ctypes.set_errno(0)
    rc = _libc.syscall(ctypes.c_long(_SYS_SET_ROBUST_LIST), ctypes.c_void_p(ctypes.addressof(head)),
                       ctypes.c_size_t(24))
    registered = ctypes.get_errno() if rc else 0
    own = _own_head()
    if own is not None:
        words = (ctypes.c_long * 3).from_address(own)
        words[2] = target - words[1]  # the kernel wakes list_op_pending + futex_offset
    return {"set_robust_list_errno": registered, "rewrote_own_head": own is not None, "pid": os.getpid()}
"""
)

_FLAGS = os.O_APPEND | os.O_NONBLOCK

STDIO_SETTER = f"""
import fcntl, time

def run():
    seen = []
    for fd in (0, 1, 2):
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | {_FLAGS})
        seen.append(fcntl.fcntl(fd, fcntl.F_GETFL))
    time.sleep(2)  # held while the receiver looks
    return seen
"""

STDIO_READER = f"""
import fcntl, time

def run():
    seen = set()
    end = time.monotonic() + 3
    while time.monotonic() < end:
        flags = [fcntl.fcntl(fd, fcntl.F_GETFL) for fd in (0, 1, 2)]
        seen.add(tuple(flags))
        if any(f & {_FLAGS} for f in flags):
            break
        time.sleep(0.01)
    return sorted(seen)
"""


def _job(source: str, wall: float = 15) -> Any:
    from toolcrib.sandbox import Job, Limits

    return Job(
        source=source, entrypoint="run", policy="plain", limits=Limits(cpu=wall, wall=wall, memory=256, output=64)
    )


def _outside() -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(compile(FUTEX_COMMON, "<futex-outside>", "exec"), namespace)  # our own constant
    return namespace


def _reply(result: Any) -> dict[str, Any]:
    return dict(result.to_json())


def futex_between_calls(backend: Any) -> dict[str, Any]:
    """Two concurrent calls: one waits on libc's text, one wakes it."""
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        receiver = pool.submit(backend.run, _job(FUTEX_RECEIVER))
        sender = pool.submit(backend.run, _job(FUTEX_SENDER))
        return {"receiver": _reply(receiver.result()), "sender": _reply(sender.result())}


def futex_outside_to_call(backend: Any) -> dict[str, Any]:
    """This process wakes libc's text while a call waits on it."""
    outside = _outside()
    page = outside["_text_page"]()
    woke = 0
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        receiver = pool.submit(backend.run, _job(FUTEX_RECEIVER))
        while not receiver.done():
            rc, _err = outside["_futex"](page, outside["_WAKE"], 1)
            woke += max(0, rc)
            time.sleep(0.005)
        return {"receiver": _reply(receiver.result()), "outside_woke": woke}


def _blocked_in_futex(tid: int) -> bool:
    try:
        with open(f"/proc/self/task/{tid}/syscall", encoding="ascii") as fh:
            return fh.read().split()[0] == str(outside_futex_number())
    except (OSError, IndexError):
        return False


def outside_futex_number() -> int:
    return {"x86_64": 202, "aarch64": 98}[os.uname().machine]


class _OutsideWaiter:
    """A thread of this process waiting (shared) on a word of libc's text
    until the test ends it; records whether anything else woke it first."""

    def __init__(self, word: str) -> None:
        self.ns = _outside()
        self.addr = int(self.ns[word]())
        self.done = threading.Event()
        self.woken_early: list[bool] = []
        self.tid = 0
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._wait, name="futex-outside", daemon=True)
        self._thread.start()
        self._started.wait(10)
        end = time.monotonic() + 10
        while not _blocked_in_futex(self.tid) and time.monotonic() < end:
            time.sleep(0.002)

    def _wait(self) -> None:
        self.tid = threading.get_native_id()
        self._started.set()
        while True:
            reply = self.ns["_wait"](self.addr, 30)
            if self.done.is_set():
                return
            if reply["woken"]:
                self.woken_early.append(True)
                return
            if reply["errno"] not in (errno.EAGAIN, errno.EINTR):
                return

    def finish(self) -> bool:
        """End the wait; True if something other than us woke it."""
        self.done.set()
        while self._thread.is_alive():
            self.ns["_futex"](self.addr, self.ns["_WAKE"], 1 << 30)
            self._thread.join(0.05)
        return bool(self.woken_early)


def futex_call_to_outside(backend: Any) -> dict[str, Any]:
    """A call wakes libc's text while this process waits on it."""
    waiter = _OutsideWaiter("_text_page")
    try:
        sender = _reply(backend.run(_job(FUTEX_SENDER)))
    finally:
        woken = waiter.finish()
    return {"sender": sender, "outside_woken": woken}


def _gone(pid: int, seconds: float = 30) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not os.path.exists(f"/proc/{pid}"):
            return True
        time.sleep(0.01)
    return False


def robust_list_call_to_outside(backend: Any) -> dict[str, Any]:
    """A call arranges a wake at its own exit (no futex call); this process
    waits on the word. Judged once the call's process is gone (the kernel
    walks the robust list before the process is reaped)."""
    waiter = _OutsideWaiter("_zero_word")
    try:
        sender = _reply(backend.run(_job(ROBUST_SENDER)))
        result = sender.get("result") or {}
        exited = _gone(int(result["pid"])) if isinstance(result, dict) and "pid" in result else False
    finally:
        woken = waiter.finish()
    return {"sender": sender, "exited": exited, "outside_woken": woken}


def stdio_flags(backend: Any) -> dict[str, Any]:
    """One call sets O_APPEND|O_NONBLOCK on 0-2 and holds while another
    looks; a third call, after both, looks again."""
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        setter = pool.submit(backend.run, _job(STDIO_SETTER))
        reader = pool.submit(backend.run, _job(STDIO_READER))
        replies = {"setter": _reply(setter.result()), "reader": _reply(reader.result())}
    replies["later"] = _reply(backend.run(_job(STDIO_READER)))
    return replies


# A thread joined with pthread_join, which waits on the thread's tid without
# the private flag: under the Docker profile it must still work.
THREAD_JOIN = r"""
import ctypes

def run():
    libc = ctypes.CDLL(None)
    work = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)(lambda _arg: libc.usleep(200000) and None)
    thread = ctypes.c_ulong()
    if libc.pthread_create(ctypes.byref(thread), None, work, None) != 0:
        return "no thread"
    return libc.pthread_join(thread, None)
"""


def thread_join(backend: Any) -> dict[str, Any]:
    return _reply(backend.run(_job(THREAD_JOIN)))


SCENARIOS = {
    "futex_between_calls": futex_between_calls,
    "futex_outside_to_call": futex_outside_to_call,
    "futex_call_to_outside": futex_call_to_outside,
    "robust_list_call_to_outside": robust_list_call_to_outside,
    "stdio_flags": stdio_flags,
}


# --------------------------------------------------------------------------- verdicts (None: the channel is shut)


def _ok(reply: dict[str, Any], who: str) -> str | None:
    if reply.get("status") != "ok":
        return f"the {who} call did not run normally: {reply}"
    return None


def _refused_wait(reply: dict[str, Any]) -> str | None:
    why = _ok(reply, "receiver")
    if why:
        return why
    result = reply["result"]
    if result["woken"]:
        return f"the receiver was woken through libc's text: {result}"
    # EPERM from the restricted filter; EAGAIN from the Docker profile (so
    # glibc's pthread_join, which waits shared, retries instead of aborting).
    if result["errno"] not in (errno.EPERM, errno.EAGAIN):
        return f"the receiver's shared futex wait was not refused (errno {result['errno']}): {result}"
    return None


def _refused_wake(reply: dict[str, Any]) -> str | None:
    why = _ok(reply, "sender")
    if why:
        return why
    result = reply["result"]
    # EPERM from the restricted filter; EINVAL from the Docker profile.
    if result["woke"] or result["errno"] not in (errno.EPERM, errno.EINVAL):
        return f"the sender's shared futex wake was not refused: {result}"
    return None


def verdict(name: str, report: dict[str, Any]) -> str | None:
    """Why the scenario's channel is open, or None."""
    if name == "futex_between_calls":
        return _refused_wait(report["receiver"]) or _refused_wake(report["sender"])
    if name == "futex_outside_to_call":
        return _refused_wait(report["receiver"])
    if name == "futex_call_to_outside":
        if report["outside_woken"]:
            return f"a call woke a process outside: {report}"
        return _refused_wake(report["sender"])
    if name == "robust_list_call_to_outside":
        why = _ok(report["sender"], "sender")
        if why:
            return why
        if not report["exited"]:
            return f"the sender's process did not exit: {report}"
        if report["outside_woken"]:
            return f"a call's exit woke a process outside through its robust list: {report}"
        if report["sender"]["result"]["set_robust_list_errno"] != errno.EPERM:
            return f"set_robust_list was not refused: {report}"
        return None
    if name == "stdio_flags":
        for who in ("setter", "reader", "later"):
            why = _ok(report[who], who)
            if why:
                return why
        if not all(flags & _FLAGS == _FLAGS for flags in report["setter"]["result"]):
            return f"the setter could not set its own flags (the test proves nothing): {report['setter']}"
        for who in ("reader", "later"):
            for flags in report[who]["result"]:
                if any(f & _FLAGS for f in flags):
                    return f"the {who} call saw the setter's descriptor flags: {report[who]['result']}"
        return None
    raise KeyError(name)
