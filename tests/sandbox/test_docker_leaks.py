"""No sandbox container outlives the process that made it, in any state.

Each test runs a real caller (the CLI, or a script using the backend) in a
subprocess against the real engine, then lists the containers labelled with
that process's pid the moment it has exited. Nothing may be listed: not a
running warm container, not one the pool's filler was creating or starting
while the process exited, not one the engine is still removing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from toolcrib.sandbox.docker import LABEL, LABEL_PID

pytestmark = pytest.mark.docker

_CLI = [sys.executable, "-c", "from toolcrib.cli import main; main()"]


def _left_by(pid: int) -> list[str]:
    import docker

    client = docker.from_env(timeout=30)
    try:
        found = client.api.containers(all=True, filters={"label": [f"{LABEL}=1", f"{LABEL_PID}={pid}"]})
    finally:
        client.close()
    return [f"{c['Id'][:12]} {c['State']}" for c in found]


def _toolcrib(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TOOLCRIB_REGISTRY": str(tmp_path / "registry.db"), "TOOLCRIB_BACKEND": "docker"}
    env.pop("TOOLCRIB_DEBUG", None)
    return subprocess.run([*_CLI, *args], env=env, capture_output=True, text=True, timeout=300)


def _popen_toolcrib(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "TOOLCRIB_REGISTRY": str(tmp_path / "registry.db"), "TOOLCRIB_BACKEND": "docker"}
    return subprocess.Popen(
        [*_CLI, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_cli_call_leaves_no_container(tmp_path: Path, docker_image: str) -> None:
    tool = tmp_path / "inc.py"
    tool.write_text("def inc(x: int) -> int:\n    return x + 1\n")
    added = _toolcrib(tmp_path, "add", str(tool))
    assert added.returncode == 0, added.stderr
    # A call takes a warm container, so the pool is refilling as the CLI
    # exits: the replacement (being created, started or warming) and the
    # rest of the pool must all be gone when the process is.
    for _ in range(3):
        proc = _popen_toolcrib(tmp_path, "call", "inc", "--arg", "x=41", "--allow-unverified")
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert out.strip() == "42"
        assert _left_by(proc.pid) == []


def test_cli_verify_leaves_no_container(tmp_path: Path, docker_image: str) -> None:
    tool = tmp_path / "inc.py"
    tool.write_text("def inc(x: int) -> int:\n    return x + 1\n")
    tests = tmp_path / "inc.tests.json"
    tests.write_text('[{"args": {"x": 1}, "expected": 2}, {"args": {"x": 2}, "expected": 3}]')
    assert _toolcrib(tmp_path, "add", str(tool), "--tests", str(tests)).returncode == 0
    proc = _popen_toolcrib(tmp_path, "verify", "inc")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert _left_by(proc.pid) == []


EXIT_WHILE_FILLING = """
import sys, time
from toolcrib.sandbox import Job
from toolcrib.sandbox.docker import DockerBackend
backend = DockerBackend(pool_size=3, image=sys.argv[1], fillers=3)
assert backend.unavailable_reason is None, backend.unavailable_reason
r = backend.run(Job(source="def f():\\n    return 7\\n", entrypoint="f", policy="plain"))
assert r.status == "ok", r
# Give the fillers a moment to be inside the engine's create/start calls,
# then leave without closing anything: the interpreter's exit must clean up.
time.sleep(float(sys.argv[2]))
"""


@pytest.mark.parametrize("pause", ["0", "0.05", "0.3"])
def test_exit_while_the_pool_is_filling_leaves_no_container(docker_image: str, pause: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", EXIT_WHILE_FILLING, docker_image, pause],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert _left_by(proc.pid) == []


def test_cli_error_exit_leaves_no_container(tmp_path: Path, docker_image: str) -> None:
    tool = tmp_path / "boom.py"
    tool.write_text("def boom() -> int:\n    raise ValueError('no')\n")
    assert _toolcrib(tmp_path, "add", str(tool)).returncode == 0
    proc = _popen_toolcrib(tmp_path, "call", "boom", "--allow-unverified")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err
    assert _left_by(proc.pid) == []


def test_closing_one_backend_leaves_another_backends_pool_alone(docker_image: str) -> None:
    from toolcrib.sandbox import Job
    from toolcrib.sandbox.docker import LABEL_BACKEND, DockerBackend

    keep = DockerBackend(pool_size=1, image=docker_image)
    try:
        assert keep.warm()
        other = DockerBackend(pool_size=1, image=docker_image)
        assert other.warm()
        other.close()
        import docker

        client = docker.from_env(timeout=30)
        try:
            mine = client.api.containers(all=True, filters={"label": [f"{LABEL_BACKEND}={keep._owner}"]})
            theirs = client.api.containers(all=True, filters={"label": [f"{LABEL_BACKEND}={other._owner}"]})
        finally:
            client.close()
        assert theirs == []
        assert [c["State"] for c in mine] == ["running"]
        r = keep.run(Job(source="def f():\n    return 5\n", entrypoint="f", policy="plain"))
        assert (r.status, r.result) == ("ok", 5)
    finally:
        keep.close()


def test_a_terminated_cli_call_leaves_no_container(tmp_path: Path, docker_image: str) -> None:
    """SIGTERM (a supervisor, `timeout`) ends the call through its clean-up
    path, as Ctrl-C does; Python's default would skip the exit handlers."""
    import signal
    import time

    tool = tmp_path / "spin.py"
    tool.write_text("def spin() -> int:\n    while True:\n        pass\n")
    assert _toolcrib(tmp_path, "add", str(tool)).returncode == 0
    proc = _popen_toolcrib(tmp_path, "call", "spin", "--allow-unverified", "--limit", "wall=120", "--limit", "cpu=60")
    try:
        # Wait until the call holds containers, then terminate the CLI.
        deadline = time.monotonic() + 120
        while not _left_by(proc.pid) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert _left_by(proc.pid), "the call never started a container"
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == -signal.SIGTERM, err  # cleaned up, then ended by the signal
    assert "Terminated." in err
    assert _left_by(proc.pid) == []
