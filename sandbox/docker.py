"""Docker backend: every call runs in its own throwaway, locked-down container.

A container serves exactly one call. It is created through docker-py with no
network, a read-only root, a small noexec tmpfs for /tmp, memory = memory+swap,
a CPU quota plus RLIMIT_CPU, a pids limit, file-size and open-file rlimits, all
capabilities dropped, no-new-privileges, a seccomp profile of our own (the
engine's default, futexes private only: `seccomp_profile`), a non-root user,
tini as PID 1, no host mounts, no Docker socket, no log driver (a tool's stderr never lands on
the host's disk) and the engine's auto-remove.

Speed comes from a small warm pool per set of limits: containers already
started, their harness blocked reading its single job from stdin through an
attached socket. A call takes one, writes the job, reads one frame (wire.py), and
the container exits and is removed while a filler thread starts a
replacement. The wall clock of a pooled call starts when the job is sent.

No leaks: every container is labelled with the owner's pid, process start
time, host and boot id. `close` (also run at interpreter exit for every
backend still open, so a CLI that just returns cleans up) stops the fillers,
cuts short a warm-up in progress, waits for any create/start call still in
the engine, then removes every container labelled with this process and waits
until the engine lists none: nothing is left in any state, including a
container created while the process was exiting. Each backend start removes
labelled containers whose owner is gone (a SIGKILLed owner cannot clean up).
A container whose owner dies also ends by itself: stdin closes (so a waiting
harness exits) and a running one hits the harness's own wall clock;
auto-remove then deletes it.

The pool, the reaper and the sweep (and the ownership labels they read) live
in `docker_pool.py`; this module makes containers and runs calls in them.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import json
import math
import os
import secrets
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .contract import Cancel, ErrorInfo, Job, Limits, Lock, PolicyName, Result, Status
from .docker_pool import (
    LABEL,
    LABEL_BACKEND,
    LABEL_BOOT,
    LABEL_HOST,
    LABEL_PID,
    LABEL_START,
    WarmPool,
    owner_labels,
    reap,
    remove_quietly,
    sweep,
)
from .image import ImageBuildError
from .inside import wire
from .inside.uids import SlotPool, UidsExhausted

__all__ = [
    "DockerBackend",
    "GRACE_SECONDS",
    "LABEL",
    "LABEL_BACKEND",
    "LABEL_BOOT",
    "LABEL_HOST",
    "LABEL_PID",
    "LABEL_START",
    "container_options",
    "host_config_options",
    "owner_labels",
    "run_once",
]

# How long past the tool's wall limit the host waits for the harness's own
# "wall" reply before it kills the container itself.
GRACE_SECONDS = 1.5
# Processes the sandbox itself needs beside the tool: tini and the harness.
_INFRA_PIDS = 3
# The image's own unprivileged user: what a container runs as when this
# process cannot allocate call uids (it is not root; see `_call_uids`).
_UID = "65534:65534"
_MIB = 1024 * 1024
_REPLY_SLACK = 16 * 1024
# The harness's first line (harness.READY): written once it is warm.
_READY = b"toolcrib-harness-ready"
_START_TIMEOUT = 60.0
# Containers started for one call before it is unavailable (see DockerBackend._run).
_START_ATTEMPTS = 2
# Bounds on `close`: a filler inside a create/start call is waited for this
# long; the final sweep keeps removing this process's containers this long.
_CLOSE_JOIN_SECONDS = 30.0
_SWEEP_SECONDS = 30.0

# The containers' seccomp profile: the engine's default with futexes allowed
# only with FUTEX_PRIVATE_FLAG (see the file's own comment and
# docs/sandbox-docker.md). Data, shipped beside this module.
SECCOMP_PROFILE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seccomp-docker.json")


@functools.cache
def seccomp_profile() -> str:
    """The profile as compact JSON, read once per process (the engine takes
    the text itself in ``security_opt``, not a path)."""
    with open(SECCOMP_PROFILE_PATH, encoding="utf-8") as fh:
        return json.dumps(json.load(fh), separators=(",", ":"))


# Backends not closed yet; the interpreter's exit closes them (see `close`).
_OPEN: weakref.WeakSet[DockerBackend] = weakref.WeakSet()


@atexit.register
def _close_open_backends() -> None:
    # Daemon threads still run during atexit, so the fillers can be joined.
    # A forked child inherits the set but not the threads or the containers:
    # only the process that made a backend closes it.
    for backend in list(_OPEN):
        if backend._pid == os.getpid():
            backend.close()


_UIDS: SlotPool | None = None
_UIDS_LOCK = threading.Lock()


def _call_uids() -> SlotPool | None:
    """This process's share of the machine-wide call uids (`uids.py`), or
    None when it is not root (the block directory is root's): then every
    container runs as the image's user, as before."""
    global _UIDS
    if os.geteuid() != 0:
        return None
    with _UIDS_LOCK:
        if _UIDS is None:
            _UIDS = SlotPool()
        return _UIDS


def _take_uid() -> int | None:
    """A uid no other live call on the host has (held until `_release_uid`,
    once the container is removed), or None: the image's shared user."""
    pool = _call_uids()
    if pool is None:
        return None
    try:
        return pool.take()
    except (OSError, UidsExhausted):
        return None  # no block to be had: the image's user, as before


def _release_uid(uid: int | None) -> None:
    if uid is not None and _UIDS is not None:
        _UIDS.release(uid)


def host_config_options(limits: Limits, *, auto_remove: bool = True) -> dict[str, Any]:
    """Keyword arguments for ``APIClient.create_host_config`` for one call."""
    from docker.types import LogConfig, Ulimit

    cpu_seconds = max(1, math.ceil(limits.cpu))
    fsize = limits.disk * _MIB
    options: dict[str, Any] = {
        "network_mode": "none",
        "read_only": True,
        "mem_limit": limits.memory * _MIB,
        # Equal to mem_limit: no swap, so a memory bomb is killed, not paged.
        "memswap_limit": limits.memory * _MIB,
        "nano_cpus": 1_000_000_000,
        "pids_limit": limits.pids + _INFRA_PIDS,
        "ulimits": [
            # soft: SIGXCPU (reported as a cpu limit); hard: SIGKILL backstop.
            Ulimit(name="cpu", soft=cpu_seconds, hard=cpu_seconds + 1),
            Ulimit(name="fsize", soft=fsize, hard=fsize),
            Ulimit(name="nofile", soft=256, hard=256),
            Ulimit(name="core", soft=0, hard=0),
        ],
        "cap_drop": ["ALL"],
        # Shared futexes are keyed by file and offset: two containers of one
        # image (the same libc file in the image's layer) met on libc's text.
        # No descriptor channel like the restricted backend's 0-2: each call
        # has a fresh container whose stdio is its own attach stream, shared
        # with no other call.
        "security_opt": ["no-new-privileges", f"seccomp={seccomp_profile()}"],
        "init": True,
        "auto_remove": auto_remove,
        # No /dev/shm: the only writable place is the size-limited /tmp.
        "ipc_mode": "none",
        "log_config": LogConfig(type="none"),
        "privileged": False,
    }
    if limits.disk > 0:
        # nr_inodes: otherwise tmpfs allows millions of empty files.
        inodes = max(256, limits.disk * 128)
        options["tmpfs"] = {"/tmp": f"rw,noexec,nosuid,nodev,size={limits.disk}m,nr_inodes={inodes},mode=1777"}
    return options


def container_options(
    image: str, limits: Limits, host_config: dict[str, Any], *, owner: str | None = None, uid: int | None = None
) -> dict[str, Any]:
    """Keyword arguments for ``APIClient.create_container`` for one call
    (`owner`: the id of the backend object that makes it, as a label; `uid`:
    the call's own uid and gid, from `_take_uid`, else the image's user).
    Any uid works: the harness and the site are readable by all, /tmp is a
    tmpfs of mode 1777, and nothing else is writable."""
    return {
        "image": image,
        "user": f"{uid}:{uid}" if uid is not None else _UID,
        # Only what the image itself sets: nothing from the host leaks in.
        "environment": [],
        "working_dir": "/tmp",
        "hostname": "sandbox",
        # With detach left False, docker-py also sets StdinOnce: the
        # container's stdin closes when the host detaches, so a warm
        # container whose owner died reads EOF and exits.
        "stdin_open": True,
        "tty": False,
        "network_disabled": True,
        "labels": owner_labels(owner),
        "host_config": host_config,
    }


@dataclass
class _Container:
    """One started container with an attached stdin/stdout socket."""

    id: str
    response_sock: Any
    sock: socket.socket
    limits: Limits
    reader: _Reader
    ready: bool = False
    started: float = field(default_factory=time.monotonic)
    uid: int | None = None  # the call uid it runs as, released once it is removed

    def wait_ready(self, deadline: float) -> bool:
        """Consume the harness's ready line (True once it has arrived)."""
        if not self.ready:
            outcome, line = self.reader.read_line(deadline)
            self.ready = outcome == "line" and line == _READY
        return self.ready

    def wake(self) -> None:
        """End a read in progress on this container's socket (it reads EOF)."""
        _shutdown_socket(self)


def _raw_socket(attached: Any) -> socket.socket:
    sock: socket.socket = attached._sock if hasattr(attached, "_sock") else attached
    return sock


def _spawn(
    api: Any,
    image: str,
    limits: Limits,
    command: list[str] | None = None,
    *,
    auto_remove: bool = True,
    owner: str | None = None,
) -> _Container:
    host_config = api.create_host_config(**host_config_options(limits, auto_remove=auto_remove))
    uid = _take_uid()
    options = container_options(image, limits, host_config, owner=owner, uid=uid)
    if command is not None:
        options["command"] = command
    try:
        cid = api.create_container(**options)["Id"]
    except BaseException:
        _release_uid(uid)
        raise
    try:
        attached = api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stream": 1})
        api.start(cid)
    except BaseException:
        remove_quietly(api, cid)
        _release_uid(uid)
        raise
    raw = _raw_socket(attached)
    return _Container(cid, attached, raw, limits, _Reader(raw, 1 << 20), uid=uid)


def _shutdown_socket(container: _Container) -> None:
    """Wake a thread blocked reading this container's socket (it reads EOF)."""
    try:
        container.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _close_socket(container: _Container) -> None:
    for s in (container.sock, container.response_sock):
        try:
            s.close()
        except Exception:  # noqa: BLE001 - closing twice is fine
            pass


class _Reader:
    """Demultiplexes Docker's attach stream (8-byte frame headers, tty off)."""

    def __init__(self, sock: socket.socket, cap: int) -> None:
        self.sock, self.cap = sock, cap
        self.raw = bytearray()
        self.out = bytearray()

    def read_line(self, deadline: float) -> tuple[str, bytes]:
        """("line", bytes) | ("eof", partial) | ("timeout", b"") | ("output", b"")."""
        while True:
            newline = self.out.find(b"\n")
            if newline >= 0:
                line = bytes(self.out[:newline])
                del self.out[: newline + 1]
                return "line", line
            if len(self.out) > self.cap:
                return "output", b""
            ended = self._receive(deadline)
            if ended is not None:
                return ended

    def read_exact(self, size: int, deadline: float) -> tuple[str, bytes]:
        """("data", exactly `size` bytes) | ("eof", partial) | ("timeout", b"")."""
        while len(self.out) < size:
            ended = self._receive(deadline)
            if ended is not None:
                return ended
        # One copy (a slice of a bytearray is a copy of its own): a reply at
        # the output cap is held at most twice while it moves.
        with memoryview(self.out) as view:
            data = bytes(view[:size])
        del self.out[:size]
        return "data", data

    def _receive(self, deadline: float) -> tuple[str, bytes] | None:
        """Read one chunk into the demultiplexed output; ("timeout", b"") or
        ("eof", what there is) when the stream cannot give more, else None."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "timeout", b""
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return "timeout", b""
        except OSError:
            chunk = b""
        if not chunk:
            return "eof", bytes(self.out)
        self.raw += chunk
        self._demux()
        return None

    def read_all(self, deadline: float) -> bytes:
        while len(self.out) <= self.cap:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            self.raw += chunk
            self._demux()
        return bytes(self.out[: self.cap])

    def _demux(self) -> None:
        while len(self.raw) >= 8:
            size = int.from_bytes(self.raw[4:8], "big")
            if len(self.raw) < 8 + size:
                return
            if self.raw[0] == 1:
                self.out += self.raw[8 : 8 + size]
            del self.raw[: 8 + size]


def run_once(
    client: Any, image: str, limits: Limits, command: list[str], *, timeout: float = 30.0
) -> tuple[int, bytes]:
    """Run `command` in one locked-down container (the same settings as a
    call) and return (exit code, stdout). Used by `doctor`'s probe."""
    api = client.api
    container = _spawn(api, image, limits, command, auto_remove=False)
    try:
        container.sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    try:
        out = _Reader(container.sock, 1 << 20).read_all(time.monotonic() + timeout)
        try:
            code = int(api.wait(container.id, timeout=max(1, int(timeout)))["StatusCode"])
        except Exception:  # noqa: BLE001 - a probe that will not end counts as failed
            code = -1
        return code, out
    finally:
        _close_socket(container)
        remove_quietly(api, container.id)
        _release_uid(container.uid)


class DockerBackend:
    """Runs each job in a fresh container of the toolcrib sandbox image.

    `pool_size` warm containers are kept per image and set of limits in use
    (at most `max_pools` such pools, least recently used dropped first);
    `pool_size=0` creates every container on demand. `image` overrides the
    content-hashed tag of this install. Never raises from `run`.

    A job with a ``lock`` runs in the lock's runtime image
    (`image.build_runtime_image`: the sandbox image plus the lock's site
    directory), with exactly the same container settings. A missing runtime
    image is built on the first call that needs it (``build_runtime``,
    progress lines to ``progress``), or that call is ``unavailable`` naming
    the command that builds it (`prepare` with ``build=False``).
    """

    name = "docker"

    def __init__(
        self,
        pool_size: int = 2,
        image: str | None = None,
        max_pools: int = 4,
        fillers: int = 2,
        build_runtime: bool = True,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.pool_size = max(0, int(pool_size))
        self.max_pools = max(1, int(max_pools))
        self.build_runtime = build_runtime
        self.progress = progress
        self._image_override = image
        # Lock digest -> (runtime image tag, image id); one build at a time.
        self._runtime: dict[str, tuple[str, str]] = {}
        self._build_lock = threading.Lock()
        self._client: Any = None
        self._image: str | None = None
        self._image_id: str | None = None
        self._unavailable: str | None = "not connected"
        self._connect_lock = threading.Lock()
        self._owner = uuid.uuid4().hex
        self._pid = os.getpid()
        self.reaped = 0
        self.start_retries = 0  # containers started again because one never became ready
        self._has_reaped = False
        self._pool: WarmPool[_Container] = WarmPool(
            self.pool_size,
            self.max_pools,
            max(1, int(fillers)),
            spawn=lambda image, limits: _spawn(self._client.api, image, limits, owner=self._owner),
            dispose=self._dispose,
            usable=lambda: self._unavailable is None,
            refused=_is_refusal,
            lost=self._lost_engine,
            start_timeout=_START_TIMEOUT,
            join_seconds=_CLOSE_JOIN_SECONDS,
        )
        _OPEN.add(self)
        self._connect()

    # -- connection -----------------------------------------------------

    @property
    def image(self) -> str | None:
        """The image tag in use (None until the engine answered)."""
        return self._image

    @property
    def image_id(self) -> str | None:
        return self._image_id

    @property
    def unavailable_reason(self) -> str | None:
        return self._unavailable

    def _connect(self) -> bool:
        """Connect (or reconnect) to the engine and find the image. The first
        success reaps dead owners' containers and starts the default pool."""
        with self._connect_lock:
            if self._unavailable is None:
                return True
            if not self._try_connect():
                return False
            first = not self._has_reaped
            self._has_reaped = True
        if first:
            self.reaped = self.reap()
        self._want(Limits())
        return True

    def _try_connect(self) -> bool:
        """One attempt: engine ping, then the image (caller holds the lock)."""
        try:
            import docker

            from .image import check_engine_socket, find_image, image_tag

            if self._client is None:
                check_engine_socket()  # docker-py would leak the socket of a failed connect
                self._client = docker.from_env(timeout=60, max_pool_size=32)
            self._client.ping()
        except Exception as exc:  # noqa: BLE001 - any failure means "no engine"
            self._drop_client()
            self._unavailable = f"no Docker engine answers ({' '.join(str(exc).split())[:200]})"
            return False
        try:
            tag = self._image_override or image_tag()
            info = find_image(self._client, tag)
        except Exception as exc:  # noqa: BLE001
            self._unavailable = f"cannot inspect the sandbox image: {' '.join(str(exc).split())[:200]}"
            return False
        if info is None:
            self._unavailable = (
                f"the sandbox image {tag} is missing: run `toolcrib image build --offline` (or `toolcrib image build`)"
            )
            return False
        self._image, self._image_id = tag, info.get("Id")
        self._unavailable = None
        return True

    def _drop_client(self) -> None:
        """Close the client (its connection pool to the engine) and forget
        it: the next attempt connects afresh, and no socket is left to the
        garbage collector."""
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing a broken client is best effort
                pass

    def _lost_engine(self, exc: BaseException) -> None:
        self._runtime.clear()  # looked up again once the engine answers
        with self._connect_lock:
            self._unavailable = f"the Docker engine failed: {' '.join(str(exc).split())[:200]}"

    # -- what callers ask (contract.Backend) ----------------------------

    def default_policy(self, declared: PolicyName) -> PolicyName:
        """ "plain": the container is the boundary; a caller may still ask
        for "restricted" as defence in depth."""
        return "plain"

    def start(self) -> None:
        """Connect to the engine and start the default pool now.

        Raises RuntimeError naming why the backend cannot run."""
        if not self._connect():
            raise RuntimeError(self._unavailable or "the Docker engine is unavailable")

    def health(self) -> dict[str, Any]:
        """Whether calls can run (engine and image), and which image;
        `doctor` reads the engine itself for the container's limits."""
        available = self._connect()
        return {
            "backend": self.name,
            "available": available,
            **({} if available else {"error": self._unavailable or "unavailable"}),
            "image": self._image,
            "image_id": self._image_id,
            "pool_size": self.pool_size,
        }

    # -- reaper and pool (docker_pool.py) --------------------------------

    def reap(self) -> int:
        """Remove sandbox containers left by processes that are gone
        (`docker_pool.reap`); returns how many were removed."""
        return reap(self._client.api) if self._client is not None else 0

    def _key(self, limits: Limits, image: str | None = None) -> tuple[str, Limits]:
        return (image or self._image or "", limits)

    def _want(self, limits: Limits, image: str | None = None) -> None:
        """Keep a warm pool for these limits (and image: default, the
        sandbox image)."""
        self._pool.want(self._key(limits, image))

    def _dispose(self, container: _Container) -> None:
        _close_socket(container)
        if self._client is not None:
            remove_quietly(self._client.api, container.id)
        # Removed (force): none of its processes is left with that uid.
        _release_uid(container.uid)

    def warm(self, limits: Limits | None = None, timeout: float = 30.0, image: str | None = None) -> bool:
        """Wait until the pool for `limits` (and `image`, default the sandbox
        image) is full (for benchmarks and tests)."""
        limits = limits or Limits()
        if not self._connect():
            return False
        return self._pool.wait_full(self._key(limits, image), timeout)

    # -- calls ----------------------------------------------------------

    def run(self, job: Job, cancel: Cancel | None = None) -> Result:
        """Run one job in a container of its own; never raises.
        Cancelling ``cancel`` kills the container."""
        started = time.perf_counter()
        try:
            return self._run(job, started, cancel)
        except Exception as exc:  # noqa: BLE001 - the contract: every outcome is a Result
            self._lost_engine(exc)
            return self._unavailable_result(f"the Docker engine failed: {' '.join(str(exc).split())[:300]}", started)

    def _unavailable_result(self, message: str, started: float) -> Result:
        return Result(
            status="unavailable",
            error=ErrorInfo(type="SandboxUnavailable", message=message),
            backend=self.name,
            duration_ms=(time.perf_counter() - started) * 1000,
        )

    def _run(self, job: Job, started: float, cancel: Cancel | None = None) -> Result:
        if self._pool.closed:
            return self._unavailable_result("the Docker backend is closed", started)
        if not self._connect():
            return self._unavailable_result(self._unavailable or "unavailable", started)
        assert self._image is not None
        # A fresh key per call: the harness's frame must carry it (see wire.frame).
        key = secrets.token_hex(wire.KEY_CHARS // 2)
        payload = wire.job_message(
            json.dumps(job.wire(), ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode(), key
        )
        limits = job.limits
        image, image_id = self._image, self._image_id
        if job.lock is not None:
            try:
                image, image_id = self.prepare(job.lock)
            except ImageBuildError as exc:
                return self._unavailable_result(str(exc), started)
        container = self._pool.take((image, limits)) if self.pool_size else None
        if container is not None:
            try:
                container.sock.settimeout(_START_TIMEOUT)
                container.sock.sendall(payload)
            except OSError:
                # The warm container died while waiting (engine restart...).
                self._pool.discard(container)
                container = None
        # A container that never says it is ready has run nothing of the
        # job (it goes out only after the ready line): starting another once
        # is safe. Twice not started is the engine's failure: unavailable.
        attempt = 0
        while container is None:
            attempt += 1
            try:
                container = _spawn(self._client.api, image, limits, owner=self._owner)
            except Exception as exc:
                if not _is_refusal(exc):
                    raise
                # The engine refused these limits (e.g. below its minimum memory).
                return self._result(
                    "error",
                    0.0,
                    error=ErrorInfo(
                        type="SandboxError",
                        message=f"the engine refused the container: {' '.join(str(exc).split())[:300]}",
                    ),
                )
            try:
                # On demand: the job goes out once the harness is ready, so
                # start-up is never on the tool's clock (here or inside).
                if not container.wait_ready(time.monotonic() + _START_TIMEOUT):
                    reason, oom = self._start_failure(container)
                    self._pool.discard(container)
                    if oom:
                        return self._result("limit", 0.0, limit="memory")
                    if attempt < _START_ATTEMPTS:
                        self.start_retries += 1
                        container = None
                        continue
                    return self._unavailable_result(
                        f"the sandbox container did not start ({reason}; tried {attempt} times)", started
                    )
                container.sock.settimeout(_START_TIMEOUT)
                container.sock.sendall(payload)
            except OSError:
                pass  # it died at once; _collect reads EOF and asks the engine why
            except BaseException:
                if container is not None:
                    self._pool.discard(container)
                raise
        sent = time.perf_counter()
        try:
            result = self._collect(container, limits, sent, cancel, restricted=job.policy == "restricted", key=key)
            # A runtime image: the evidence and the audit name it.
            if image_id is None or image_id == self._image_id:
                return result
            return dataclasses.replace(result, environment={**result.environment, "image_digest": image_id})
        finally:
            self._pool.discard(container)

    def prepare(
        self, lock: Lock, *, build: bool | None = None, progress: Callable[[str], None] | None = None
    ) -> tuple[str, str]:
        """The runtime image for `lock` as (tag, image id), built now if it
        is missing and ``build`` (default: ``build_runtime``) allows.
        Raises `image.RuntimeImageMissing` (naming the command that builds
        it) or `image.ImageBuildError`."""
        from .image import RuntimeImageMissing, build_runtime_image, find_image, runtime_build_command, runtime_tag

        if not self._connect():
            raise ImageBuildError(self._unavailable or "the Docker engine is unavailable")
        assert self._image is not None
        digest = lock.digest()
        known = self._runtime.get(digest)
        if known is not None:
            return known
        tag = runtime_tag(lock, self._image)
        with self._build_lock:
            info = find_image(self._client, tag)
            if info is None:
                if not (self.build_runtime if build is None else build):
                    raise RuntimeImageMissing(tag, runtime_build_command(lock))
                build_runtime_image(lock, self._client, base=self._image, progress=progress or self.progress)
                info = find_image(self._client, tag)
                if info is None:
                    raise ImageBuildError(f"the engine did not record {tag} after the build")
            self._runtime[digest] = (tag, str(info.get("Id")))
        return self._runtime[digest]

    def _start_failure(self, container: _Container) -> tuple[str, bool]:
        """Why a container never became ready, in the engine's words where it
        has any (its state's error, exit code, last lines of stderr), and
        whether it was killed for memory."""
        api = self._client.api
        try:
            state = api.inspect_container(container.id).get("State") or {}
        except Exception:  # noqa: BLE001 - auto-removed already
            return "it exited and the engine removed it before its harness was ready", False
        if state.get("OOMKilled"):
            return "killed for memory", True
        parts: list[str] = []
        if state.get("Error"):
            parts.append(f"the engine said: {' '.join(str(state['Error']).split())[:300]}")
        if state.get("Running"):
            parts.append(f"its harness did not answer within {_START_TIMEOUT:.0f} s")
        elif state.get("ExitCode") is not None:
            parts.append(f"it exited with code {state['ExitCode']} (engine state: {state.get('Status')})")
        try:
            said = api.logs(container.id, stdout=False, stderr=True, tail=3)
            text = " ".join(said.decode("utf-8", "replace").split()) if isinstance(said, bytes) else ""
        except Exception:  # noqa: BLE001 - gone meanwhile
            text = ""
        if text:
            parts.append(f"stderr: {text[-300:]}")
        return "; ".join(parts) or "the engine gave no reason", False

    def _collect(
        self,
        container: _Container,
        limits: Limits,
        sent: float,
        cancel: Cancel | None = None,
        *,
        restricted: bool = False,
        key: str = "",
    ) -> Result:
        deadline = time.monotonic() + limits.wall + GRACE_SECONDS
        container.reader.cap = limits.output * 1024 + _REPLY_SLACK
        # A cancelled caller kills the container; the read below then ends on EOF.
        forget = cancel.on_cancel(lambda: self._kill(container)) if cancel is not None else None
        try:
            outcome, line = container.reader.read_line(deadline)
            raw: bytes | None = None
            facts: dict[str, Any] | None = None
            problem: str | None = None
            if outcome == "line":
                try:
                    facts, size = wire.parse_frame_header(line, key)
                except wire.ProtocolError as exc:
                    problem = f"bad frame from the sandbox: {exc}"
                    size = None
                if size is not None:
                    if size > container.reader.cap:
                        outcome = "output"
                    else:
                        outcome, raw = container.reader.read_exact(size, deadline)
                        if outcome == "data":
                            # The frame's end, read apart: no third copy of the reply.
                            outcome, end = container.reader.read_exact(1, deadline)
                            if outcome == "data" and end != b"\n":
                                problem, raw = "bad frame from the sandbox: the reply does not end its frame", None
        finally:
            if forget is not None:
                forget()
        elapsed = (time.perf_counter() - sent) * 1000
        if problem is not None and facts is None:
            return self._result("error", elapsed, error=ErrorInfo(type="SandboxProtocolError", message=problem))
        if facts is not None and outcome in ("line", "data"):
            return self._outcome(facts, raw, limits, elapsed, restricted=restricted, problem=problem)
        if outcome == "timeout":
            self._kill(container)
            return self._result("limit", elapsed, limit="wall")
        if outcome == "output":
            self._kill(container)
            return self._result("limit", elapsed, limit="output")
        # EOF without a whole frame: the harness itself died. Ask the engine why.
        if self._oom_killed(container):
            return self._result("limit", elapsed, limit="memory")
        return self._result(
            "error", elapsed, error=ErrorInfo(type="SandboxError", message="the sandbox exited without a reply")
        )

    def _kill(self, container: _Container) -> None:
        try:
            self._client.api.kill(container.id)
        except Exception:  # noqa: BLE001 - already gone
            pass

    def _oom_killed(self, container: _Container) -> bool:
        try:
            state = self._client.api.inspect_container(container.id).get("State") or {}
        except Exception:  # noqa: BLE001 - auto-removed already
            return False
        return bool(state.get("OOMKilled"))

    def _result(self, status: Status, elapsed: float, **fields: Any) -> Result:
        return Result(
            status=status,
            backend=self.name,
            duration_ms=elapsed,
            environment={"image_digest": self._image_id} if self._image_id else {},
            **fields,
        )

    def _outcome(
        self,
        facts: dict[str, Any],
        raw: bytes | None,
        limits: Limits,
        elapsed: float,
        *,
        restricted: bool,
        problem: str | None = None,
    ) -> Result:
        """The call's Result from the harness's facts and the child's reply,
        both through the wire (`wire.classify`): the child's words alone
        decide no limit and, under plain, no refusal."""
        reply = None
        if raw:
            try:
                reply = wire.parse_reply(raw, cap=limits.output * 1024)
            except wire.OverCap:
                return self._result("limit", elapsed, limit="output")  # measured here, not claimed
            except wire.ProtocolError as exc:
                problem = f"bad reply from the sandbox: {exc}"
        fields = wire.classify(reply, facts, restricted=restricted, limits=limits.to_json(), problem=problem)
        status = fields.pop("status")
        if status != "ok":
            fields["result"] = None
        return self._result(status, elapsed, **fields)

    def close(self) -> None:
        """Stop the fillers and remove every container of this backend; when
        it returns the engine lists none (see the module docstring)."""
        if not self._pool.close():
            return
        _OPEN.discard(self)
        # The pool's threads are stopped (or past their join bound): nothing
        # else uses the client once the sweep is done, so its connection pool
        # is closed here, even when the sweep fails.
        client = self._client
        if client is not None:
            try:
                sweep(client.api, self._owner, _SWEEP_SECONDS)
            finally:
                try:
                    client.close()
                except Exception:  # noqa: BLE001 - closing is best effort
                    pass


def _is_refusal(exc: BaseException) -> bool:
    """The engine answered but refused the request (HTTP 4xx other than a
    missing image): the settings are at fault, not the engine."""
    from docker.errors import APIError, ImageNotFound

    return isinstance(exc, APIError) and not isinstance(exc, ImageNotFound) and exc.is_client_error()
