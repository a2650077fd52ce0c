"""Run `execute.run_job` in a forked child with a time-out, for unit tests
that feed hostile code to the policy layer without the process backend
(whose own tests cover the OS limits)."""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import time
from collections.abc import Callable
from typing import Any

__all__ = ["run_in_child", "call_in_child"]


def call_in_child(func: Callable[[], bytes], *, timeout: float = 10.0, memory_mib: int = 1024) -> bytes:
    """Fork, run ``func`` in the child under an address-space limit
    (``memory_mib`` on top of what is mapped at the fork) and
    return the bytes it produced; raises TimeoutError (after killing the
    child) if it takes longer than ``timeout``."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns
        code = 0
        try:
            os.close(read_fd)
            # On top of what the (forked) test process already maps: late in
            # a full run that is hundreds of MiB (threads' stacks, libraries),
            # and an absolute limit left deep recursion no room to fail
            # cleanly (a SystemError instead of RecursionError).
            with open("/proc/self/statm") as statm:
                mapped = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            limit = mapped + memory_mib * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            data = func()
            view = memoryview(data)
            while view:
                view = view[os.write(write_fd, view) :]
        except BaseException:  # noqa: BLE001 - report by exit code only
            code = 3
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                raise TimeoutError("the child did not finish in time")
            ready, _, _ = select.select([read_fd], [], [], left)
            if ready:
                chunk = os.read(read_fd, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"the child failed: status {status}")
    return b"".join(chunks)


def run_in_child(job: dict[str, Any], *, restricted: bool = True, timeout: float = 10.0) -> dict[str, Any]:
    """`run_job` in a forked child; the decoded reply."""
    from toolcrib.sandbox.inside.execute import run_job

    full = {"entrypoint": "run", "mode": "args", "args": {}, "limits": {"output": 256}, **job}
    return json.loads(call_in_child(lambda: run_job(full, restricted=restricted), timeout=timeout))
