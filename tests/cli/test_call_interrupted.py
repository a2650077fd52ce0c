"""A `toolcrib call` stopped mid-call (SIGTERM from a supervisor or
`timeout`, Ctrl-C) still leaves its call in the audit log, as `cancelled`,
and its sandbox stopped: the log never misses a call that began to run.

Real processes and the real restricted backend: the call spins in its jailed
child until the test sees that child burn CPU, then the CLI is signalled.
(The served path's own case, a client killed mid-call, is in
test_served_call.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from toolcrib.sandbox.fake import FakeBackend

from toolcrib import Registry

SPIN = 'def spin(n: int) -> int:\n    """Count for ever."""\n    while True:\n        n += 1\n'
NORMAL = "import sys; sys.argv[0] = 'toolcrib'; from toolcrib.cli import main; main()"
TICKS = os.sysconf("SC_CLK_TCK")


def _wait(done: Callable[[], bool], timeout: float = 120.0) -> None:
    """A generous hang guard, never a timing assertion."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.05)


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from the state on


def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) is not None:
            parents[int(entry)] = int(fields[1])
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def _spinning(root: int) -> bool:
    """Some process under `root` has used over half a second of CPU: the call's child."""
    for pid in _descendants(root):
        fields = _stat(pid)
        if fields is not None and (int(fields[11]) + int(fields[12])) / TICKS > 0.5:
            return True
    return False


# SIGTERM ends the CLI by the signal itself (after its cleanup); Ctrl-C is
# "Aborted!" and exit 130 (README, Exit codes).
@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGTERM, -signal.SIGTERM), (signal.SIGINT, 130)])
def test_a_call_interrupted_mid_run_is_audited_as_cancelled(
    tmp_path: Path, signum: signal.Signals, exit_code: int
) -> None:
    db = tmp_path / "r.db"
    with Registry(db, actor="setup", backends={"restricted": FakeBackend(name="restricted")}) as reg:
        reg.add(SPIN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLCRIB_")}
    cli = subprocess.Popen(
        [sys.executable, "-c", NORMAL, "--registry", str(db), "call", "spin", "--allow-unverified",
         "--arg", "n=1", "--limit", "cpu=60", "--limit", "wall=120"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _wait(lambda: _spinning(cli.pid))
        children = _descendants(cli.pid)
        cli.send_signal(signum)
        _, err = cli.communicate(timeout=120)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert cli.returncode == exit_code, err
    assert err.strip() in (b"Terminated.", b"Aborted!")  # one line, no traceback
    with Registry(db, actor="check") as reg:
        calls = [e for e in reg.audit() if e.event == "call"]
    assert len(calls) == 1
    assert calls[0].tool == "spin@1.0.0"
    assert calls[0].details["status"] == "cancelled"
    assert calls[0].details["error_type"] == "Cancelled"
    # The sandbox was stopped with it, not left spinning.
    _wait(lambda: not any(_stat(pid) is not None and _stat(pid)[0] != "Z" for pid in children))  # type: ignore[index]
