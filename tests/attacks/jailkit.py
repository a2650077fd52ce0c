"""Canaries and process checks for the jail suites (`test_jail.py`, and the
driver `jail_driver.py` that `test_jail_user.py` runs as another user).

Standard library only (plus `toolcrib.sandbox` in `make_backend`), so the
driver can load it by path under another uid and interpreter.

The canaries are laid out so that *only the jail* keeps a call away from
them: the secret file and its directory are world-readable, the watched
directory and the drop box are world-writable, the Unix-socket listener is
world-connectable. An escaped call running as any uid would reach them.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CALL_UID_BASE",
    "CALL_UID_SLOTS",
    "JailCanaries",
    "JailSession",
    "Listener",
    "TMP_PREFIX",
    "make_backend",
    "processes",
    "settle",
]

# Every file an attack or probe tries to create in a shared directory starts
# with this, so a leftover can be found by name whoever made it.
TMP_PREFIX = "toolcrib-attack-"
# The restricted backend's per-call uids when it runs as root (zygote.py):
# every zygote claims its own block of CALL_UID_SLOTS (sandbox/uids.py), so
# a call uid is any uid from the base up (other zygotes on this machine run
# beside the one under test), and a zygote itself runs as its block's base.
CALL_UID_BASE = 2_000_000_000
CALL_UID_SLOTS = 4096


def is_call_uid(uid: int) -> bool:
    return CALL_UID_BASE <= uid < 2**32 - 1


class Listener:
    """A listening socket (TCP on loopback, or a Unix socket) that records
    every connection it accepts."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.connections: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="jail-canary-listener", daemon=True)
        self._thread.start()

    @classmethod
    def tcp(cls) -> Listener:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))  # a free port: no wait on other suites' canaries
        return cls(sock)

    @classmethod
    def unix(cls, address: str | bytes) -> Listener:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(address)
        if isinstance(address, str):
            os.chmod(address, 0o777)  # any uid may connect: only the jail stops a call
        return cls(sock)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(repr(peer))
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def _entries(directory: str) -> dict[str, int]:
    """Name -> owner uid of a directory's entries (missing ones skipped)."""
    found: dict[str, int] = {}
    try:
        names = os.listdir(directory)
    except OSError:
        return found
    for name in names:
        try:
            found[name] = os.lstat(os.path.join(directory, name)).st_uid
        except OSError:
            continue
    return found


@dataclass
class JailCanaries:
    """Everything a jailed call must leave untouched, and the checks."""

    base: Path
    secret_path: Path
    secret_bytes: bytes
    secret_mode: int
    secret_mtime_ns: int
    hidden_name: str  # a file in the secret's directory whose name is never given to a tool
    watch_dir: Path
    dropbox: Path  # world-writable directory with a world-writable victim file
    victim_bytes: bytes
    env_name: str
    env_value: str
    tcp: Listener
    unix_path: str
    unix: Listener
    abstract_name: str  # without the leading NUL
    abstract: Listener
    token: str
    jail_uid: int | None  # the uid calls run as when it is not a per-call uid (ordinary user)
    tmp_before: dict[str, dict[str, int]] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, env_name: str, *, jail_uid: int | None = None) -> JailCanaries:
        token = secrets.token_hex(8)
        base = Path(tempfile.mkdtemp(prefix="toolcrib-jail-canary-"))
        base.chmod(0o755)
        file_secret = "jail-file-secret-" + secrets.token_hex(16)
        env_secret = "jail-env-secret-" + secrets.token_hex(16)
        hidden_name = "hidden-" + secrets.token_hex(16)
        secret_path = base / "secret.txt"
        secret_path.write_text(file_secret)
        secret_path.chmod(0o644)
        (base / hidden_name).write_text("listing canary")
        (base / hidden_name).chmod(0o644)
        watch_dir = base / "watched"
        watch_dir.mkdir()
        watch_dir.chmod(0o777)
        dropbox = base / "dropbox"
        dropbox.mkdir()
        dropbox.chmod(0o777)
        victim = dropbox / "victim.txt"
        victim.write_bytes(b"victim " + token.encode())
        victim.chmod(0o666)
        unix_path = str(base / "canary.sock")
        abstract_name = TMP_PREFIX + "abstract-" + token
        info = secret_path.stat()
        # The variable must be set before any backend starts, so a backend
        # that leaked the host environment would be caught.
        os.environ[env_name] = env_secret
        canaries = cls(
            base=base,
            secret_path=secret_path,
            secret_bytes=secret_path.read_bytes(),
            secret_mode=info.st_mode,
            secret_mtime_ns=info.st_mtime_ns,
            hidden_name=hidden_name,
            watch_dir=watch_dir,
            dropbox=dropbox,
            victim_bytes=victim.read_bytes(),
            env_name=env_name,
            env_value=env_secret,
            tcp=Listener.tcp(),
            unix_path=unix_path,
            unix=Listener.unix(unix_path),
            abstract_name=abstract_name,
            abstract=Listener.unix(b"\0" + abstract_name.encode()),
            token=token,
            jail_uid=jail_uid,
            secrets=[file_secret, env_secret, hidden_name],
        )
        canaries.tmp_before = canaries._shared_dirs()
        return canaries

    def close(self) -> None:
        for listener in (self.tcp, self.unix, self.abstract):
            listener.close()
        os.environ.pop(self.env_name, None)
        shutil.rmtree(self.base, ignore_errors=True)

    # -- placeholders ------------------------------------------------------

    def placeholders(self) -> dict[str, str]:
        return {
            "@SECRET_PATH@": str(self.secret_path),
            "@SECRET_DIR@": str(self.secret_path.parent),
            "@SECRET_ENV@": self.env_name,
            "@CANARY_PORT@": str(self.tcp.port),
            "@WATCH_DIR@": str(self.watch_dir),
            "@VICTIM@": str(self.dropbox / "victim.txt"),
            "@DROPBOX@": str(self.dropbox),
            "@UNIX_PATH@": self.unix_path,
            "@ABSTRACT_NAME@": self.abstract_name,
            "@TMP@": os.path.join(tempfile.gettempdir(), TMP_PREFIX),
            "@TOKEN@": self.token,
        }

    def render(self, code: str) -> str:
        for key, value in self.placeholders().items():
            code = code.replace(key, value)
        return code

    # -- checks ------------------------------------------------------------

    def _shared_dirs(self) -> dict[str, dict[str, int]]:
        # The child has no TMPDIR: its temp dir is /tmp whatever the host's is.
        return {d: _entries(d) for d in dict.fromkeys((tempfile.gettempdir(), "/tmp", "/dev/shm"))}

    def _foreign(self, name: str, uid: int) -> bool:
        """A new entry in a shared directory that a jailed call may have made."""
        if name.startswith(TMP_PREFIX) or self.token in name:
            return True
        if is_call_uid(uid):
            return True
        # An ordinary user's calls run as that user; its own zygote makes
        # (and removes) one `toolcrib-zygote-*` working directory.
        return uid == self.jail_uid and not name.startswith("toolcrib-zygote-")

    def problems(self, reply_json: str = "") -> list[str]:
        """Every canary that was touched; empty when all are intact."""
        found: list[str] = []
        for secret in self.secrets:
            if secret in reply_json:
                found.append(f"a secret came back in the reply: {secret[:24]}...")
        if self.secret_path.read_bytes() != self.secret_bytes:
            found.append("the secret file changed")
        info = self.secret_path.stat()
        if (info.st_mode, info.st_mtime_ns) != (self.secret_mode, self.secret_mtime_ns):
            found.append("the secret file's mode or mtime changed")
        listing = sorted(p.name for p in self.base.iterdir())
        expected = sorted(["secret.txt", self.hidden_name, "watched", "dropbox", "canary.sock"])
        if listing != expected:
            found.append(f"the secret's directory changed: {listing}")
        if sorted(p.name for p in self.watch_dir.iterdir()):
            found.append(f"files appeared in the watched directory: {sorted(p.name for p in self.watch_dir.iterdir())}")
        victim = self.dropbox / "victim.txt"
        if sorted(p.name for p in self.dropbox.iterdir()) != ["victim.txt"] or victim.read_bytes() != self.victim_bytes:
            found.append("the drop box or its victim file changed")
        if os.environ.get(self.env_name) != self.env_value:
            found.append("the host's environment changed")
        for name, listener in (("TCP", self.tcp), ("Unix", self.unix), ("abstract Unix", self.abstract)):
            if listener.connections:
                found.append(f"the {name} canary listener was reached: {listener.connections}")
        for directory, now in self._shared_dirs().items():
            before = self.tmp_before.get(directory, {})
            new = sorted(n for n, uid in now.items() if n not in before and self._foreign(n, uid))
            if new:
                found.append(f"new entries in {directory}: {new}")
        return found


# --------------------------------------------------------------------------- processes


def processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, real uid), zombies left out."""
    table: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            # /proc/PID is owned by the process's effective uid; a call's
            # real and effective uids are the same.
            uid = os.stat(f"/proc/{entry}").st_uid
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != b"Z":
            table[int(entry)] = (int(fields[1]), uid)
    return table


def _is_zygote(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"zygote.py" in fh.read()
    except OSError:
        return False


def _in_another_pid_namespace(pid: int) -> bool:
    """A container's process (the Docker backend runs each container as a
    call uid of its own too): no zygote makes pid namespaces, so a call's
    stray process would be in ours."""
    try:
        return os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
    except OSError:
        return False


def _strays(
    zygote: int, spares: int, owner_uid: int | None, exempt: set[int], previous: set[int] | None
) -> tuple[list[str], set[int]]:
    table = processes()
    children = {pid for pid, (ppid, _uid) in table.items() if ppid == zygote}
    found: list[str] = []
    for pid, (ppid, uid) in table.items():
        if pid in exempt or pid == zygote or pid in children:
            continue
        if ppid in children:
            found.append(f"pid {pid} (uid {uid}) is a child of the call process {ppid}")
        elif is_call_uid(uid) and not _is_zygote(ppid) and not _is_zygote(pid) and not _in_another_pid_namespace(pid):
            found.append(f"pid {pid} runs as call uid {uid} outside any zygote (parent {ppid})")
        elif owner_uid is not None and uid == owner_uid:
            found.append(f"pid {pid} runs as the jailed user {uid} (parent {ppid})")
    # Settled means exactly the spares wait, and (after a call) the one that
    # replaced the call's child is among them: until then the call's child
    # may still be exiting and would pass for a spare.
    if len(children) != spares or (previous is not None and not children - previous):
        found.append(
            f"the zygote has {len(children)} children, not its {spares} waiting spares "
            f"(before the call: {sorted(previous or ())}, now: {sorted(children)})"
        )
    return found, children


def settle(
    zygote: int,
    spares: int,
    *,
    owner_uid: int | None = None,
    exempt: set[int] | None = None,
    previous: set[int] | None = None,
    within: float = 10.0,
) -> tuple[list[str], set[int]]:
    """Wait until no process outlives the last call: the zygote's children
    are exactly its waiting spares (``previous``: the spares before the
    call, one of which took it and was replaced), no call-uid process lives
    outside a zygote, and (for an ordinary user, ``owner_uid``) no process
    of that user other than ``exempt``, the zygote and its spares. Returns
    what is still wrong after ``within`` seconds (empty: settled) and the
    spares."""
    end = time.monotonic() + within
    while True:
        found, children = _strays(zygote, spares, owner_uid, exempt or set(), previous)
        if not found or time.monotonic() > end:
            return found, children
        time.sleep(0.005)


def make_backend(**kwargs: Any) -> Any:
    """A restricted backend that honours ``policy="plain"``: the jail alone
    holds. (Older versions needed ``allow_plain=True`` for it.)"""
    import inspect

    from toolcrib.sandbox.restricted import RestrictedBackend

    if "allow_plain" in inspect.signature(RestrictedBackend).parameters:
        kwargs.setdefault("allow_plain", True)
    return RestrictedBackend(**kwargs)


@dataclass
class JailSession:
    """One backend and its canaries; `call` runs a job and lists every
    problem seen after it: a touched canary, a process that outlived the
    call, a sibling spare that died, a zygote that was replaced (a restart
    would otherwise hide a call that killed it)."""

    canaries: JailCanaries
    backend: Any
    spares_target: int
    owner_uid: int | None = None  # ordinary user: every other process of this uid is a stray
    exempt: set[int] = field(default_factory=set)
    zygote: int = 0
    spares: set[int] = field(default_factory=set)

    def start(self) -> list[str]:
        self.backend.start()
        self.zygote = int(self.backend.info()["zygote_pid"])
        found, self.spares = self._settle()
        return found

    def _settle(self, previous: set[int] | None = None) -> tuple[list[str], set[int]]:
        return settle(self.zygote, self.spares_target, owner_uid=self.owner_uid, exempt=self.exempt, previous=previous)

    def call(self, job: Any) -> tuple[Any, list[str]]:
        before = set(self.spares)
        result = self.backend.run(job)
        problems = self.canaries.problems(json.dumps(result.to_json(), ensure_ascii=False))
        missing = {"landlock", "seccomp"} - set(result.layers)
        if missing:
            problems.append(f"the call ran without {sorted(missing)} (layers: {list(result.layers)})")
        zygote = self.backend.info().get("zygote_pid")
        if zygote != self.zygote:
            problems.append(f"the zygote {self.zygote} was killed during the call (now {zygote})")
            self.zygote = int(zygote) if zygote else 0
            self.spares = self._settle()[1] if zygote else set()
            return result, problems
        strays, self.spares = self._settle(previous=before)
        problems += strays
        lost = before - self.spares
        if len(lost) > 1:
            problems.append(f"spares other than the call's died during the call: {sorted(lost)}")
        return result, problems
