"""The `ray` backend: the restricted backend's jailed sandboxes on the nodes
of a Ray cluster (docs/sandbox-ray.md).

The registry stays where it is (the driver: the single writer of the audit
log); each node runs `SandboxActor`s (`ray_actor.py`) that own the same
jailed zygotes as the restricted backend and refuse to start without the
whole jail. A call takes an idle actor (waiting for one is the
backpressure), runs there, and comes back as a `Result` rebuilt through the
contract's checks, naming the node and actor in its ``environment``.

Faults: an actor or node lost mid-call is retried once on another actor (a
run has no effect outside its jail, and the audit entry is written once, by
the caller, after the result); a second loss ends the call ``unavailable``
naming the node. A cluster that cannot be reached makes `start` raise (the
registry's SandboxUnavailable, exit 6, with the address).

Where the cluster is: ``address`` (or ``$TOOLCRIB_RAY_ADDRESS``; else Ray's
own resolution, ``$RAY_ADDRESS`` or a cluster started on this machine), or a
local cluster started for this process when ``start_local`` (or
``$TOOLCRIB_RAY_START_LOCAL=1``). Actors per node: ``actors_per_node`` (or
``$TOOLCRIB_RAY_ACTORS_PER_NODE``; default the node's CPUs).
"""

from __future__ import annotations

import collections
import ipaddress
import itertools
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from .backends import ExtraMissing
from .contract import Cancel, ErrorInfo, Job, Lock, PolicyName, Result

__all__ = ["ADDRESS_ENV", "ACTORS_ENV", "START_LOCAL_ENV", "RayBackend"]

ADDRESS_ENV = "TOOLCRIB_RAY_ADDRESS"
ACTORS_ENV = "TOOLCRIB_RAY_ACTORS_PER_NODE"
START_LOCAL_ENV = "TOOLCRIB_RAY_START_LOCAL"
NAMESPACE = "toolcrib"
# How long `run` waits for an actor slot before answering unavailable (the
# cluster is saturated or gone).
ACQUIRE_TIMEOUT_S = 600.0
CONNECT_TIMEOUT_S = 10.0
# Calls a fan-out keeps in flight at most (`RayBackend.spares`).
MAX_IN_FLIGHT = 1024


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ExtraMissing("the ray backend needs Ray: pip install 'toolcrib[ray]'") from None
    return ray


def _lost_errors(ray: Any) -> tuple[type[BaseException], ...]:
    """Ray's errors for an actor, a worker or a node that went away."""
    exc = ray.exceptions
    names = ("RayActorError", "ActorDiedError", "ActorUnavailableError", "NodeDiedError", "WorkerCrashedError")
    return tuple(getattr(exc, name) for name in names if hasattr(exc, name)) + (exc.ObjectLostError,)


class _Actor:
    """A handle on one `SandboxActor` and where it runs."""

    def __init__(self, handle: Any, node: str, address: str) -> None:
        self.handle = handle
        self.node = node
        self.address = address


_PENDING, _GRANTED, _RUNNING, _DONE = "pending", "granted", "running", "done"


class _Item:
    """One job waiting for, or running on, an actor (its caller waits for
    ``result``); ``granted``: the actor slot handed to its caller, who then
    runs it (with a batch of the waiting jobs); ``lost`` names the actors
    it was lost with."""

    __slots__ = ("job", "cancel", "key", "wire", "state", "granted", "result", "lost", "changed")

    def __init__(self, job: Job, cancel: Cancel | None, key: str, wire: bytes) -> None:
        self.job = job
        self.cancel = cancel
        self.key = key
        self.wire = wire  # [key, job.wire()] as JSON: this job's part of a batch's bytes
        self.state = _PENDING
        self.granted: _Actor | None = None
        self.result: Result | None = None
        self.lost: list[str] = []
        # Set whenever its state changes (granted a slot, answered, back in
        # the queue), when it is cancelled, and when actors come or go.
        self.changed = threading.Event()


class RayBackend:
    """Jobs run by `SandboxActor`s on a Ray cluster's nodes."""

    name = "ray"
    # Calls run on the cluster's nodes: how many at once is the actors'
    # count (`spares`), not this machine's cores (registry/parallel.py).
    runs_elsewhere = True

    def __init__(
        self,
        address: str | None = None,
        *,
        actors_per_node: int | None = None,
        start_local: bool | None = None,
        retries: int = 1,
        slots: int = 2,
        batch: int = 16,
        share_cores: bool = True,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self.address = address or os.environ.get(ADDRESS_ENV) or None
        env_actors = os.environ.get(ACTORS_ENV)
        self.actors_per_node = actors_per_node or (int(env_actors) if env_actors else None)
        self.start_local = os.environ.get(START_LOCAL_ENV) == "1" if start_local is None else start_local
        self.retries = retries
        # Calls one actor runs at once: as many as its zygote keeps spare
        # children ready (2), so a call's round trip overlaps another's run.
        self.slots = max(1, slots)
        # Jobs one Ray call may carry when calls queue up (1: never batch).
        self.batch = max(1, batch)
        # Actors started at one node address share that machine's cores:
        # each starts zygotes for its share (`ray_actor.zygotes_for`), so a
        # machine runs no more zygotes than direct calls would.
        self.share_cores = share_cores
        # A fan-out's callers wait on a thread each (`parallel.run_jobs`):
        # at most this many, however large the cluster (`spares`).
        self.max_in_flight = max(1, max_in_flight)
        self._pending: collections.deque[_Item] = collections.deque()
        self._queued = threading.Lock()
        self._replacing = 0  # lost actors being replaced now
        self._lock = threading.Lock()
        self._started = False
        self._owns_cluster = False
        self._actors: list[_Actor] = []
        # Free actor slots (under `_queued`): a slot that frees goes at once
        # to the oldest waiting job's caller (`_dispatch`); waiting callers
        # sleep on their own job's event, never poll.
        self._free: collections.deque[_Actor] = collections.deque()
        self._grants = 0  # slots handed to callers that have not taken their batch yet
        self._refused: dict[str, str] = {}  # node id -> why its actors did not start
        self._keys = itertools.count()
        self._error: str | None = None

    # -- the contract ---------------------------------------------------------

    def default_policy(self, declared: PolicyName) -> PolicyName:
        """As the restricted backend: the declared policy (it is a layer there)."""
        return declared

    def start(self) -> None:
        """Connect to the cluster and start the actors on every node whose
        jail is whole. Raises RuntimeError naming the address when the
        cluster cannot be reached or no node can take work."""
        with self._lock:
            if self._started:
                return
            ray = _ray()
            self._connect(ray)
            self._spawn(ray)
            self._started = True
            actors = list(self._actors)
        # Slots queue round-robin (every actor once, then again), so calls
        # one after another spread over the actors and nodes. (Outside
        # `_lock`: `_queued` is never taken under it.)
        for _slot in range(self.slots):
            for actor in actors:
                self._release(actor)

    def prepare(self, lock: Lock, *, build: bool | None = None, progress: Callable[[str], None] | None = None) -> None:
        """Send the lock's wheels from this machine's cache to every actor
        through Ray's object store (each node checks them against the lock's
        hashes and installs them offline on the first call)."""
        from .packages import materialize, wheel_cache

        self.start()
        ray = _ray()
        materialize(lock, progress=progress)  # the driver's cache holds each wheel, checked
        cache = wheel_cache()
        wheels = ray.put({pkg.filename: (cache / pkg.filename).read_bytes() for pkg in lock.packages})
        if progress is not None:
            progress(f"sending the lock's {len(lock.packages)} wheel(s) to {len(self._actors)} Ray actor(s)")
        ray.get([actor.handle.prepare.remote(lock, wheels) for actor in self._actors])

    def run(self, job: Job, cancel: Cancel | None = None) -> Result:
        """Run `job` on an actor. Alone, it goes at once in a call of its
        own; when calls queue up (a fan-out: verify --all, use --questions,
        a verification's cases), whichever caller gets a free actor slot
        takes its own job and up to ``batch - 1`` queued ones, in order, in
        one Ray call: Ray's own cost per call is then paid once per batch."""
        key = f"{os.getpid()}-{next(self._keys)}"
        try:
            # Encoded once, by the caller: a batch's bytes are its jobs' parts joined.
            wire = json.dumps([key, job.wire()], separators=(",", ":")).encode()
        except (TypeError, ValueError) as exc:
            # As the restricted backend: only the job's own data can fail to
            # encode, and such a job is refused before anything is started.
            return Result(
                status="error",
                backend=self.name,
                error=ErrorInfo("InvalidJob", f"the job cannot be sent as JSON: {exc}"),
            )
        try:
            self.start()
        except Exception as exc:  # noqa: BLE001 - every outcome is a Result
            return _unavailable(str(exc))
        ray = _ray()
        item = _Item(job, cancel, key, wire)
        unhook = cancel.on_cancel(item.changed.set) if cancel is not None else None
        try:
            return self._await(ray, item)
        finally:
            if unhook is not None:
                unhook()

    def _await(self, ray: Any, item: _Item) -> Result:
        """Queue `item`, then wait on its own event until a slot is handed
        to it (its caller then runs it, with its batch) or another caller's
        batch answered it."""
        deadline = time.monotonic() + ACQUIRE_TIMEOUT_S
        with self._queued:
            self._pending.append(item)
            self._dispatch()
        while True:
            actor: _Actor | None = None
            batch: list[_Item] = []
            with self._queued:
                item.changed.clear()  # cleared before looking: a change after this wakes the wait below
                if item.state == _DONE:
                    assert item.result is not None
                    return item.result
                if item.state == _GRANTED:
                    actor, item.granted = item.granted, None
                    self._grants -= 1
                    if item.cancel is not None and item.cancel.cancelled:
                        assert actor is not None
                        self._free.appendleft(actor)  # the slot goes on to the next job
                        self._dispatch()
                        item.state = _DONE
                        return _cancelled()
                    batch = self._take_batch(item)
                elif item.state == _PENDING:
                    ended = self._ended(item, deadline)
                    if ended is not None:
                        self._pending.remove(item)
                        item.state = _DONE
                        return ended
                elif item.cancel is not None and item.cancel.cancelled:
                    # Running in another caller's batch: answered now, not
                    # when the batch ends (the actor was told: if the job
                    # waits there it never starts, if it runs it is
                    # killed); the batch's answer for it is dropped, and
                    # it is never put back in the queue (`_run_batch`).
                    item.state = _DONE
                    return _cancelled()
            if actor is None:
                # Pending, or running in another caller's batch: its event
                # comes (the 1 s is a hang guard and the deadline's check).
                item.changed.wait(1.0)
                continue
            if item.cancel is not None and len(batch) > 1:
                # A call that can be cancelled (`serve`'s) sends a batch of
                # several from a thread of its own and waits like the
                # batch's others, so a cancel answers it at once, not when
                # the batch ends. Alone (a cancel ends its Ray call at once)
                # or in a fan-out (no cancel), a caller sends it inline.
                threading.Thread(
                    target=self._run_batch, args=(ray, actor, batch), name="toolcrib-ray-batch", daemon=True
                ).start()
                continue
            self._run_batch(ray, actor, batch)

    def _dispatch(self) -> None:
        """Hand free slots to the oldest waiting jobs, one each (under
        `_queued`); each one's caller wakes and runs it with a batch."""
        while self._pending and self._free:
            actor = self._free.popleft()
            if actor not in self._actors:
                continue  # a slot of an actor lost since: dropped, never handed out
            item = self._pending.popleft()
            item.state, item.granted = _GRANTED, actor
            self._grants += 1
            item.changed.set()

    def _release(self, actor: _Actor, slots: int = 1) -> None:
        """`actor`'s slot(s) free again: to the waiting jobs first."""
        with self._queued:
            self._free.extend([actor] * slots)
            self._dispatch()

    def _wake_all(self) -> None:
        """Every waiting caller looks again (actors came or went)."""
        with self._queued:
            for item in self._pending:
                item.changed.set()

    def _ended(self, item: _Item, deadline: float) -> Result | None:
        """Why a job still waiting will not run (cancelled, no actor left,
        none free for too long), or None."""
        if item.cancel is not None and item.cancel.cancelled:
            return _cancelled()
        if not self._actors and not self._replacing:
            return _unavailable("no Ray actor is left to run the call: " + "; ".join(item.lost or ["none started"]))
        if time.monotonic() >= deadline:
            return _unavailable(f"no Ray actor became free within {ACQUIRE_TIMEOUT_S:.0f} s")
        return None

    def _take_batch(self, first: _Item) -> list[_Item]:
        """`first` (granted a slot) and more waiting jobs, oldest first, now
        running (under `_queued`): the waiting jobs' share of the slots free
        now (this one, those granted but not yet taken, the idle ones), at
        most ``batch``, so a few long jobs still spread over every actor
        while a queue of short ones goes in batches."""
        free = 1 + self._grants + len(self._free)
        size = min(self.batch, -(-(len(self._pending) + 1) // free))
        batch = [first]
        while self._pending and len(batch) < size:
            other = self._pending.popleft()
            if other.cancel is not None and other.cancel.cancelled:
                self._pending.appendleft(other)  # its caller answers it
                break
            batch.append(other)
        for entry in batch:
            entry.state = _RUNNING
        return batch

    def _run_batch(self, ray: Any, actor: _Actor, batch: list[_Item]) -> None:
        """One Ray call for the batch on `actor`; each job's result, or,
        if the actor was lost, each job back in the queue for one more try
        (a second loss ends it unavailable, naming the nodes)."""
        ref = actor.handle.run_wire.remote(b"[" + b",".join(entry.wire for entry in batch) + b"]")

        def canceller(key: str) -> Callable[[], None]:
            return lambda: actor.handle.cancel.remote(key)

        unhooks = [entry.cancel.on_cancel(canceller(entry.key)) for entry in batch if entry.cancel is not None]
        lost: str | None = None
        results: list[Result] = []
        try:
            results = _results(ray.get(ref), [entry.job for entry in batch])
        except _lost_errors(ray) as exc:
            lost = f"node {actor.node[:12]} ({actor.address}): {type(exc).__name__}"
        except Exception as exc:  # noqa: BLE001 - every job gets a Result
            results = [_unavailable(f"the Ray call failed: {' '.join(str(exc).split())[:300]}")] * len(batch)
        finally:
            for unhook in unhooks:
                unhook()
        with self._queued:
            if lost is None:
                for entry, result in zip(batch, results, strict=True):
                    if entry.state != _DONE:  # a cancelled caller may have been answered already
                        entry.result, entry.state = result, _DONE
                    entry.changed.set()
            else:
                with self._lock:
                    if actor in self._actors:
                        self._actors.remove(actor)
                    # Counted now, with the actor gone: a caller never sees
                    # no actor and none coming while its replacement starts.
                    self._replacing += 1
                for entry in reversed(batch):  # back at the front, in their order
                    entry.lost.append(lost)
                    if entry.cancel is not None and entry.cancel.cancelled:
                        entry.result, entry.state = _cancelled(), _DONE  # never run again
                    elif len(entry.lost) > self.retries:
                        message = "the call's Ray actor was lost, and again on retry: " + "; ".join(entry.lost)
                        entry.result, entry.state = _unavailable(message), _DONE
                    else:
                        entry.state = _PENDING
                        self._pending.appendleft(entry)
                    entry.changed.set()
                self._dispatch()  # the other actors' free slots take them
        if lost is None:
            self._release(actor)
        else:
            self._replace(ray, actor)

    def configured(self) -> bool:
        """Whether a cluster was named (an address, Ray's own ``RAY_ADDRESS``,
        or a local one asked for): `doctor` checks the backend only then."""
        return bool(self.address or os.environ.get("RAY_ADDRESS") or self.start_local)

    def health(self) -> dict[str, Any]:
        if not self.started and not self.configured():
            return {
                "backend": self.name,
                "available": False,
                "configured": False,
                "error": f"no Ray cluster named (set ${ADDRESS_ENV}, or ${START_LOCAL_ENV}=1 for a local one)",
            }
        try:
            self.start()
        except Exception as exc:  # noqa: BLE001 - a health report never raises
            return {"backend": self.name, "available": False, "error": str(exc), "address": self.address}
        ray = _ray()
        described = ray.get([actor.handle.describe.remote() for actor in self._actors], timeout=60)
        layers = sorted(set.intersection(*(set(d["layers"]) for d in described))) if described else []
        return {
            "backend": self.name,
            "available": bool(described),
            "address": self.address or "auto",
            "nodes": sorted({d["node"] for d in described}),
            "actors": described,
            "refused_nodes": dict(self._refused),
            # Every actor's jail is whole (they refuse to start otherwise);
            # these are the layers in force on all of them.
            "layers": [
                {"layer": name, "in_force": True, "required": True, "detail": "on every node"} for name in layers
            ],
        }

    def close(self) -> None:
        with self._lock:
            actors, self._actors = self._actors, []
            started, self._started = self._started, False
        with self._queued:
            self._free.clear()
        self._wake_all()  # a waiting call ends unavailable: no actor is left
        if not started:
            return
        ray = _ray()
        for actor in actors:
            try:
                ray.kill(actor.handle, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        if self._owns_cluster:
            ray.shutdown()

    @property
    def started(self) -> bool:
        return self._started

    @property
    def spares(self) -> int:
        """How many calls to keep in flight: for each slot of each live
        actor, a batch running and a whole batch waiting (read by the
        registry's `parallel.workers_for`): when a slot frees, a full batch
        is ready for it (with only one batch's worth per slot, the batches
        shrink to the few callers that came back first), and at most
        ``max_in_flight``: each call in flight is a waiting thread on the
        driver, and past about a thousand the driver and the registry are
        the limit, not the cluster (docs/sandbox-ray.md); batches then
        shrink instead. Connects first: whoever asks is about to run jobs
        here."""
        try:
            self.start()
        except Exception:  # noqa: BLE001 - the run itself reports why
            return 0
        return min(self.max_in_flight, len(self._actors) * self.slots * self.batch * 2)

    # -- the cluster ------------------------------------------------------------

    def _connect(self, ray: Any) -> None:
        if ray.is_initialized():
            return
        where = self.address or ("a new local cluster" if self.start_local else "auto")
        if self.address:
            _check_authenticated(self.address)
            _check_reachable(self.address)
        try:
            if self.start_local and not self.address:
                ray.init(namespace=NAMESPACE, logging_level="ERROR", log_to_driver=False, include_dashboard=False)
                self._owns_cluster = True
            else:
                ray.init(
                    address=self.address or "auto", namespace=NAMESPACE, logging_level="ERROR", log_to_driver=False
                )
        except Exception as exc:  # noqa: BLE001 - Ray's reasons are many; the address is what the operator needs
            raise RuntimeError(f"cannot reach the Ray cluster at {where}: {' '.join(str(exc).split())[:300]}") from None

    def _spawn(self, ray: Any) -> None:
        """Start the actors, node by node, pinned to their node; a node whose
        actors refuse (their jail is not whole) is recorded and left out."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from .. import __version__
        from .ray_actor import SandboxActor

        remote = ray.remote(SandboxActor)
        pending: list[tuple[Any, str, str]] = []
        alive = [node for node in ray.nodes() if node.get("Alive")]
        counts = {
            id(node): self.actors_per_node or max(1, int(node.get("Resources", {}).get("CPU", 1) or 1))
            for node in alive
        }
        on_machine: dict[str, int] = collections.Counter()
        for node in alive:
            on_machine[str(node.get("NodeManagerAddress") or "")] += counts[id(node)]
        for node in alive:
            address = str(node.get("NodeManagerAddress") or "")
            for _ in range(counts[id(node)]):
                handle = remote.options(
                    num_cpus=0,
                    max_concurrency=self.slots + 1,  # its runs, plus a cancel or describe while they run
                    max_restarts=0,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False),
                ).remote(__version__, on_machine[address] if self.share_cores else 1)
                pending.append((handle, node["NodeID"], address))
        for handle, node_id, address in pending:
            try:
                ray.get(handle.describe.remote(), timeout=120)
            except Exception as exc:  # noqa: BLE001 - the node takes no work; say why
                self._refused[node_id] = _actor_failure(exc)
                continue
            self._actors.append(_Actor(handle, node_id, address))
        if not self._actors:
            why = "; ".join(f"{node[:12]}: {reason}" for node, reason in self._refused.items()) or "no live node"
            raise RuntimeError(f"no node of the Ray cluster at {self.address or 'auto'} can take work ({why})")

    def _replace(self, ray: Any, lost: _Actor) -> None:
        """Forget a lost actor; start a new one on a node that is still alive
        (its old node if it came back), so capacity returns. The caller
        counted it in `_replacing`; done here when the new one is up (or
        cannot be)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from .. import __version__
        from .ray_actor import SandboxActor

        with self._lock:
            if lost in self._actors:
                self._actors.remove(lost)
        try:
            self._start_replacement(ray, lost, NodeAffinitySchedulingStrategy, __version__, SandboxActor)
        finally:
            with self._lock:
                self._replacing -= 1
            self._wake_all()  # with none coming, the waiting jobs end unavailable

    def _start_replacement(self, ray: Any, lost: _Actor, strategy: Any, version: str, actor_class: Any) -> None:
        alive = [n for n in ray.nodes() if n.get("Alive") and n["NodeID"] not in self._refused]
        if not alive:
            return
        node = next((n for n in alive if n["NodeID"] == lost.node), alive[0])
        address = str(node.get("NodeManagerAddress") or "")
        with self._lock:
            sharing = 1 + sum(actor.address == address for actor in self._actors) if self.share_cores else 1
        handle = (
            ray.remote(actor_class)
            .options(
                num_cpus=0,
                max_concurrency=self.slots + 1,
                max_restarts=0,
                scheduling_strategy=strategy(node["NodeID"], soft=False),
            )
            .remote(version, sharing)
        )
        try:
            ray.get(handle.describe.remote(), timeout=120)
        except Exception:  # noqa: BLE001 - that node cannot take it now; the others carry on
            return
        actor = _Actor(handle, node["NodeID"], address)
        with self._lock:
            self._actors.append(actor)
        self._release(actor, self.slots)

    # -- for tests and operators ----------------------------------------------------

    def actors(self) -> list[tuple[Any, str]]:
        """(handle, node id) of every live actor."""
        with self._lock:
            return [(actor.handle, actor.node) for actor in self._actors]


# What a job's reply may take on the wire from the actor: its result and
# prints are within the output cap (KiB) as the sandbox wrote them; JSON
# re-encoded, with the envelope (an error's message, the environment).
_REPLY_SLACK = 256 * 1024
_REPLY_KEYS = frozenset(
    ("status", "result", "error", "limit", "stdout", "backend", "duration_ms", "environment", "layers", "calls")
)


def _results(reply: Any, jobs: list[Job]) -> list[Result]:
    """The actor's reply to a batch (`SandboxActor.run_wire`: JSON bytes, a
    list of results in order) as `Result`s, each rebuilt through the
    contract's checks: it crossed a process and a network, so its size is
    bounded before it is parsed and its shape checked after. A reply that
    is not such a list makes every job of the batch unavailable."""
    cap = sum(4 * job.limits.output * 1024 + _REPLY_SLACK for job in jobs)
    if not isinstance(reply, bytes):
        return [_unavailable(f"the Ray actor answered a {type(reply).__name__}, not bytes")] * len(jobs)
    if len(reply) > cap:
        return [_unavailable(f"the Ray actor's reply is over {cap} bytes")] * len(jobs)
    try:
        data = json.loads(reply, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        return [_unavailable(f"the Ray actor's reply is not JSON: {str(exc)[:200]}")] * len(jobs)
    if not isinstance(data, list) or len(data) != len(jobs):
        return [_unavailable("the Ray actor answered a batch of the wrong length")] * len(jobs)
    return [_checked(item) for item in data]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _checked(reply: Any) -> Result:
    """One job's reply from the actor (`Result.to_json()` with ``calls``),
    rebuilt through the contract's checks."""
    if not isinstance(reply, dict) or set(reply) != _REPLY_KEYS:
        return _unavailable("the Ray actor answered a result of the wrong shape")
    try:
        return Result(
            status=reply["status"],
            backend="ray",
            result=reply["result"],
            error=reply["error"],
            limit=reply["limit"],
            stdout=reply["stdout"],
            duration_ms=reply["duration_ms"],
            environment=reply["environment"],
            layers=reply["layers"],
            calls=reply["calls"],
        )
    except (TypeError, ValueError) as exc:
        return _unavailable(f"the Ray actor answered a result that fails the contract: {str(exc)[:200]}")


def _host(address: str) -> str:
    return address.removeprefix("ray://").rpartition(":")[0].strip("[]")


def _check_authenticated(address: str) -> None:
    """A cluster beyond loopback only with Ray's token authentication on
    (``RAY_AUTH_MODE=token`` and the cluster's token, Ray 2.52+): without
    it, anyone who reaches the head can run code on every node."""
    host = _host(address)
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and os.environ.get("RAY_AUTH_MODE") != "token":
        raise RuntimeError(
            f"refusing the Ray cluster at {address} without token authentication: set RAY_AUTH_MODE=token "
            "and the cluster's token (RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH), see docs/sandbox-ray.md"
        )


def _check_reachable(address: str) -> None:
    """One TCP connect to the cluster's head before handing the address to
    Ray, whose own client retries an unreachable head for minutes."""
    port = address.rpartition(":")[2]
    try:
        with socket.create_connection((_host(address), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"cannot reach the Ray cluster at {address}: {exc}") from None


def _cancelled() -> Result:
    return Result(status="error", backend="ray", error=ErrorInfo("Cancelled", "the call was cancelled"))


def _unavailable(message: str) -> Result:
    return Result(status="unavailable", backend="ray", error=ErrorInfo("SandboxUnavailable", message))


def _actor_failure(exc: BaseException) -> str:
    """The reason an actor gave for not starting, one line (Ray wraps it)."""
    text = " ".join(str(exc).split())
    marker = "the jail is not whole:"
    if marker in text:
        return marker + text.split(marker, 1)[1][:300]
    return text[:300]
