"""What runs on every node of a Ray cluster for the `ray` backend: one
`SandboxActor` owns a `RestrictedBackend` (the same jailed zygotes, lock
zygotes included) and turns `Job`s into `Result`s there. Jobs come and
results go as bytes (`run_wire`): one bytes argument and one bytes reply
per Ray call, the cheapest thing Ray's serialiser carries.

An actor refuses to start unless every layer of its node's jail is in force
(what `toolcrib doctor` checks), whatever ``TOOLCRIB_ALLOW_WEAK_JAIL`` says:
a node that cannot jail takes no work. Its children are the restricted
backend's, each in a network namespace of its own, so a tool reaches neither
Ray's ports nor any other address.

This module does not import Ray: `ray_backend.py` wraps the class with
``ray.remote`` on the driver, and Ray imports this module by name on the
node, so the node needs toolcrib installed (the same version as the driver:
`describe` reports it).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from .contract import Cancel, ErrorInfo, Job, Lock, Result

__all__ = ["JailIncomplete", "SandboxActor", "job_bytes", "job_from_wire", "zygotes_for"]


def job_bytes(batch: list[tuple[str, Job]]) -> bytes:
    """A batch of (key, job) as the bytes the driver sends an actor: JSON,
    each job as its wire (what the restricted backend sends its sandbox, so
    the job the zygote sees is the same). Raises TypeError or ValueError
    when a job's data cannot be JSON (the restricted backend refuses such a
    job the same way)."""
    return json.dumps([[key, job.wire()] for key, job in batch], separators=(",", ":")).encode()


def job_from_wire(data: Any) -> Job:
    """A `Job` from its wire form (`Job.wire()`), through the contract's checks."""
    if not isinstance(data, dict):
        raise ValueError("a job on the wire is an object")
    return Job(**data)


class JailIncomplete(RuntimeError):
    """This node's jail lacks a required layer: the actor does not start."""


def _runtime() -> tuple[str, str, str]:
    """(node id, node address, actor id) from Ray's runtime context."""
    # Typed as Any: Ray's own annotations are partial (mypy --strict).
    ray: Any = importlib.import_module("ray")
    context = ray.get_runtime_context()
    node_id = context.get_node_id()
    address = ""
    for node in ray.nodes():
        if node.get("NodeID") == node_id:
            address = str(node.get("NodeManagerAddress") or "")
    return node_id, address, context.get_actor_id() or ""


def zygotes_for(sharing: int) -> int:
    """Zygotes for an actor that shares its machine's cores with `sharing`
    actors in all (the driver counts those it starts at one node address):
    the restricted backend's own rule (two, or one on a one-core machine)
    over its share of the cores. Each zygote keeps spare children forked
    and its own host-side work; more zygotes than cores only add their
    switching to every call (bench/README.md)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(2, cores // max(1, sharing)))


class SandboxActor:
    """One sandbox on one node: a restricted backend whose jail is whole.
    Ray runs its methods on a few threads at once (``max_concurrency``: the
    backend's slots, plus one for a `cancel` or `describe` while they run)."""

    def __init__(self, version: str, sharing: int = 1) -> None:
        from .restricted import RestrictedBackend

        # Never weak: a node without the full jail takes no work at all.
        self.backend = RestrictedBackend(allow_weak=False, zygotes=zygotes_for(sharing))
        info = self.backend.info()
        layers = info.get("layers") or []
        missing = [str(entry.get("layer")) for entry in layers if entry.get("required") and not entry.get("in_force")]
        self.node_id, self.address, self.actor_id = _runtime()
        if not info.get("available") or missing:
            self.backend.close()
            why = f"missing {', '.join(missing)}" if missing else str(info.get("error") or "unavailable")
            raise JailIncomplete(f"node {self.node_id[:12]} ({self.address}): the jail is not whole: {why}")
        self.layers = tuple(str(entry["layer"]) for entry in layers if entry.get("in_force"))
        self.driver_version = version
        self.sharing = sharing
        self._where = {"ray_node": self.node_id, "ray_node_address": self.address, "ray_actor": self.actor_id}
        self._cancels: dict[str, Cancel] = {}  # every job of the batches here, by key
        self._running: set[str] = set()  # the keys of those running now
        self.ran = 0  # jobs handed to this actor's sandboxes
        self._guard = threading.Lock()

    def describe(self) -> dict[str, Any]:
        """Where this actor runs and what its jail holds (for `health`)."""
        from .. import __version__

        return {
            "node": self.node_id,
            "address": self.address,
            "actor": self.actor_id,
            "pid": os.getpid(),
            "layers": list(self.layers),
            "sharing": self.sharing,
            "zygotes": self.backend.zygotes,
            "toolcrib": __version__,
            "driver_toolcrib": self.driver_version,
            "in_flight": sorted(self._running),
            "ran": self.ran,
            "batched": sorted(self._cancels),  # the jobs of the batches here, running or waiting
        }

    def prepare(self, lock: Lock, wheels: dict[str, bytes]) -> None:
        """Put the lock's wheels (sent by the driver through Ray's object
        store) in this node's wheel cache, each checked against the lock's
        sha256 before it is written; the lock zygote then installs them
        offline and checks each against its RECORD, as on the driver."""
        from .packages import wheel_cache

        cache = wheel_cache()
        cache.mkdir(parents=True, exist_ok=True)
        wanted = {pkg.filename: pkg.sha256 for pkg in lock.packages}
        for filename, data in wheels.items():
            digest = wanted.get(filename)
            if digest is None or Path(filename).name != filename:
                raise ValueError(f"wheel {filename!r} is not in the lock")
            if hashlib.sha256(data).hexdigest() != digest:
                raise ValueError(f"wheel {filename} does not match the lock's sha256")
            target = cache / filename
            if not target.exists():
                partial = target.with_name(f".{filename}.{os.getpid()}.part")
                partial.write_bytes(data)
                partial.replace(target)

    def run_wire(self, data: bytes) -> bytes:
        """Run a batch of jobs sent as bytes (`job_bytes`: a call alone is a
        batch of one), one after the other, each in a fresh jailed child of
        this node's zygote; their results in order, as bytes (JSON: a list
        of `Result.to_json()` with ``calls``; the driver rebuilds each
        through the contract's checks). One Ray call carries the batch, and
        one bytes argument and one bytes reply are all Ray (de)serialises:
        a `Job` and a `Result` as objects cost Ray's serialiser far more
        (bench/README.md). The results are classified here, where the
        restricted backend ran them (the host side: the tool's words never
        decide a limit). Each job can be cancelled by its key, before it
        starts or while it runs."""
        batch = [(str(key), job_from_wire(wire)) for key, wire in json.loads(data)]
        cancels = {key: Cancel() for key, _job in batch}
        with self._guard:
            self._cancels.update(cancels)
        try:
            replies = [self._one(key, job, cancels[key]) for key, job in batch]
        finally:
            with self._guard:
                for key in cancels:
                    self._cancels.pop(key, None)
        return json.dumps(replies, separators=(",", ":"), ensure_ascii=False).encode()

    def _one(self, key: str, job: Job, cancel: Cancel) -> dict[str, Any]:
        result: Result | None = None
        with self._guard:
            if cancel.cancelled:
                # Cancelled while it waited in its batch: it never starts.
                result = Result(status="error", backend="ray", error=ErrorInfo("Cancelled", "the call was cancelled"))
            else:
                self._running.add(key)
                self.ran += 1
        try:
            if result is None:
                result = self.backend.run(job, cancel)
        finally:
            with self._guard:
                self._running.discard(key)
        reply = result.to_json()
        reply["backend"] = "ray"
        reply["environment"] = {**reply["environment"], **self._where}
        reply["calls"] = result.calls
        return reply

    def cancel(self, key: str) -> bool:
        """Cancel the job `key` if it is here: running (its process is
        killed) or waiting in its batch (it ends at once when its turn comes)."""
        with self._guard:
            cancel = self._cancels.get(key)
        if cancel is None:
            return False
        cancel.cancel()
        return True

    def close(self) -> None:
        self.backend.close()
