"""No channel between calls without a file, socket or signal (`channels.py`):
futexes on libc's shared text, the robust list's wake at exit, and the flags
of descriptors 0-2. Each scenario runs a sender and a receiver at the same
time, through the restricted backend as root and as an ordinary user, and
the futex one between two Docker containers of the same image."""

from __future__ import annotations

import json
import os
import sysconfig
from collections.abc import Iterator
from typing import Any

import pytest

from .channels import SCENARIOS, futex_between_calls, thread_join, verdict
from .jailkit import make_backend

NAMES = list(SCENARIOS)


@pytest.fixture(scope="module")
def backend() -> Iterator[Any]:
    running = make_backend(spares=2)
    try:
        running.start()
        yield running
    finally:
        running.close()


@pytest.mark.parametrize("name", NAMES)
def test_no_channel(name: str, backend: Any) -> None:
    report = SCENARIOS[name](backend)
    assert {"landlock", "seccomp"} <= set(next(iter(_replies(report)))["layers"]), report
    why = verdict(name, report)
    assert why is None, why


def _replies(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [value for value in report.values() if isinstance(value, dict) and "status" in value]


# --------------------------------------------------------------------------- as an ordinary user


@pytest.fixture(scope="module")
def user_report() -> Iterator[dict[str, Any]]:
    if os.geteuid() != 0:
        pytest.skip("needs root to run the driver as another user")
    from .test_jail_user import _as_user, _free_uid, _interpreter, _leftovers

    driver = os.path.join(os.path.dirname(os.path.abspath(__file__)), "channel_driver.py")
    uid = _free_uid()
    site_dir = sysconfig.get_paths()["purelib"]
    if _as_user(uid, ["/bin/sh", "-c", 'test -r "$0" && test -r "$1"', driver, site_dir]).returncode != 0:
        pytest.skip(f"this checkout or its venv is not readable by another user ({driver}, {site_dir})")
    python = _interpreter(uid, site_dir)
    done = _as_user(uid, [python, driver, json.dumps({"site_dirs": [site_dir], "python": python})], timeout=300)
    assert done.returncode == 0, f"the driver died (code {done.returncode}): {done.stderr[-3000:]}"
    lines = done.stdout.strip().splitlines()
    assert lines, f"the driver printed nothing: {done.stderr[-3000:]}"
    data: dict[str, Any] = json.loads(lines[-1])
    assert data["uid"] == uid != 0
    assert data["info"]["available"] is True and data["info"]["uid_switched"] is False, data["info"]
    data["leftovers"] = _leftovers(uid)
    yield data


@pytest.mark.parametrize("name", NAMES)
def test_no_channel_as_ordinary_user(name: str, user_report: dict[str, Any]) -> None:
    entry = user_report["scenarios"][name]
    assert "crash" not in entry, entry.get("crash")
    why = verdict(name, entry["report"])
    assert why is None, why


# --------------------------------------------------------------------------- Docker


@pytest.fixture(scope="module")
def dock(docker_image: str) -> Iterator[Any]:
    from toolcrib.sandbox.docker import DockerBackend

    running = DockerBackend(pool_size=2, image=docker_image)
    try:
        assert running.unavailable_reason is None, running.unavailable_reason
        yield running
    finally:
        running.close()


@pytest.mark.docker
def test_no_futex_channel_between_containers(dock: Any) -> None:
    report = futex_between_calls(dock)
    why = verdict("futex_between_calls", report)
    assert why is None, why


@pytest.mark.docker
def test_threads_still_join_in_a_container(dock: Any) -> None:
    # glibc's pthread_join waits on the thread's tid *without* the private
    # flag; the profile answers EAGAIN there, so it retries (EPERM aborts).
    reply = thread_join(dock)
    assert reply["status"] == "ok" and reply["result"] == 0, reply


# --------------------------------------------------------------------------- the child's own 0-2, both ways

OWN_STDIO = r"""
import fcntl, json, os, stat, sys
from toolcrib.sandbox.inside.zygote import _own_stdio

before = os.dup(1)  # the description this process had
how = _own_stdio(sys.argv[1])
out = {"how": how, "kinds": [], "flags": []}
for fd in (0, 1, 2):
    mode = os.fstat(fd).st_mode
    out["kinds"].append("fifo" if stat.S_ISFIFO(mode) else "chr" if stat.S_ISCHR(mode) else "other")
    out["flags"].append(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE)
fcntl.fcntl(1, fcntl.F_SETFL, fcntl.fcntl(1, fcntl.F_GETFL) | os.O_APPEND | os.O_NONBLOCK)
out["old_untouched"] = not fcntl.fcntl(before, fcntl.F_GETFL) & (os.O_APPEND | os.O_NONBLOCK)
out["eof"] = os.read(0, 10) == b""
try:
    os.write(2, b"x")
    out["write"] = "ok"
except BrokenPipeError:
    out["write"] = "EPIPE"
os.write(before, json.dumps(out).encode())
"""


@pytest.mark.parametrize(
    "devnull, how, kind, write",
    [
        ("/dev/null", "devnull", "chr", "ok"),
        # No /dev/null (the empty root where there is no Landlock): fresh pipes.
        ("/nonexistent/null", "pipes", "fifo", "EPIPE"),
    ],
)
def test_a_child_gets_descriptions_of_its_own(devnull: str, how: str, kind: str, write: str) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", OWN_STDIO, devnull], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["how"] == how and out["kinds"] == [kind] * 3, out
    assert out["flags"] == ([os.O_RDWR] * 3 if how == "devnull" else [os.O_RDONLY, os.O_WRONLY, os.O_WRONLY]), out
    assert out["old_untouched"] and out["eof"] and out["write"] == write, out
