"""The zygote refills its spares in one burst (issue 19): every fork
write-protects the zygote's pages again, so the pages its loop writes
between forks are copied once per fork; forks back to back, with no turn of
the loop between them, copy them once per burst."""

from __future__ import annotations

import socket
import threading
from typing import Any

from toolcrib.sandbox.inside import zygote as zygote_module


class _Spare:
    def __init__(self, slot: int) -> None:
        self.slot = slot


def _steps_of_a_refill(spares: int) -> list[str]:
    """What an emptied zygote does, in order, until its pool is full: its
    forks (stand-ins: no process is made) and its waits for events."""
    host, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    zygote = zygote_module._Zygote(theirs, run_job=lambda *a, **k: b"", jail=None, spares=spares)
    steps: list[str] = []
    real_poll = zygote.poll

    class _Poll:
        def poll(self, timeout: float = -1) -> Any:
            steps.append("wait")
            return real_poll.poll(timeout)

        def __getattr__(self, name: str) -> Any:
            return getattr(real_poll, name)

    def fork() -> None:
        steps.append("fork")
        zygote.spares.add(_Spare(zygote.free_slots.pop()))
        if len(zygote.spares) == spares:
            host.close()  # full: the host hangs up, and `serve` returns

    zygote.poll = _Poll()  # type: ignore[assignment]
    zygote._fork_spare = fork  # type: ignore[method-assign]
    done = threading.Event()
    thread = threading.Thread(target=lambda: (zygote.serve(), done.set()), daemon=True)
    thread.start()
    assert done.wait(10), "the zygote's loop did not end"
    real_poll.close()
    theirs.close()
    return steps


def test_an_emptied_pool_is_refilled_in_one_burst_before_the_loop_turns() -> None:
    steps = _steps_of_a_refill(3)
    assert steps[:3] == ["fork", "fork", "fork"], steps
    assert "fork" not in steps[3:], steps
