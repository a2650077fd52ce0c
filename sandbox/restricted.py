"""The restricted backend, host side: talks to the zygote (`zygote.py`),
which forks fresh, OS-limited children, one per call, that run the job under
the RestrictedPython policy (`execute.py`). See docs/sandbox-restricted.md.

Per call the host sends one control message carrying two new sockets: the
child reads the job from and writes its reply to the *call* socket; the
zygote writes how the child ended to the *status* socket. The host never runs
tool code and never holds an object the sandbox made: it reads a bounded
number of bytes, ``json.loads`` them, checks their shape and builds a
`Result`. A complete reply settles the call; otherwise the zygote's trailer
(signal, who killed the child and why, CPU used) is mapped to a status here.
"""

from __future__ import annotations

import array
import importlib.util
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .code_cache import CodeCache
from .contract import Cancel, ErrorInfo, Job, Limits, Lock, PolicyName, Result
from .default_backend import JAIL_OFF_ENV, jail_reported_off
from .inside import precompiled, wire
from .inside.preload import THREAD_ENV
from .inside.zygote import OUTPUT_SLACK, TRAILER_MAX, ZYGOTE_PATH

__all__ = ["JAIL_LAYERS", "LOCK_IDLE_SECONDS", "WEAK_JAIL_ENV", "RestrictedBackend"]

# The layers without which a call does not run (fail closed): Landlock (no
# filesystem, no TCP, scoped sockets and signals) and the seccomp allowlist.
JAIL_LAYERS: tuple[str, ...] = ("landlock", "seccomp")
# The operator's explicit opt-in to run restricted-policy calls without them
# (old kernel, a container without seccomp); the audit records the layers
# each call really had.
WEAK_JAIL_ENV = "TOOLCRIB_ALLOW_WEAK_JAIL"

# A lock's zygote (its packages imported, tens to hundreds of MiB) is stopped
# after this many seconds without a call; the next call starts it again.
LOCK_IDLE_SECONDS = 300.0
# At most this many lock zygotes run at once (the least recently used idle
# one stops; never one with a call in flight, so while all are busy there may
# be more for a while, until the idle thread trims).
_MAX_LOCK_ZYGOTES = 4

# The environment of the standard library's zygote (a lock's gets THREAD_ENV):
# the dynamic linker binds every symbol when the zygote starts, so its
# children find them bound instead of each resolving (and writing, so copying
# the page of) every libc and libpython entry the zygote itself never called:
# some 17 page faults a call (bench/profile_call.py). The zygote removes it
# from its environment before a child exists (`zygote.main`). Not for a lock's
# zygote: binding all of numpy's or pandas's symbols would slow its start.
ZYGOTE_ENV = {"LD_BIND_NOW": "1"}

_LEN = struct.Struct(">I")
# Zygotes for calls side by side (`RestrictedBackend(zygotes=)`), unless the
# machine has fewer cores.
_DEFAULT_ZYGOTES = 2

Materialize = Callable[[Lock], Path]


class _Unavailable(Exception):
    """The zygote cannot be started or reached. ``reason``: the zygote's own
    word on why it did not start (a lock's package error), when it said one."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


def _library_paths() -> list[str]:
    """Where RestrictedPython is installed, for the zygote's sys.path.

    The zygote runs with ``-S``: `site` (and the editable-install finder it
    loads) would cost it more start-up time than everything else together.
    """
    spec = importlib.util.find_spec("RestrictedPython")
    if spec is None or not spec.submodule_search_locations:
        return []
    return [os.path.dirname(os.path.abspath(next(iter(spec.submodule_search_locations))))]


class _Zygote:
    """One running zygote process and its control socket."""

    def __init__(
        self,
        python: str,
        start_timeout: float,
        spares: int,
        extra: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.last_used = time.monotonic()
        # Calls in flight, counted from the moment the backend hands this
        # zygote to a call (under the backend's lock) until the call ends:
        # neither an idle stop nor an eviction touches a busy zygote.
        self.busy = 0
        try:
            self.proc = subprocess.Popen(
                [python, "-I", "-S", ZYGOTE_PATH, str(theirs.fileno()), str(spares), *extra, *_library_paths()],
                pass_fds=(theirs.fileno(),),
                # The host's environment (and its secrets) stays here; a
                # lock's zygote gets only the thread caps of THREAD_ENV, the
                # standard library's only ZYGOTE_ENV.
                env=dict(ZYGOTE_ENV if env is None else env),
                # No working directory of its own (that was one temp dir left
                # behind per process): the children can open nothing anyway.
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,  # terminal signals are for the host
            )
        except OSError as exc:
            ours.close()
            raise _Unavailable(f"cannot start the zygote with {python}: {exc}") from exc
        finally:
            theirs.close()
        self.control = ours
        try:
            ours.settimeout(start_timeout)
            try:
                data = ours.recv(65536)
            except TimeoutError:
                data = b""
            facts = json.loads(data) if data else None
            if not isinstance(facts, dict) or facts.get("ready") is not True:
                why = facts.get("error") if isinstance(facts, dict) else None
                reason = why if isinstance(why, str) and why else None
                raise _Unavailable(f"the zygote did not start: {reason or self._stderr_tail()}", reason)
            ours.settimeout(None)
        except BaseException:
            self.stop()
            raise
        assert self.proc.stderr is not None
        self.proc.stderr.close()
        self.facts: dict[str, Any] = facts
        self.layers: tuple[str, ...] = _layers_in_force(facts)
        self.missing: dict[str, str] = _missing_layers(facts)

    def _stderr_tail(self) -> str:
        self.proc.kill()
        self.proc.wait()
        assert self.proc.stderr is not None
        tail = self.proc.stderr.read()[-2000:].decode(errors="replace").strip()
        return tail.splitlines()[-1] if tail else f"it exited with code {self.proc.returncode}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        # Closing the control socket is the stop signal: the zygote kills its
        # children and exits. SIGKILL only if it does not.
        self.control.close()
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stderr is not None and not self.proc.stderr.closed:
            self.proc.stderr.close()


def _layers_in_force(facts: dict[str, Any]) -> tuple[str, ...]:
    """What every child of this zygote has, from the start-up probe (a real
    child that went through the lock-down and the jail)."""
    layers = [
        "empty_env",
        "process_group" if facts.get("own_group") else "",
        "rlimits",
        "no_new_privs" if facts.get("no_new_privs") else "",
        "uid" if facts.get("uid_switched") else "",
        "netns" if facts.get("netns") else "",
    ]
    checks = facts.get("jail_checks") or {}
    jail = [layer for layer in facts.get("jail") or () if layer in JAIL_LAYERS]
    if facts.get("empty_root"):
        jail.append("empty_root")
    # Believe the jail only if the probe saw it refuse an open and a socket.
    if not (checks.get("no_open") and checks.get("no_socket")):
        jail = []
    return tuple(layer for layer in layers + jail if layer)


def _missing_layers(facts: dict[str, Any]) -> dict[str, str]:
    """Each required layer that is not in force, and why."""
    in_force = _layers_in_force(facts)
    errors = facts.get("jail_errors") or {}
    missing: dict[str, str] = {}
    if "seccomp" not in in_force:
        missing["seccomp"] = str(errors.get("seccomp") or "the start-up probe did not see it refuse access")
    # The filesystem: Landlock, or where the kernel has none, an empty root.
    if "landlock" not in in_force and "empty_root" not in in_force:
        why = str(errors.get("landlock") or "the start-up probe did not see it refuse access")
        if facts.get("empty_root_error"):
            why += f"; and no empty root instead: {facts['empty_root_error']}"
        missing["landlock"] = why
    return missing


def _hang_up(*socks: socket.socket) -> None:
    for sock in socks:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed


def _layer_report(facts: dict[str, Any]) -> list[dict[str, Any]]:
    """Every layer, in force or not, with a word on each (for `doctor`)."""
    in_force = _layers_in_force(facts)
    missing = _missing_layers(facts)
    landlock = facts.get("landlock") or {}
    details = {
        "landlock": f"ABI {landlock.get('abi')}: every filesystem right, TCP bind/connect, abstract sockets "
        "and signals scoped"
        if landlock
        else "",
        "seccomp": f"allowlist of {facts.get('seccomp_allowed')} system calls, and "
        f"{facts.get('seccomp_conditional')} more only with given arguments; EPERM for the rest",
        "empty_root": "no Landlock here: the root is an empty, read-only tmpfs in a private mount namespace"
        if facts.get("empty_root")
        else "not needed: Landlock is in force"
        if "landlock" in in_force
        else str(facts.get("empty_root_error") or ""),
        "netns": f"own network namespace ({facts.get('netns_via')}), only lo, down"
        if facts.get("netns")
        else str(facts.get("netns_error") or ""),
        "uid": f"unprivileged uid per call slot (e.g. {facts.get('uid')})"
        if facts.get("uid_switched")
        else "toolcrib is not root: the child keeps the caller's uid",
        "no_new_privs": "no set-uid or file capability can add privileges",
        "rlimits": "CPU, address space, file size, descriptors, no new processes; soft = hard",
        "process_group": "own session and process group, killed as a whole",
        "empty_env": "the zygote starts with an empty environment",
    }
    report = []
    for layer in (
        "landlock",
        "empty_root",
        "seccomp",
        "netns",
        "uid",
        "no_new_privs",
        "rlimits",
        "process_group",
        "empty_env",
    ):
        on = layer in in_force
        detail = details[layer] if on or layer not in missing else missing[layer]
        report.append({"layer": layer, "in_force": on, "required": layer in JAIL_LAYERS, "detail": detail})
    return report


def _recv_exact(sock: socket.socket, size: int, deadline: float) -> bytes | None:
    """`size` bytes, or None on EOF. Raises TimeoutError past the deadline."""
    data = bytearray()
    while len(data) < size:
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        chunk = sock.recv(min(size - len(data), 1 << 20))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def _recv_capped(sock: socket.socket, cap: int, deadline: float) -> bytes | None:
    """Everything until EOF, or None once more than `cap` bytes arrive (never
    holding more than `cap` + 1: the cap is enforced while the reply streams,
    not after). Raises TimeoutError past the deadline."""
    data = bytearray()
    while True:
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        chunk = sock.recv(min(1 << 16, cap + 1 - len(data)))
        if not chunk:
            return bytes(data)
        data += chunk
        if len(data) > cap:
            return None


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"status": "error", "error": ErrorInfo(type=kind, message=message)}


def _unavailable(message: str) -> dict[str, Any]:
    return {"status": "unavailable", "error": ErrorInfo(type="SandboxUnavailable", message=message)}


def _read_reply(raw: bytes, cap: int) -> tuple[dict[str, Any] | None, str | None]:
    """The child's reply through the wire's checks: (reply, None), or (None,
    why not) when it is missing or refused."""
    if not raw:
        return None, None
    try:
        return wire.parse_reply(raw, cap=cap), None
    except wire.OverCap:
        raise  # the output limit, measured here: the caller says so
    except wire.ProtocolError as exc:
        return None, f"the sandboxed process wrote a bad reply: {exc}"


def _usage(facts: dict[str, Any]) -> dict[str, str]:
    """A measured call's use (`Job.measure`) as Result.environment entries:
    CPU seconds (user + system) and the peak resident memory above what the
    child started with, in MiB."""
    grown = max(0, int(facts.get("maxrss_kib") or 0) - int(facts.get("baseline_rss_kib") or 0))
    return {"cpu_seconds": f"{float(facts.get('cpu') or 0.0):.3f}", "memory_mib": f"{grown / 1024:.1f}"}


def _baseline_rss_kib(zygote: _Zygote) -> int:
    """What a child starts with resident: at most the zygote's own resident
    size (it forked from it; shared file pages count only once touched)."""
    try:
        with open(f"/proc/{zygote.proc.pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _trailer_facts(trailer: dict[str, Any], zygote: _Zygote) -> dict[str, Any]:
    """The zygote's trailer as the wire's facts (raises wire.ProtocolError)."""
    facts = {key: trailer.get(key) for key in ("exit", "signal", "killed")}
    facts["cpu"] = trailer.get("cpu") or 0.0
    facts["maxrss_kib"] = trailer.get("maxrss_kib") or 0
    facts["baseline_rss_kib"] = _baseline_rss_kib(zygote)
    # With Landlock (or an empty read-only root) the child can create no
    # file at all, so a SIGXFSZ is the tool signalling itself, not the disk limit.
    facts["disk_used_kib"] = 0 if {"landlock", "empty_root"} & set(zygote.layers) else None
    return wire.check_facts(facts)


class RestrictedBackend:
    """RestrictedPython in a fresh OS-limited process per call, forked from a
    warm zygote. Thread-safe: calls from several threads run concurrently.

    Every child runs in the jail (`jail.py`: Landlock and a seccomp
    allowlist, on top of rlimits, no_new_privs, its own process group, an
    empty environment, and where possible its own uid and a network namespace).
    If the jail is incomplete on this machine, every call is ``unavailable``
    naming the missing layer, unless ``allow_weak`` (default: the
    ``TOOLCRIB_ALLOW_WEAK_JAIL`` environment variable is ``1``) says to run
    restricted-policy calls anyway. Each `Result` lists the layers in force.

    ``allow_plain``: honour ``Job.policy == "plain"``: the tool runs as
    ordinary Python inside the same jailed child (same limits, same JSON-only
    reply). Only ever with the full jail, weak or not; with
    ``allow_plain=False`` such jobs are refused as unavailable.
    ``python``: the interpreter for the
    zygote (default: this one). ``grace``: seconds past the wall limit the
    host waits for the zygote before declaring it hung and replacing it.
    ``spares``: children the zygote keeps forked, locked down and warmed up,
    each waiting for exactly one call (a call still forks one on the spot if
    none is ready).

    ``zygotes``: a call that comes while the zygote is busy goes to
    another one, up to this many (default: two, or one on a one-core
    machine), each started on first need and jailed the same way; one
    zygote forks every child, so calls side by side (a verification's
    cases) are bounded by its fork-and-jail rate, not by the host. Each
    zygote's children get uids from its own block on the host, and inside
    their user namespaces from its own share of the slots (`--slots=i/n`):
    no two children of one backend ever share a uid. Lock zygotes are one
    per lock, as before.

    A job with a ``lock`` (a version that needs packages) runs under the
    ``plain`` policy only (the restricted policy's module facades cannot
    offer third-party packages) in a zygote of its own: one per lock
    digest, started on the first such call with the lock's site directory
    (``materialize``, default `packages.materialize`) on its path and the
    lock's packages imported and warmed up before any child enters the same
    jail; stopped after ``lock_idle`` seconds without a call
    (`LOCK_IDLE_SECONDS`), at most four at once.
    """

    name = "restricted"

    def __init__(
        self,
        *,
        allow_plain: bool = True,
        allow_weak: bool | None = None,
        python: str | None = None,
        start_timeout: float = 10.0,
        grace: float = 5.0,
        spares: int = 2,
        lock_idle: float = LOCK_IDLE_SECONDS,
        materialize: Materialize | None = None,
        lock_start_timeout: float = 120.0,
        zygotes: int | None = None,
    ) -> None:
        self.allow_plain = allow_plain
        self.allow_weak = os.environ.get(WEAK_JAIL_ENV, "") == "1" if allow_weak is None else allow_weak
        self.python = python or sys.executable
        self.start_timeout = start_timeout
        self.grace = grace
        self.spares = spares
        self.lock_idle = lock_idle
        self.lock_start_timeout = lock_start_timeout
        self._materialize = materialize
        self._lock = threading.Lock()
        self._zygote: _Zygote | None = None
        # Calls that come while the zygote is busy go to another one (at
        # most `zygotes` in all), started on first need: one zygote forks
        # every child, and its fork-and-jail rate, not the host, is what
        # bounds calls run side by side.
        self.zygotes = max(1, zygotes if zygotes is not None else min(_DEFAULT_ZYGOTES, os.cpu_count() or 1))
        self._others: list[_Zygote | None] = [None] * (self.zygotes - 1)
        # Lock digest -> its zygote; one start per digest at a time.
        self._lock_zygotes: dict[str, _Zygote] = {}
        self._lock_starting: dict[str, threading.Lock] = {}
        self._idle_stop = threading.Event()
        self._idle_thread: threading.Thread | None = None
        self._codes = CodeCache()

    # -- lifecycle ---------------------------------------------------------

    def _current(self, lock: Lock | None = None, *, first: bool = False) -> _Zygote:
        """The zygote for a call, already counted busy: the caller must
        `_release` it when the call ends. ``first``: the first zygote even
        while it is busy (`start`, `info`: asked about, not called, so no
        second zygote is started for them)."""
        if jail_reported_off():
            raise _Unavailable(f"the Linux jail is reported unavailable (${JAIL_OFF_ENV}=1): use --backend wasm")
        if lock is not None:
            return self._lock_zygote(lock)
        with self._lock:
            zygote = self._zygote
            if zygote is None or not zygote.alive():
                if zygote is not None:
                    zygote.stop()
                self._zygote = None
                zygote = self._zygote = _Zygote(self.python, self.start_timeout, self.spares, self._slots(0))
            if zygote.busy and not first:
                zygote = self._least_busy(zygote)
            zygote.busy += 1
            return zygote

    def _slots(self, index: int) -> tuple[str, ...]:
        """The zygote's share of the uid slots (`zygote._own_slots`)."""
        return (f"--slots={index}/{self.zygotes}",) if self.zygotes > 1 else ()

    def _least_busy(self, first: _Zygote) -> _Zygote:
        """The first zygote or another one less busy, started if needed
        (caller holds the lock)."""
        best = first
        for index, other in enumerate(self._others):
            if other is None or not other.alive():
                if other is not None:
                    other.stop()
                self._others[index] = None
                other = self._others[index] = _Zygote(
                    self.python, self.start_timeout, self.spares, self._slots(index + 1)
                )
            if other.busy < best.busy:
                best = other
            if not best.busy:
                break
        return best

    def _release(self, zygote: _Zygote) -> None:
        with self._lock:
            zygote.busy -= 1
            zygote.last_used = time.monotonic()

    def _discard(self, zygote: _Zygote) -> None:
        with self._lock:
            if self._zygote is zygote:
                self._zygote = None
            self._others = [None if other is zygote else other for other in self._others]
            for digest, running in list(self._lock_zygotes.items()):
                if running is zygote:
                    del self._lock_zygotes[digest]
        zygote.stop()

    def _lock_zygote(self, lock: Lock) -> _Zygote:
        """The zygote of this lock, started (or replaced) on demand."""
        digest = lock.digest()
        with self._lock:
            starting = self._lock_starting.setdefault(digest, threading.Lock())
        # One start per lock at a time; other locks and plain calls go on.
        with starting:
            with self._lock:
                zygote = self._lock_zygotes.get(digest)
                if zygote is not None and zygote.alive():
                    zygote.last_used = time.monotonic()
                    zygote.busy += 1  # counted before the lock is let go: no eviction in between
                    return zygote
                self._lock_zygotes.pop(digest, None)
            if zygote is not None:
                zygote.stop()
            site = self._site_dir(lock)
            extra = (f"--preload={','.join(lock.imports)}",) if lock.imports else ()
            try:
                zygote = _Zygote(
                    self.python, self.lock_start_timeout, self.spares, (*extra, f"--site={site}"), THREAD_ENV
                )
            except _Unavailable as exc:
                # The packages run (at import) inside the zygote's jail; what
                # they did wrong there is the lock's error, in their words.
                raise _Unavailable(f"lock {digest[:12]}: {exc.reason or exc}") from None
            with self._lock:
                self._lock_zygotes[digest] = zygote
                zygote.busy += 1  # this call's, so the eviction below never picks it
                evicted = self._over_capacity()
                self._start_idle_thread()
        for old in evicted:
            old.stop()
        return zygote

    def _site_dir(self, lock: Lock) -> Path:
        materialize = self._materialize
        if materialize is None:
            from .packages import materialize as default_materialize

            materialize = default_materialize
        try:
            return Path(materialize(lock))
        except Exception as exc:  # packages.PackagesError and whatever pip said
            raise _Unavailable(f"the lock's packages cannot be installed: {' '.join(str(exc).split())[:300]}") from exc

    def _over_capacity(self) -> list[_Zygote]:
        """Drop the least recently used *idle* lock zygotes past the cap
        (caller holds the lock; the caller stops them). A zygote with a call
        in flight is never dropped: stopping it would kill another client's
        call. While every one is busy the cap is exceeded; `trim` (the idle
        thread) brings it back once calls end."""
        evicted = []
        idle = sorted(
            (d for d, z in self._lock_zygotes.items() if not z.busy), key=lambda d: self._lock_zygotes[d].last_used
        )
        while len(self._lock_zygotes) > _MAX_LOCK_ZYGOTES and idle:
            evicted.append(self._lock_zygotes.pop(idle.pop(0)))
        return evicted

    def trim(self) -> int:
        """Stop idle lock zygotes past the cap (least recently used first);
        returns how many stopped."""
        with self._lock:
            evicted = self._over_capacity()
        for zygote in evicted:
            zygote.stop()
        return len(evicted)

    def _start_idle_thread(self) -> None:
        if self._idle_thread is None or not self._idle_thread.is_alive():
            self._idle_stop.clear()
            self._idle_thread = threading.Thread(target=self._stop_idle_loop, name="toolcrib-lock-idle", daemon=True)
            self._idle_thread.start()

    def _stop_idle_loop(self) -> None:
        """Stop lock zygotes that had no call for `lock_idle` seconds; ends
        when none is left (the next lock zygote starts it again)."""
        while not self._idle_stop.wait(max(0.05, min(self.lock_idle / 4, 30.0))):
            self.stop_idle()
            self.trim()
            with self._lock:
                if not self._lock_zygotes:
                    self._idle_thread = None
                    return

    def stop_idle(self, idle: float | None = None) -> list[str]:
        """Stop every lock zygote idle for longer than ``idle`` seconds
        (default ``lock_idle``); returns their lock digests."""
        limit = self.lock_idle if idle is None else idle
        now = time.monotonic()
        with self._lock:
            idle_ones = {d: z for d, z in self._lock_zygotes.items() if not z.busy and now - z.last_used > limit}
            for digest in idle_ones:
                del self._lock_zygotes[digest]
        for zygote in idle_ones.values():
            zygote.stop()
        return sorted(idle_ones)

    def lock_zygotes(self) -> dict[str, int]:
        """The running lock zygotes: lock digest -> process id."""
        with self._lock:
            return {digest: zygote.proc.pid for digest, zygote in self._lock_zygotes.items() if zygote.alive()}

    def default_policy(self, declared: PolicyName) -> PolicyName:
        """The declared policy: here the RestrictedPython policy is a layer
        of the boundary, so a tool that declared it gets it ("plain" needs
        the full OS jail; see `allow_plain`)."""
        return declared

    def prepare(self, lock: Lock, *, build: bool | None = None, progress: Callable[[str], None] | None = None) -> None:
        """With ``progress`` (the CLI's stderr): install the lock's wheels if
        they are not yet (once per lock) and start its zygote now, saying
        so, so that the first call of a tool with packages is not silent for
        the half minute its imports take. Without it, nothing: the first
        call does the same (`_lock_zygote`). A failure is left to the call,
        which reports it as unavailable."""
        if progress is None:
            return None
        with self._lock:
            running = self._lock_zygotes.get(lock.digest())
            if running is not None and running.alive():
                return None
        if self._materialize is None:
            from .packages import PackagesError, materialize, site_dir

            if not site_dir(lock).exists():
                progress(f"installing the {len(lock.packages)} locked wheel(s) (once per lock)")
                try:
                    materialize(lock, progress=progress)
                except PackagesError:
                    return None
        imports = ", ".join(lock.imports) or "its packages"
        progress(f"starting the sandbox for this lock: importing {imports} once (later calls reuse it)")
        try:
            zygote = self._lock_zygote(lock)
        except _Unavailable:
            return None
        self._release(zygote)
        progress("the lock's sandbox is ready")
        return None

    def health(self) -> dict[str, Any]:
        """`info()` (the contract's name for what `doctor` asks)."""
        return self.info()

    def start(self) -> None:
        """Start the zygote now (otherwise the first call does).

        Raises RuntimeError if it cannot start."""
        try:
            self._release(self._current(first=True))
        except _Unavailable as exc:
            raise RuntimeError(str(exc)) from exc

    def info(self) -> dict[str, Any]:
        """What the process layer achieves on this machine (for `doctor`):
        each layer of the jail and whether it is in force, the zygote's pid.
        Starts the zygote."""
        try:
            zygote = self._current(first=True)
        except _Unavailable as exc:
            return {"backend": self.name, "available": False, "error": str(exc)}
        self._release(zygote)  # asked about, not called: not busy
        facts = zygote.facts
        return {
            "backend": self.name,
            "available": True,
            "zygote_pid": zygote.proc.pid,
            "python": facts.get("python"),
            "network_namespace": bool(facts.get("netns")),
            "network_namespace_error": facts.get("netns_error"),
            "uid_switched": bool(facts.get("uid_switched")),
            "child_uid": facts.get("uid"),
            # The machine-wide uid block this zygote holds (root only), and
            # the layers of the zygote's own jail (zygote.py, jail.ZygoteJail).
            "uid_block": facts.get("uid_block"),
            "zygote_jail": facts.get("zygote_jail"),
            "own_process_group": bool(facts.get("own_group")),
            "no_new_privs": bool(facts.get("no_new_privs")),
            "baseline_vm_mib": facts.get("baseline_vm_mib"),
            "landlock_abi": facts.get("landlock_abi"),
            "layers": _layer_report(facts),
            "weak_allowed": self.allow_weak,
            "runs": not zygote.missing or self.allow_weak,
            "plain_policy": self.allow_plain and not zygote.missing,
            "lock_zygotes": self.lock_zygotes(),
            "lock_idle_seconds": self.lock_idle,
        }

    def close(self) -> None:
        """Stop the zygote (and any child still running). A later `run` starts a new one."""
        with self._lock:
            zygote, self._zygote = self._zygote, None
            others, self._others = [z for z in self._others if z is not None], [None] * (self.zygotes - 1)
            lock_zygotes, self._lock_zygotes = list(self._lock_zygotes.values()), {}
        self._idle_stop.set()
        for running in ([zygote] if zygote is not None else []) + others + lock_zygotes:
            running.stop()

    # -- running -----------------------------------------------------------

    def run(self, job: Job, cancel: Cancel | None = None) -> Result:
        """Run one job in a fresh child; every outcome is a Result.
        Cancelling ``cancel`` hangs up on the zygote, which kills the child."""
        started = time.perf_counter()
        try:
            fields = self._run(job, cancel)
        except (TypeError, ValueError) as exc:
            # Only the job's own data can fail to encode (e.g. a set in args).
            fields = _error("InvalidJob", f"the job cannot be sent as JSON: {exc}")
        except OSError as exc:
            # Out of descriptors or similar on the host side.
            fields = _unavailable(f"cannot reach the zygote: {exc}")
        return Result(backend=self.name, duration_ms=(time.perf_counter() - started) * 1000, **fields)

    def _refusal(self, job: Job, zygote: _Zygote | None) -> str | None:
        """Why this job must not run on this zygote (fail closed), if so."""
        missing = "; ".join(f"{layer}: {why}" for layer, why in (zygote.missing if zygote else {}).items())
        if job.lock is not None and job.policy != "plain":
            return (
                "a version that needs packages runs under the plain policy only: the restricted policy's "
                "module stand-ins cannot offer third-party packages (use --policy plain)"
            )
        if job.policy == "plain":
            if not self.allow_plain:
                return "the plain policy is switched off on this backend (allow_plain=False)"
            if missing:
                return f"the plain policy needs the whole jail, and this machine lacks part of it ({missing})"
        elif missing and not self.allow_weak:
            return (
                f"the jail is incomplete on this machine ({missing}); "
                f"set {WEAK_JAIL_ENV}=1 to run restricted-policy calls with weaker isolation"
            )
        return None

    def _run(self, job: Job, cancel: Cancel | None = None) -> dict[str, Any]:
        limits = job.limits
        header = json.dumps(
            {
                "cpu": limits.cpu,
                "wall": limits.wall,
                "memory": limits.memory,
                "disk": limits.disk,
                "output": limits.output,
                "restricted": job.policy != "plain",
            }
        ).encode()
        wire_job = job.wire()
        payload = json.dumps(wire_job, separators=(",", ":")).encode()
        # The tool's code compiled here once per source (`code_cache`), for
        # a zygote of this interpreter's bytecode; the child checks it
        # against the texts and otherwise compiles them itself.
        compiled = self._codes.field(wire_job, job.policy != "plain")
        with_code = payload[:-1] + b',"' + precompiled.FIELD.encode() + b'":' + compiled + b"}" if compiled else None
        for _attempt in range(2):
            if job.lock is not None and job.policy != "plain":
                return _unavailable(str(self._refusal(job, None)))
            try:
                zygote = self._current(job.lock)
            except _Unavailable as exc:
                return _unavailable(str(exc))
            sent = (
                with_code
                if with_code is not None and zygote.facts.get("bytecode_magic") == precompiled.MAGIC
                else payload
            )
            try:
                fields = self._attempt(job, zygote, header, sent, cancel)
            finally:
                self._release(zygote)
            if fields is not None:
                return fields
        return _unavailable("the zygote died twice in a row")

    def _attempt(
        self,
        job: Job,
        zygote: _Zygote,
        header: bytes,
        payload: bytes,
        cancel: Cancel | None,
    ) -> dict[str, Any] | None:
        """One attempt on a zygote the caller holds busy; None when the
        zygote turned out dead before the call reached it (the caller
        replaces it and tries once more)."""
        limits = job.limits
        refusal = self._refusal(job, zygote)
        if refusal is not None:
            return _unavailable(refusal)
        call, call_far = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        status, status_far = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            try:
                zygote.control.sendmsg(
                    [header],
                    [
                        (
                            socket.SOL_SOCKET,
                            socket.SCM_RIGHTS,
                            array.array("i", [call_far.fileno(), status_far.fileno()]),
                        )
                    ],
                )
            finally:
                call_far.close()
                status_far.close()
        except OSError:
            # The zygote died since we last looked: replace it and retry once.
            call.close()
            status.close()
            self._discard(zygote)
            return None
        # A cancelled caller hangs up: our reads end at once and the
        # zygote sees the status socket close, as below.
        forget = cancel.on_cancel(lambda: _hang_up(call, status)) if cancel is not None else None
        try:
            fields = self._converse(
                call, status, payload, limits, zygote, restricted=job.policy != "plain", measure=job.measure
            )
            fields["layers"] = zygote.layers
            return fields
        finally:
            if forget is not None:
                forget()
            # Closing the status socket early tells the zygote to kill the
            # child if it is still running (output overflow, host gave up).
            call.close()
            status.close()

    def _converse(
        self,
        call: socket.socket,
        status: socket.socket,
        payload: bytes,
        limits: Limits,
        zygote: _Zygote,
        *,
        restricted: bool = True,
        measure: bool = False,
    ) -> dict[str, Any]:
        """Send the job, read the reply and, when the reply alone does not
        settle the outcome (`wire.needs_facts`) or the job asks what it used
        (``measure``), the zygote's trailer; the wire decides the outcome
        from them. Measured: the CPU seconds and peak memory growth of the
        trailer in the Result's environment (`_usage`)."""
        deadline = time.monotonic() + limits.wall + self.grace
        cap = limits.output * 1024
        try:
            try:
                call.settimeout(limits.wall + self.grace)
                call.sendall(_LEN.pack(len(payload)) + payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the child died before reading the job: the trailer says how
            raw = _recv_capped(call, cap + OUTPUT_SLACK, deadline)
            if raw is None or len(raw) > cap:
                # Measured here, not claimed: closing the status socket kills the child.
                return {"status": "limit", "limit": "output"}
            try:
                reply, problem = _read_reply(raw, cap)
            except wire.OverCap:
                # Too many values for the cap (the host's memory): measured
                # here too, and the child is killed the same way.
                return {"status": "limit", "limit": "output"}
            if not wire.needs_facts(reply, restricted=restricted):
                settled = wire.classify(reply, None, restricted=restricted, limits=limits.to_json())
                if measure:
                    usage = self._measured(status, deadline, zygote)
                    if usage:
                        settled["environment"] = usage
                return settled
            head = _recv_exact(status, _LEN.size, deadline)
            if head is None:
                if zygote.alive():
                    return _unavailable("the zygote dropped the call")
                self._discard(zygote)
                return _unavailable("the zygote died during the call")
            (size,) = _LEN.unpack(head)
            if size > TRAILER_MAX:
                return _error("SandboxProtocolError", "oversized trailer from the zygote")
            raw_trailer = _recv_exact(status, size, deadline)
            trailer = json.loads(raw_trailer) if raw_trailer is not None else None
            if not isinstance(trailer, dict):
                return _error("SandboxProtocolError", "malformed trailer from the zygote")
            facts = _trailer_facts(trailer, zygote)
        except TimeoutError:
            # The zygote enforces the wall limit itself; silence past it plus
            # the grace period means the zygote is stuck. Replace it.
            self._discard(zygote)
            return _unavailable("the zygote stopped answering; it has been restarted")
        except (OSError, ValueError) as exc:
            # wire.ProtocolError is a ValueError: a trailer of the wrong shape.
            return _error("SandboxProtocolError", f"talking to the zygote failed: {exc}")
        # No special meaning for the set-up exit code here: a child that
        # could not lock down or enter the jail exits before it takes a call
        # (another spare takes it); once the call is taken, the tool may have
        # run, and a plain tool can exit with any code it likes.
        fields = wire.classify(reply, facts, restricted=restricted, limits=limits.to_json(), problem=problem)
        if measure:
            fields["environment"] = _usage(facts)
        return fields

    def _measured(self, status: socket.socket, deadline: float, zygote: _Zygote) -> dict[str, str]:
        """What a call whose reply settled it used, from the zygote's trailer
        (read only for a job that asks: `Job.measure`); {} if it cannot be read."""
        try:
            head = _recv_exact(status, _LEN.size, deadline)
            if head is None:
                return {}
            (size,) = _LEN.unpack(head)
            raw = _recv_exact(status, size, deadline) if size <= TRAILER_MAX else None
            trailer = json.loads(raw) if raw is not None else None
            return _usage(_trailer_facts(trailer, zygote)) if isinstance(trailer, dict) else {}
        except (OSError, ValueError):  # TimeoutError is an OSError; ProtocolError a ValueError
            return {}
