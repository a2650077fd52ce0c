"""The Docker backend's containers over time: who owns them, the warm pool,
the reaper and the sweep. (What one call does with a container, and the
settings a container is made with, stay in `docker.py`.)

- Ownership: every container is labelled with the owner's pid, process start
  time, host and boot id, and the id of the backend object that made it
  (`owner_labels`).
- `WarmPool`: per image and set of limits, a few containers already started
  and waiting for their single job; filler threads replace the ones taken,
  a trash thread removes used ones, and `close` ends both with nothing left
  half made.
- `reap`: at a backend's start, remove the containers of owners that are gone
  (a SIGKILLed owner cannot clean up after itself).
- `sweep`: at a backend's close, remove every container labelled with it
  until the engine lists none.

The pool knows nothing of Docker's API: the backend hands it the functions
that make and dispose of a container, so this module holds no engine calls
but the reaper's and the sweep's.
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from .contract import Limits

__all__ = [
    "LABEL",
    "LABEL_BACKEND",
    "LABEL_BOOT",
    "LABEL_HOST",
    "LABEL_PID",
    "LABEL_START",
    "PoolKey",
    "PooledContainer",
    "WarmPool",
    "owner_labels",
    "reap",
    "remove_quietly",
    "sweep",
]

LABEL = "toolcrib.sandbox"
LABEL_PID = "toolcrib.owner.pid"
LABEL_START = "toolcrib.owner.start"
LABEL_HOST = "toolcrib.host"
LABEL_BOOT = "toolcrib.boot"
# Which backend object in the owner process made it: `close` removes exactly
# its own containers, not those of another backend still open in that process.
LABEL_BACKEND = "toolcrib.owner.backend"

# A warm pool: the image its containers run and their limits.
PoolKey = tuple[str, Limits]


# --------------------------------------------------------------------------- ownership


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return "unknown"


def _proc_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (None if gone).

    Paired with the pid it names one process for good: a reused pid has a
    different start time.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]


def owner_labels(backend: str | None = None) -> dict[str, str]:
    """Labels naming this process (and, if given, the backend object) as the
    owner of a sandbox container."""
    labels = {
        LABEL: "1",
        LABEL_PID: str(os.getpid()),
        LABEL_START: _proc_start(os.getpid()) or "0",
        LABEL_HOST: socket.gethostname(),
        LABEL_BOOT: _boot_id(),
    }
    if backend is not None:
        labels[LABEL_BACKEND] = backend
    return labels


def remove_quietly(api: Any, cid: str) -> None:
    try:
        api.remove_container(cid, force=True)
    except Exception:  # noqa: BLE001 - already gone or being auto-removed
        pass


# --------------------------------------------------------------------------- reaper and sweep


def reap(api: Any) -> int:
    """Remove sandbox containers left by processes that are gone.

    Only containers labelled by this host are judged: their owner is dead
    when its pid no longer names the process that started at the labelled
    time, or when the machine rebooted since. Returns how many were removed.
    """
    host, boot = socket.gethostname(), _boot_id()
    removed = 0
    try:
        containers = api.containers(all=True, filters={"label": f"{LABEL}=1"})
    except Exception:  # noqa: BLE001 - reaping is best effort
        return 0
    for info in containers:
        labels = info.get("Labels") or {}
        if labels.get(LABEL_HOST) != host:
            continue
        try:
            pid = int(labels.get(LABEL_PID, "0"))
        except ValueError:
            pid = 0
        alive = labels.get(LABEL_BOOT) == boot and pid > 0 and _proc_start(pid) == labels.get(LABEL_START)
        if not alive:
            remove_quietly(api, info["Id"])
            removed += 1
    return removed


def sweep(api: Any, owner: str, seconds: float) -> None:
    """Remove every container labelled with backend `owner`, until the engine
    lists none (one the engine is already removing is waited for), for at
    most `seconds`."""
    filters = {"label": [f"{LABEL}=1", f"{LABEL_BACKEND}={owner}"]}
    deadline = time.monotonic() + seconds
    while True:
        try:
            found = api.containers(all=True, filters=filters)
        except Exception:  # noqa: BLE001 - engine gone: the next start reaps
            return
        if not found or time.monotonic() > deadline:
            return
        for info in found:
            if info.get("State") != "removing":
                remove_quietly(api, info["Id"])
        time.sleep(0.05)


# --------------------------------------------------------------------------- the warm pool


class PooledContainer(Protocol):
    """What the pool needs of a container."""

    @property
    def id(self) -> str: ...

    def wait_ready(self, deadline: float) -> bool:
        """Block until it is ready for its job (False: it never will be)."""
        ...

    def wake(self) -> None:
        """End a `wait_ready` in progress at once (its socket is shut)."""
        ...


C = TypeVar("C", bound=PooledContainer)


class WarmPool(Generic[C]):
    """`size` warm containers per image and set of limits in use, at most
    `max_pools` such pools (least recently used dropped first); `size=0`
    keeps none, and the pool only disposes of used containers.

    `spawn(image, limits)` makes and starts a container; `dispose` removes
    one for good (on the trash thread); `usable()` says whether the engine
    is there (fillers wait while it is not); an exception from `spawn` is a
    refusal of these limits (`refused`: stop warming them) or a lost engine
    (`lost`)."""

    def __init__(
        self,
        size: int,
        max_pools: int,
        fillers: int,
        *,
        spawn: Callable[[str, Limits], C],
        dispose: Callable[[C], None],
        usable: Callable[[], bool],
        refused: Callable[[BaseException], bool],
        lost: Callable[[BaseException], None],
        start_timeout: float,
        join_seconds: float,
    ) -> None:
        self.size = size
        self.max_pools = max_pools
        self._spawn, self._dispose, self._usable = spawn, dispose, usable
        self._refused, self._lost = refused, lost
        self._start_timeout, self._join_seconds = start_timeout, join_seconds
        self._cv = threading.Condition()
        self._ready: OrderedDict[PoolKey, list[C]] = OrderedDict()
        self._filling: dict[PoolKey, int] = {}
        self._closed = False
        self._trash: queue.SimpleQueue[C | None] = queue.SimpleQueue()
        # Containers a filler has started and is waiting on to become ready:
        # `close` wakes them so the wait ends at once.
        self._warming: dict[str, C] = {}
        self._threads: list[threading.Thread] = []
        targets = [self._fill_loop] * (fillers if size else 0) + [self._trash_loop]
        for i, target in enumerate(targets):
            thread = threading.Thread(target=target, name=f"toolcrib-docker-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    @property
    def closed(self) -> bool:
        return self._closed

    def idle(self) -> dict[PoolKey, list[C]]:
        """The warm containers now waiting for a job, by pool (a snapshot)."""
        with self._cv:
            return {key: list(ready) for key, ready in self._ready.items()}

    def want(self, key: PoolKey) -> None:
        """Keep a warm pool for this image and these limits (the most recently
        wanted last: the least recent is dropped past `max_pools`)."""
        if not self.size:
            return
        with self._cv:
            self._ready.setdefault(key, [])
            self._ready.move_to_end(key)
            while len(self._ready) > self.max_pools:
                _, dropped = self._ready.popitem(last=False)
                for container in dropped:
                    self._trash.put(container)
            self._cv.notify_all()

    def take(self, key: PoolKey) -> C | None:
        """A warm container for `key` if one is ready; the pool refills."""
        with self._cv:
            ready = self._ready.get(key)
            container = ready.pop(0) if ready else None
        self.want(key)
        return container

    def discard(self, container: C) -> None:
        """Remove a used (or broken) container, on the trash thread."""
        self._trash.put(container)

    def wait_full(self, key: PoolKey, timeout: float) -> bool:
        """Wait until the pool for `key` holds `size` warm containers."""
        self.want(key)
        deadline = time.monotonic() + timeout
        with self._cv:
            while len(self._ready.get(key, [])) < self.size:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed or not self._usable():
                    return False
                self._cv.wait(timeout=min(remaining, 0.5))
        return True

    def close(self) -> bool:
        """Stop the fillers, dispose of every warm container and wait for the
        trash thread (False if it was closed already). A filler inside a
        create or start call is waited for; once it returns it sees the pool
        closed and discards what it made."""
        with self._cv:
            if self._closed:
                return False
            self._closed = True
            pools = list(self._ready.values())
            self._ready.clear()
            for container in self._warming.values():
                container.wake()
            self._cv.notify_all()
        for ready in pools:
            for container in ready:
                self._trash.put(container)
        for thread in self._threads[:-1]:
            thread.join(timeout=self._join_seconds)
        self._trash.put(None)
        self._threads[-1].join(timeout=self._join_seconds)
        return True

    # -- threads --------------------------------------------------------

    def _deficit(self) -> PoolKey | None:
        for key, ready in reversed(self._ready.items()):
            if len(ready) + self._filling.get(key, 0) < self.size:
                return key
        return None

    def _fill_loop(self) -> None:
        while True:
            with self._cv:
                while not self._closed and (not self._usable() or self._deficit() is None):
                    self._cv.wait(timeout=5.0)
                if self._closed:
                    return
                pool = self._deficit()
                if pool is None:
                    continue
                self._filling[pool] = self._filling.get(pool, 0) + 1
            container = self._fill_one(pool)
            if container is None:
                # Back off before retrying, but not past a `close`.
                with self._cv:
                    if not self._closed:
                        self._cv.wait(timeout=1.0)

    def _fill_one(self, pool: PoolKey) -> C | None:
        """Start one container for `pool` and wait until it is warm; it joins
        the pool, or the trash if the pool is gone or closed meanwhile."""
        image, limits = pool
        container = None
        try:
            assert image
            container = self._spawn(image, limits)
            with self._cv:
                if self._closed:
                    container.wake()
                self._warming[container.id] = container
            try:
                ready = container.wait_ready(time.monotonic() + self._start_timeout)
            finally:
                with self._cv:
                    self._warming.pop(container.id, None)
            if not ready:
                # e.g. too little memory for Python to start: stop warming
                # these limits until a call asks for them again.
                self._trash.put(container)
                container = None
                with self._cv:
                    self._ready.pop(pool, None)
        except Exception as exc:  # noqa: BLE001 - the next call reconnects and reports
            if self._refused(exc):
                with self._cv:
                    self._ready.pop(pool, None)
            else:
                self._lost(exc)
        finally:
            with self._cv:
                self._filling[pool] -= 1
                if container is not None:
                    if self._closed or pool not in self._ready:
                        self._trash.put(container)
                    else:
                        self._ready[pool].append(container)
                self._cv.notify_all()
        return container

    def _trash_loop(self) -> None:
        while True:
            container = self._trash.get()
            if container is None:
                return
            self._dispose(container)
