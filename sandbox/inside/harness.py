"""In-container job runner for the Docker backend.

This file is copied into the sandbox image as ``tcbox/harness.py`` next to
``execute.py``, ``wire.py`` and their sibling policy modules; it imports only
the standard library and those siblings, never anything from the host's
toolcrib.

Protocol (one container, one call):

1. Start, import the policy, make this process non-dumpable, write the
   line ``toolcrib-harness-ready``, then block reading ONE message from
   stdin (`wire.job_message`): the job's length, the job as JSON, and a
   per-call key. A warm-pool container waits here until a call claims it.
2. Fork. The child puts itself in its own process group, hands the job to
   ``execute.run_job`` and sends the encoded reply back through a pipe,
   length-prefixed. The tool never sees the container's real stdout: the
   child's fds 0/1/2 point at /dev/null, so stray writes cannot corrupt the
   framing.
3. The parent runs no tool code and never parses the reply: it enforces the
   wall clock from the moment the job arrived and the output cap, waits for
   the child, kills the child's process group, and writes one `wire.frame`
   to stdout: the *facts* (the child's exit code or signal, its CPU time and
   peak resident size, its own kills, the cgroup's OOM-kill and pids-limit
   counters compared before and after, the disk left in /tmp), the call's
   key, and the child's reply bytes as they came. The child wipes its copy
   of the key before running anything, so a frame the tool forged (say on
   tini's stdout, reached through /proc/1/fd) is refused by the host. The
   host decides the outcome from the facts and the reply (`wire.classify`),
   so a tool that raises BlockingIOError or MemoryError by hand, or writes a
   reply claiming a limit, reports nothing it did not do.
   Then it exits, which ends the container (tini is PID 1 and follows us).

The host also enforces the wall clock (with a grace period) by killing the
container, so a tool that kills this parent only loses its own reply.
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import struct
import time
from typing import Any

from . import preload, wire

__all__ = ["MAX_JOB_BYTES", "READY", "main"]

MAX_JOB_BYTES = 32 * 1024 * 1024
READY = b"toolcrib-harness-ready"
_HEADER = struct.Struct(">Q")
# cgroup counters, v1 path then v2 path, and the key counted. Read before and
# after the call: only a rise during it is a fact about this call.
_OOM_FILES = ("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events")
_PIDS_FILES = ("/sys/fs/cgroup/pids/pids.events", "/sys/fs/cgroup/pids.events")
_TMP = "/tmp"
# A runtime image (image.build_runtime_image) adds the lock's site directory
# and the names to import (image.RUNTIME_SITE, image.RUNTIME_PRELOAD).
_SITE = "/opt/toolcrib/site"
_PRELOAD = "/opt/toolcrib/preload.json"
_PR_SET_DUMPABLE = 4
# How long a child that has replied may take to exit before it is killed.
_EXIT_GRACE = 0.2


execute: Any = None  # the sibling module, imported by main() before the job arrives


class _WallClock(Exception):
    pass


def _set_dumpable(on: bool) -> None:
    try:
        import ctypes

        ctypes.CDLL(None).prctl(_PR_SET_DUMPABLE, int(on), 0, 0, 0)
    except (OSError, AttributeError):
        pass  # the frame's key still holds without it


def _counter(paths: tuple[str, ...], key: str) -> int | None:
    """The first readable ``key value`` line among `paths` (None if none)."""
    for path in paths:
        try:
            with open(path, encoding="ascii") as fh:
                for line in fh:
                    name, _, value = line.partition(" ")
                    if name == key:
                        return int(value)
        except (OSError, ValueError):
            continue
    return None


def _rise(before: int | None, after: int | None) -> int | None:
    return None if before is None or after is None else max(0, after - before)


def _disk_used_kib() -> int:
    """What the call left in /tmp: the size-limited tmpfs, the only writable
    place (0 when there is none: /tmp is then part of the read-only root)."""
    try:
        if os.stat(_TMP).st_dev == os.stat("/").st_dev:
            return 0
        fs = os.statvfs(_TMP)
    except OSError:
        return 0
    return (fs.f_blocks - fs.f_bfree) * fs.f_frsize // 1024


def _await_reply(read_fd: int, pid: int, cap: int) -> tuple[bytes | None, bool, tuple[int, Any] | None]:
    """Read the child's length-prefixed reply, or notice that it died.

    Returns (reply or None, whether it declared more than `cap` bytes, the
    child's wait status and rusage if it was reaped). The tool's own forks
    inherit the pipe, so EOF alone cannot tell that the child is gone: poll
    its status between reads. A child that died without a whole reply gets a
    short grace to flush what it wrote.
    """
    buf = bytearray()
    need = _HEADER.size
    size: int | None = None
    waited: tuple[int, Any] | None = None
    died_at: float | None = None
    while True:
        ready, _, _ = select.select([read_fd], [], [], 0.02)
        if ready:
            chunk = os.read(read_fd, 1 << 20)
            if not chunk and waited is None:
                _, status, usage = os.wait4(pid, 0)
                return None, False, (status, usage)
            buf += chunk
            if size is None and len(buf) >= need:
                (size,) = _HEADER.unpack(bytes(buf[:need]))
                if size > cap:
                    return None, True, waited
                need += size
            if size is not None and len(buf) >= need:
                return bytes(buf[_HEADER.size : need]), False, waited
            if not chunk:
                return None, False, waited
            continue
        if waited is None:
            done, status, usage = os.wait4(pid, os.WNOHANG)
            if done:
                waited, died_at = (status, usage), time.monotonic()
        elif died_at is not None and time.monotonic() - died_at > 0.2:
            return None, False, waited


def _child(job: dict[str, Any], write_fd: int, out_fd: int) -> None:
    """Runs in the forked child; never returns."""
    try:
        os.setpgid(0, 0)
        # Dumpable again (the parent is not): its own /proc files, e.g.
        # oom_score_adj below, belong to it.
        _set_dumpable(True)
        os.close(out_fd)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.close(devnull)
        # Python ignores SIGXFSZ at start-up; restore the default so that
        # crossing RLIMIT_FSIZE ends the child and reads as a disk limit.
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        signal.signal(signal.SIGXCPU, signal.SIG_DFL)
        try:
            # Be the OOM killer's first choice, so the parent survives to report.
            with open("/proc/self/oom_score_adj", "w", encoding="ascii") as fh:
                fh.write("1000")
        except OSError:
            pass
        data = execute.run_job(job, restricted=(job.get("policy") == "restricted"))
        os.write(write_fd, _HEADER.pack(len(data)))
        view = memoryview(data)
        while view:
            view = view[os.write(write_fd, view) :]
        os._exit(0)
    except BaseException:  # noqa: BLE001 - the parent turns a missing reply into an error
        os._exit(70)


def _reap_within(pid: int, seconds: float) -> tuple[int, Any] | None:
    """The child's wait status and rusage if it exits within `seconds`."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        pidfd = -1
    try:
        end = time.monotonic() + seconds
        while True:
            done, status, usage = os.wait4(pid, os.WNOHANG)
            if done:
                return status, usage
            left = end - time.monotonic()
            if left <= 0:
                return None
            if pidfd >= 0:
                select.select([pidfd], [], [], left)  # readable once it has exited
            else:
                time.sleep(min(left, 0.002))
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def _run(job: dict[str, Any], out_fd: int, key: bytearray) -> tuple[dict[str, Any], bytes | None]:
    """Run the job in a forked child; returns (facts, the child's reply bytes or None)."""
    limits = job.get("limits") or {}
    wall = float(limits.get("wall", 5.0))
    cap = int(limits.get("output", 1024)) * 1024
    oom_before = _counter(_OOM_FILES, "oom_kill")
    pids_before = _counter(_PIDS_FILES, "max")
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        key[:] = bytes(len(key))  # the child never holds the call's key
        os.close(read_fd)
        _child(job, write_fd, out_fd)
    os.close(write_fd)
    try:
        # Also set here (as the child does) so killpg below cannot miss it.
        os.setpgid(pid, pid)
    except OSError:
        pass

    def on_alarm(signum: int, frame: object) -> None:
        raise _WallClock()

    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, wall)
    data: bytes | None = None
    waited: tuple[int, Any] | None = None
    killed: str | None = None
    try:
        data, over, waited = _await_reply(read_fd, pid, cap)
        if over:
            killed = "output"
    except _WallClock:
        killed = "wall"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    if data is not None and waited is None:
        # The reply is in: give the child a moment to end by itself, so its
        # exit status (which backs a claimed limit) is a fact, not our kill.
        waited = _reap_within(pid, _EXIT_GRACE)
    # The tool's own forks and threads die with its process group.
    kills = (os.killpg,) if waited is not None else (os.killpg, os.kill)
    for kill in kills:
        try:
            kill(pid, signal.SIGKILL)
        except OSError:
            pass
    if waited is None:
        try:
            _, status, usage = os.wait4(pid, 0)
            waited = (status, usage)
        except ChildProcessError:
            waited = None
    facts: dict[str, Any] = {
        "killed": killed,
        "baseline_rss_kib": baseline,
        "oom_kills": _rise(oom_before, _counter(_OOM_FILES, "oom_kill")),
        "pids_max": _rise(pids_before, _counter(_PIDS_FILES, "max")),
        "disk_used_kib": _disk_used_kib(),
    }
    if waited is not None:
        status, usage = waited
        facts["exit"] = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
        facts["signal"] = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        facts["cpu"] = round(usage.ru_utime + usage.ru_stime, 4)
        facts["maxrss_kib"] = usage.ru_maxrss
    else:
        facts["error"] = "the tool process could not be waited for"
    return facts, data


def _read_exact(size: int) -> bytes | None:
    """Exactly `size` bytes of stdin (None at EOF), never one byte more: what
    follows the job (the call's key) must not reach a buffer the child copies."""
    chunks, left = [], size
    while left:
        chunk = os.read(0, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_message() -> tuple[bytes, bytearray] | None:
    """The host's `wire.job_message`: (job bytes, key), or None if stdin closed.

    The key is read straight into one bytearray, its only copy in this
    process, which the child wipes before it runs anything (see `_run`)."""
    digits = b""
    while not digits.endswith(b"\n"):
        byte = os.read(0, 1)
        if not byte:
            return None
        digits += byte
        if len(digits) > 12:
            raise ValueError("the job's length line is too long")
    size = int(digits)
    if not 0 < size <= MAX_JOB_BYTES:
        raise ValueError("job too large")
    job = _read_exact(size)
    key = bytearray(wire.KEY_CHARS)
    view, got = memoryview(key), 0
    while job is not None and got < len(key):
        read = os.readv(0, [view[got:]])
        if not read:
            return None
        got += read
    return (job, key) if job is not None else None


def _load_packages() -> None:
    """In a runtime image: put the lock's site directory on the path and
    import (and warm up) its packages while the container waits in the pool.
    A package that fails to import here fails the same way in the tool,
    where the error reaches the caller."""
    import sys

    if not os.path.isdir(_SITE):
        return
    sys.path.append(_SITE)
    try:
        with open(_PRELOAD, encoding="utf-8") as fh:
            names = json.load(fh).get("imports") or []
        preload.preload([str(name) for name in names])
    except Exception:  # noqa: BLE001 - see the docstring
        pass


def main() -> None:
    """Serve exactly one job from stdin, write one frame, exit."""
    # Import the policy and RestrictedPython (and a runtime image's
    # packages) while the container is still waiting in the warm pool, not
    # on the call's clock.
    global execute
    from . import execute

    _load_packages()

    # Not dumpable: /proc/<this pid> belongs to root, so the tool's process
    # (same uid) cannot open our descriptors or read our memory there.
    _set_dumpable(False)
    out_fd = os.dup(1)
    # Tell the host this container is warm: only now does it join the pool.
    os.write(out_fd, READY + b"\n")
    reply: bytes | None = None
    key = bytearray(wire.KEY_CHARS)
    try:
        message = _read_message()
        if message is None:
            os._exit(0)  # the host went away (stdin closed) before sending a job
        data, key = message
        job = json.loads(data)
        if not isinstance(job, dict):
            raise ValueError("job is not an object")
        facts, reply = _run(job, out_fd, key)
    except Exception as exc:  # noqa: BLE001 - report, never a traceback on stdout
        facts = {"error": f"bad job: {exc}"[:500]}
    view = memoryview(wire.frame(facts, reply, key.decode("ascii", "replace")))
    while view:
        view = view[os.write(out_fd, view) :]
    os._exit(0)


if __name__ == "__main__":  # pragma: no cover - the container runs main() via -c
    main()
