"""A real two-node Ray cluster for the `ray` backend's tests, in a private
network namespace.

Ray listens on every interface without authentication by default (and
probes an outside address to find its own), so the cluster must not live
in the machine's network namespace. `enter_private_network` moves this test
process's main thread (and so every process and thread it starts later:
the Ray nodes, the driver's own Ray threads) into a new network namespace
that holds only a loopback interface: nothing listens on a routable
address, nothing leaves. That needs root (CI runs as root); the `ray`
tests run after every other test of the session (conftest orders them
last), since nothing after them can reach beyond loopback.

The nodes are `ray start --block` processes, each the leader of a process
group of its own, so a test can stop one node (its raylet and workers) by
killing that group, and the session ends with none left behind.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hidden_syscalls import hiding

__all__ = ["RayCluster", "enter_private_network", "in_private_network"]

_CLONE_NEWNET = 0x40000000
HEAD_PORT = 6379  # the namespace is this process's own: every port is free there
DEADLINE = 240.0  # seconds; a hang guard, far beyond what a start needs
_ENTERED = False
# Ray's idle processes kept to what the backend needs (docs/sandbox-ray.md,
# "Fewer idle processes"): no dashboard, no autoscaler monitor, no log
# monitor (the backend never forwards workers' logs to the driver).
QUIET_NODE = ["--include-log-monitor=false"]
QUIET_HEAD = ["--include-dashboard=false", "--no-monitor", *QUIET_NODE]


def in_private_network() -> bool:
    return _ENTERED


def enter_private_network() -> None:
    """unshare(CLONE_NEWNET) for the calling (main) thread, then bring its
    loopback up; once per process."""
    global _ENTERED
    if _ENTERED:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed: the Ray tests need root")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    _ENTERED = True


def _ray_bin() -> str:
    return str(Path(sys.executable).with_name("ray"))


# Run before `ray start` for a node that must look jail-less: every process of
# that node (raylet, workers, the restricted backend's zygote) inherits an
# outer seccomp filter under which Landlock's system calls answer ENOSYS, as
# on an older kernel (tests/sandbox/test_jail.py's way of hiding a layer).
_WITHOUT_LANDLOCK = (
    hiding(["landlock_create_ruleset", "landlock_restrict_self"])
    + """
import os, sys
os.execv(sys.argv[1], sys.argv[1:])
"""
)


def _descendants(root: int) -> set[int]:
    """Every live process below `root` (by parent pid, from /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parents[int(entry)] = int(stat.read().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


class RayCluster:
    """A head node and worker nodes on 127.0.0.1, in this process's private
    network namespace (`enter_private_network` first)."""

    def __init__(self) -> None:
        # Short: Ray's Unix sockets live under it (108-byte path limit).
        self.temp = Path(tempfile.mkdtemp(prefix="tcray-", dir="/tmp"))
        self.address = f"127.0.0.1:{HEAD_PORT}"
        self.nodes: dict[str, subprocess.Popen[bytes]] = {}

    def _start(self, label: str, args: list[str], *, without_landlock: bool = False) -> None:
        log = open(self.temp / f"{label}.log", "wb")
        command = [_ray_bin(), "start", "--block", "--node-ip-address=127.0.0.1", "--disable-usage-stats", *args]
        if without_landlock:
            command = [sys.executable, "-c", _WITHOUT_LANDLOCK, *command]
        # Each node has a wheel and site cache of its own, as a machine of its
        # own would: a lock's wheels reach it only as the backend sends them.
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "TOOLCRIB_CACHE": str(self.temp / f"cache-{label}")}
        try:
            self.nodes[label] = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True
            )
        finally:
            log.close()

    def start_head(self) -> None:
        self._start(
            "head",
            [
                "--head",
                f"--port={HEAD_PORT}",
                "--num-cpus=1",
                *QUIET_HEAD,
                f"--temp-dir={self.temp}",
                "--object-store-memory=200000000",
            ],
        )

    def add_node(self, label: str, *, without_landlock: bool = False) -> None:
        self._start(
            label,
            [f"--address={self.address}", "--num-cpus=1", "--object-store-memory=200000000", *QUIET_NODE],
            without_landlock=without_landlock,
        )

    def connect(self) -> None:
        """The driver (this process) joins the cluster, once the head answers."""
        import ray

        if ray.is_initialized():
            return
        deadline = time.monotonic() + DEADLINE
        while True:
            try:
                ray.init(address=self.address, namespace="toolcrib", logging_level="ERROR", log_to_driver=False)
                return
            except Exception:  # noqa: BLE001 - the head is not up yet: Ray's reasons vary
                if time.monotonic() > deadline or self.nodes["head"].poll() is not None:
                    raise RuntimeError(f"the Ray head did not start: {self.log('head')[-2000:]}") from None
                time.sleep(0.5)

    def wait_for_nodes(self, count: int) -> list[str]:
        """The alive nodes' ids once `count` of them are alive."""
        import ray

        deadline = time.monotonic() + DEADLINE
        while True:
            alive = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
            if len(alive) >= count:
                return alive
            if time.monotonic() > deadline:
                logs = {label: self.log(label)[-1000:] for label in self.nodes}
                raise RuntimeError(f"only {len(alive)} of {count} Ray nodes came up: {logs}")
            time.sleep(0.25)

    def wait_for_dead(self, node_id: str) -> None:
        import ray

        deadline = time.monotonic() + DEADLINE
        while any(n["NodeID"] == node_id and n.get("Alive") for n in ray.nodes()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"Ray still reports node {node_id} alive")
            time.sleep(0.25)

    def stop_node(self, label: str) -> None:
        """Stop one node: its `ray start` and every process under it, at
        once. (Killing the process group is not enough: the raylet starts
        its workers in sessions of their own, and an actor that outlived its
        raylet for a moment could still answer a call.)"""
        proc = self.nodes.pop(label, None)
        if proc is None:
            return
        tree = _descendants(proc.pid) | {proc.pid}
        for pid in tree:
            try:
                os.kill(pid, signal.SIGSTOP)  # nothing of the node runs on while the rest is found and killed
            except ProcessLookupError:
                pass
        tree |= _descendants(proc.pid)
        for pid in tree:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=60)

    def log(self, label: str) -> str:
        try:
            return (self.temp / f"{label}.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        for label in [label for label in self.nodes if label != "head"] + ["head"]:
            self.stop_node(label)
        # Every daemon of a node (raylet, gcs_server, workers) is in its
        # `ray start`'s process group, killed above; never `ray stop`, which
        # would stop every cluster on the machine.
        shutil.rmtree(self.temp, ignore_errors=True)
