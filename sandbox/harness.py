"""In-container job runner for the Docker backend.

This file is copied into the sandbox image as ``tcbox/harness.py`` next to
``execute.py`` and its sibling policy modules; it imports only the standard
library and those siblings, never anything from the host's toolcrib.

Protocol (one container, one call):

1. Start, import the policy, write the line ``toolcrib-harness-ready``,
   then block reading ONE line from stdin: the job as JSON (the host
   sends ``json.dumps(job.wire())`` which never contains a raw newline). A
   warm-pool container waits here until a call claims it.
2. Fork. The child puts itself in its own process group, hands the job to
   ``execute.run_job`` and sends the encoded reply back through a pipe,
   length-prefixed. The tool never sees the container's real stdout: the
   child's fds 0/1/2 point at /dev/null, so stray writes cannot corrupt the
   reply framing.
3. The parent (which runs no tool code) enforces the wall clock from the
   moment the job arrived, maps a child killed by a signal to a limit
   (SIGXCPU -> cpu, SIGXFSZ -> disk, SIGKILL after an OOM kill -> memory),
   kills the child's process group, writes exactly one reply line to stdout
   and exits, which ends the container (tini is PID 1 and follows us).

The host also enforces the wall clock (with a grace period) by killing the
container, so a tool that kills this parent only loses its own reply.
"""

from __future__ import annotations

import json
import os
import select
import signal
import struct
import sys
import time
from typing import Any

__all__ = ["MAX_JOB_BYTES", "READY", "main", "reply_bytes"]

MAX_JOB_BYTES = 32 * 1024 * 1024
READY = b"toolcrib-harness-ready"
_HEADER = struct.Struct(">Q")
# Files where the memory cgroup counts OOM kills: v1 then v2. Compared before
# and after the call so a SIGKILL is only called "memory" when the kernel's
# OOM killer really fired inside this container.
_OOM_FILES = ("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events")


execute: Any = None  # the sibling module, imported by main() before the job arrives


class _WallClock(Exception):
    pass


def reply_bytes(status: str, *, limit: str | None = None, error: dict[str, Any] | None = None) -> bytes:
    """An encoded reply the harness itself writes (no tool result)."""
    return json.dumps({"status": status, "result": None, "error": error, "limit": limit, "stdout": ""}).encode()


def _oom_kills() -> int:
    for path in _OOM_FILES:
        try:
            with open(path, encoding="ascii") as fh:
                for line in fh:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            continue
    return -1


def _await_reply(read_fd: int, pid: int, cap: int) -> tuple[bytes | None, int | None]:
    """Read the child's length-prefixed reply, or notice that it died.

    Returns (reply or None, wait status or None). The tool's own forks inherit
    the pipe, so EOF alone cannot tell that the child is gone: poll its status
    between reads. A child that died without a whole reply gets a short grace
    to flush what it wrote.
    """
    buf = bytearray()
    need = _HEADER.size
    size: int | None = None
    status: int | None = None
    died_at: float | None = None
    while True:
        ready, _, _ = select.select([read_fd], [], [], 0.02)
        if ready:
            chunk = os.read(read_fd, 1 << 20)
            if not chunk and status is None:
                _, status = os.waitpid(pid, 0)
                return None, status
            buf += chunk
            if size is None and len(buf) >= need:
                (size,) = _HEADER.unpack(bytes(buf[:need]))
                if size > cap:
                    return reply_bytes("limit", limit="output"), status
                need += size
            if size is not None and len(buf) >= need:
                return bytes(buf[_HEADER.size : need]), status
            if not chunk:
                return None, status
            continue
        if status is None:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status, died_at = st, time.monotonic()
        elif died_at is not None and time.monotonic() - died_at > 0.2:
            return None, status


def _child(job: dict[str, Any], write_fd: int, out_fd: int) -> None:
    """Runs in the forked child; never returns."""
    try:
        os.setpgid(0, 0)
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


def _run(job: dict[str, Any], out_fd: int) -> bytes:
    limits = job.get("limits") or {}
    wall = float(limits.get("wall", 5.0))
    cap = int(limits.get("output", 1024)) * 1024 + 4096
    oom_before = _oom_kills()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
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
    status: int | None = None
    try:
        data, status = _await_reply(read_fd, pid, cap)
    except _WallClock:
        data = reply_bytes("limit", limit="wall")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    # The tool's own forks and threads die with its process group.
    kills = (os.killpg,) if status is not None else (os.killpg, os.kill)
    for kill in kills:
        try:
            kill(pid, signal.SIGKILL)
        except OSError:
            pass
    if status is None:
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            status = 0
    if data is not None:
        return data
    return _classify_death(status, oom_before)


def _classify_death(status: int, oom_before: int) -> bytes:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGXCPU:
            return reply_bytes("limit", limit="cpu")
        if sig == signal.SIGXFSZ:
            return reply_bytes("limit", limit="disk")
        if sig == signal.SIGKILL:
            oom_after = _oom_kills()
            if oom_after > oom_before or oom_after < 0:
                # No counter to read (odd cgroup layout): an unexplained
                # SIGKILL inside a memory-capped container is the OOM killer.
                return reply_bytes("limit", limit="memory")
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        return reply_bytes("error", error={"type": "SandboxError", "message": f"the tool process was killed by {name}", "line": None})
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
    return reply_bytes("error", error={"type": "SandboxError", "message": f"the tool process exited with code {code} without a reply", "line": None})


def main() -> None:
    """Serve exactly one job from stdin, write one reply line, exit."""
    # Import the policy and RestrictedPython while the container is still
    # waiting in the warm pool, not on the call's clock.
    global execute
    from . import execute

    out_fd = os.dup(1)
    # Tell the host this container is warm: only now does it join the pool.
    os.write(out_fd, READY + b"\n")
    line = sys.stdin.buffer.readline(MAX_JOB_BYTES + 1)
    if not line.strip():
        # The host went away (stdin closed) before sending a job.
        os._exit(0)
    try:
        if len(line) > MAX_JOB_BYTES:
            raise ValueError("job too large")
        job = json.loads(line)
        if not isinstance(job, dict):
            raise ValueError("job is not an object")
        data = _run(job, out_fd)
    except Exception as exc:  # noqa: BLE001 - report, never a traceback on stdout
        data = reply_bytes("error", error={"type": "SandboxError", "message": f"bad job: {exc}"[:500], "line": None})
    view = memoryview(data + b"\n")
    while view:
        view = view[os.write(out_fd, view) :]
    os._exit(0)


if __name__ == "__main__":  # pragma: no cover - the container runs main() via -c
    main()
