"""The warm sandbox service shared by commands (issue 21, sandbox/service.py):
started on first use, one per user directory, shared by separate `toolcrib`
processes (the same pid answers every call), owner-only (directory 0700,
socket 0600), refusing a directory or socket that is not the user's own or
not safe with a message saying which, replacing a stale socket, answering
only a peer of its own uid (SO_PEERCRED), stopping when idle, and shown by
doctor. Real processes, sockets and the real restricted backend; each test
has a service directory of its own and stops its service."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from toolcrib.sandbox import Job
from toolcrib.sandbox.service import ServiceBackend, peer_uid, status, stop

TOOL = 'def double(x: int) -> int:\n    """Double."""\n    return 2 * x\n'


@pytest.fixture
def service_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    directory = tmp_path / "svc"
    monkeypatch.setenv("TOOLCRIB_SERVICE_DIR", str(directory))
    monkeypatch.setenv("TOOLCRIB_SERVICE_IDLE", "60")
    yield directory
    stop(directory)
    _wait(lambda: not status(directory)["running"])


def _wait(done, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    """A generous hang guard, never a timing assertion."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.05)


def _job(x: int) -> Job:
    return Job(source=TOOL, entrypoint="double", args={"x": x})


def test_commands_share_one_owner_only_service(service_dir: Path, tmp_path: Path, monkeypatch) -> None:
    from toolcrib import Registry

    registry = tmp_path / "r.db"
    with Registry(registry) as reg:
        reg.add(TOOL, tests=[{"args": {"x": 2}, "expected": 4}])
    env = {**os.environ, "TOOLCRIB_SANDBOX_SERVICE": "1", "TOOLCRIB_REGISTRY": str(registry)}
    toolcrib = str(Path(sys.executable).parent / "toolcrib")
    pids = []
    for command in (["verify", "double"], ["call", "double", "--args", '{"x": 1}', "--json"]):
        done = subprocess.run([toolcrib, *command], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        pids.append(status(service_dir)["pid"])
    assert json.loads(done.stdout)["result"] == 2
    assert pids[0] == pids[1] != os.getpid()  # the one service outlived the first command
    assert status(service_dir)["calls"] == 2
    # In this process too, through the table's backend.
    monkeypatch.setenv("TOOLCRIB_SANDBOX_SERVICE", "1")
    result = ServiceBackend().run(_job(21))
    assert (result.status, result.result, result.backend) == ("ok", 42, "restricted")
    assert status(service_dir)["calls"] == 3
    assert os.stat(service_dir).st_mode & 0o777 == 0o700
    assert os.stat(service_dir / "sandbox.sock").st_mode & 0o777 == 0o600


@pytest.mark.parametrize("kind", ["open directory", "symlink", "not a socket"])
def test_an_unsafe_directory_or_socket_is_refused(service_dir: Path, tmp_path: Path, kind: str) -> None:
    if kind == "open directory":
        service_dir.mkdir(mode=0o755)
        os.chmod(service_dir, 0o755)
        expected = "is open to others (mode 0755)"
    elif kind == "symlink":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        service_dir.symlink_to(tmp_path / "elsewhere")
        expected = "is not a directory (a symlink or a file)"
    else:
        service_dir.mkdir(mode=0o700)
        (service_dir / "sandbox.sock").write_text("not a socket")
        expected = "is not a socket"
    result = ServiceBackend().run(_job(1))
    assert result.status == "unavailable" and result.error is not None
    assert expected in result.error.message and str(service_dir) in result.error.message
    assert status(service_dir)["error"] == result.error.message
    assert not any(p.name == "service.pid" for p in tmp_path.rglob("*"))  # nothing was started


@pytest.mark.skipif(os.getuid() != 0, reason="making a directory of another uid needs root")
def test_a_foreign_directory_is_refused(service_dir: Path) -> None:
    service_dir.mkdir(mode=0o700)
    os.chown(service_dir, 65534, 65534)
    result = ServiceBackend().run(_job(1))
    assert result.status == "unavailable" and result.error is not None
    assert "belongs to uid 65534, not to you" in result.error.message


def test_a_stale_socket_is_replaced_and_an_idle_service_stops(
    service_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service_dir.mkdir(mode=0o700)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(service_dir / "sandbox.sock"))
    dead.close()  # a socket file nobody listens on: a service that died
    monkeypatch.setenv("TOOLCRIB_SERVICE_IDLE", "1")
    result = ServiceBackend().run(_job(5))
    assert (result.status, result.result) == ("ok", 10)
    assert status(service_dir)["running"]
    _wait(lambda: not status(service_dir)["running"])
    assert not (service_dir / "sandbox.sock").exists() and not (service_dir / "service.pid").exists()


def test_peer_credentials_are_read_from_the_socket() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, theirs:
        assert peer_uid(ours) == os.getuid()


@pytest.mark.skipif(os.getuid() != 0, reason="connecting as another uid needs root")
def test_a_peer_of_another_uid_gets_no_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    # Under /tmp itself: pytest's own temporary folders are closed to other uids.
    top = Path(tempfile.mkdtemp(prefix="toolcrib-peer-", dir="/tmp"))
    service_dir = top / "svc"
    monkeypatch.setenv("TOOLCRIB_SERVICE_DIR", str(service_dir))
    try:
        _peer_probe(top, service_dir)
    finally:
        stop(service_dir)
        _wait(lambda: not status(service_dir)["running"])
        shutil.rmtree(top)


def _peer_probe(top: Path, service_dir: Path) -> None:
    assert ServiceBackend().run(_job(1)).status == "ok"
    # Let uid 65534 reach the socket (the service made both owner-only):
    # only SO_PEERCRED stands between it and the service now.
    os.chmod(top, 0o711)
    os.chmod(service_dir, 0o711)
    os.chmod(service_dir / "sandbox.sock", 0o666)
    probe = (
        "import json, socket, struct\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        f"s.connect({str(service_dir / 'sandbox.sock')!r})\n"
        "body = json.dumps({'op': 'ping'}).encode()\n"
        "try:\n"
        "    s.sendall(struct.pack('>I', len(body)) + body)\n"
        "    print(repr(s.recv(100)))\n"
        "except (BrokenPipeError, ConnectionResetError):\n"  # closed first: still not a word
        "    print(repr(b''))\n"
    )
    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None:
        pytest.skip("no system python3 that uid 65534 may run")
    done = subprocess.run(
        [python, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        user=65534,
        cwd="/",
        env={"PATH": os.environ.get("PATH", "")},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "b''"  # closed without a word
    os.chmod(service_dir, 0o700)
    assert status(service_dir)["calls"] == 1


def test_doctor_shows_the_service(service_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from toolcrib.sandbox.doctor import _service_check

    check, info = _service_check()
    assert check["ok"] and "not in use" in check["detail"] and "not running" in check["detail"]
    monkeypatch.setenv("TOOLCRIB_SANDBOX_SERVICE", "1")
    ServiceBackend().start()
    check, info = _service_check()
    assert check["ok"] and check["detail"].startswith("in use; running (pid ")
    assert info["pid"] == status(service_dir)["pid"]
    stop(service_dir)
    _wait(lambda: not status(service_dir)["running"])
    service_dir.chmod(0o750)
    check, _ = _service_check()
    assert not check["ok"] and "open to others" in check["detail"]
    service_dir.chmod(0o700)
