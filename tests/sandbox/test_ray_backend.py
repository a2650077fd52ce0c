"""The `ray` backend on a real two-node Ray cluster (tests/raycluster.py: a
head and a worker node in this process's private network namespace).

The shared contract suite (tests/sandbox/test_contract.py) and the attack
corpus (tests/attacks/test_attacks.py) run against `ray` through the
`backend` fixture; this module covers what only a cluster has: where a call
ran, a lock's wheels shipped to the nodes, lost actors and nodes, a node
whose jail is not whole, and a cluster that cannot be reached. Nothing here
waits on the machine's speed: a call is "in flight" when its actor says so,
and the loops that must be interrupted never end by themselves before their
CPU limit.

The tests that stop a node come last in this module (in file order): the
cluster they leave has its worker node replaced.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_lock_validation import build_wheel
from toolcrib.sandbox.contract import Cancel, Job, Limits
from toolcrib.sandbox.ray_backend import RayBackend

from toolcrib import Registry

pytestmark = pytest.mark.ray

TOOLCRIB = str(Path(sys.executable).with_name("toolcrib"))
DEADLINE = 180.0  # seconds: hang guards only

ADD = 'def add(a: int, b: int) -> int:\n    """Add two integers."""\n    return a + b\n'
ADD_TESTS = [{"args": {"a": 1, "b": 2}, "expected": 3}, {"args": {"a": 2, "b": 2}, "expected": 4}]
# Never returns: only the CPU limit ends it (2 s of CPU, whatever the machine's speed).
SPIN = 'def spin(n: int) -> int:\n    """Count forever."""\n    while True:\n        n += 1\n'
SHOUT = 'import tcshout\n\ndef shout(text: str) -> str:\n    """Upper-case text."""\n    return tcshout.shout(text)\n'


@pytest.fixture
def cluster(ray_cluster: Any) -> Any:
    return ray_cluster


@pytest.fixture
def ray_backend(cluster: Any) -> Any:
    """A backend of the test's own (one actor per node), closed after it."""
    backend = RayBackend(cluster.address, actors_per_node=1)
    backend.start()
    yield backend
    backend.close()


def _in_flight(backend: RayBackend, exclude: set[str] = frozenset()) -> tuple[Any, dict[str, Any]]:
    """The actor (and its description) running a call, once one is."""
    import ray

    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        for handle, _node in backend.actors():
            try:
                info = ray.get(handle.describe.remote(), timeout=30)
            except Exception:  # noqa: BLE001 - an actor being replaced
                continue
            if info["in_flight"] and info["actor"] not in exclude:
                return handle, info
        time.sleep(0.05)
    raise AssertionError("no call came in flight")


def _call_in_thread(
    reg: Registry, ref: str, args: dict[str, Any], cancel: Cancel | None = None
) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(
        target=lambda: out.append(
            reg.call(ref, args, backend="ray", limits={"cpu": 2, "wall": 60}, allow_unverified=True, cancel=cancel)
        )
    )
    thread.start()
    return thread, out


def test_a_call_records_the_node_and_actor_in_the_audit_and_the_evidence(cluster: Any, tmp_path: Path) -> None:
    with Registry(tmp_path / "r.db", actor="tester") as reg:
        reg.add(ADD, tests=ADD_TESTS)
        verdict = reg.verify("add", backend="ray")
        outcome = reg.call("add", {"a": 20, "b": 22}, backend="ray")
        entry = reg.audit(event="call")[-1]
    assert (verdict.status, verdict.backend) == ("verified", "ray")
    nodes = set(cluster_nodes())
    for case in verdict.cases:
        assert case.environment["ray_node"] in nodes and case.environment["ray_actor"]
    # The jail's layers held on the node, and the evidence says so.
    assert {"landlock", "seccomp", "netns"} <= set(verdict.layers)
    assert (outcome.status, outcome.result) == ("ok", 42)
    assert entry.details["backend"] == "ray" and entry.details["environment"]["ray_node"] in nodes
    assert {"landlock", "seccomp", "netns"} <= set(entry.details["layers"])


def cluster_nodes() -> list[str]:
    import ray

    return [n["NodeID"] for n in ray.nodes() if n.get("Alive")]


def test_calls_go_round_the_actors_of_both_nodes(ray_backend: RayBackend) -> None:
    job = Job(source="def f():\n    return 1\n", entrypoint="f")
    # Idle actors queue in order: consecutive calls take them in turn.
    nodes = [ray_backend.run(job).environment["ray_node"] for _ in range(4)]
    assert len(set(nodes)) == 2 and nodes[0] == nodes[2] and nodes[1] == nodes[3], nodes


def test_actors_on_one_machine_share_its_cores(ray_backend: RayBackend) -> None:
    """Both nodes are on this machine (127.0.0.1): each actor knows it
    shares the machine with the other and starts zygotes for its share."""
    import ray
    from toolcrib.sandbox.ray_actor import zygotes_for

    described = [ray.get(handle.describe.remote(), timeout=60) for handle, _node in ray_backend.actors()]
    assert [(d["sharing"], d["zygotes"]) for d in described] == [(2, zygotes_for(2))] * 2, described


def test_a_fan_out_keeps_at_most_max_in_flight_calls_waiting(cluster: Any) -> None:
    """Two batches per actor slot in flight, unless that passes the cap (a
    waiting thread per call on the driver): then the cap; the calls still
    all run, in order."""
    from toolcrib.registry.parallel import run_jobs, workers_for

    wide = RayBackend(cluster.address, actors_per_node=1, batch=16)
    capped = RayBackend(cluster.address, actors_per_node=1, batch=16, max_in_flight=6)
    try:
        assert workers_for(wide) == 2 * 2 * 16 * 2
        assert workers_for(capped) == 6
        jobs = [Job(source="def f(x):\n    return x * 3\n", entrypoint="f", args={"x": i}) for i in range(40)]
        assert [r.result for r in run_jobs(capped, jobs)] == [3 * i for i in range(40)]
    finally:
        wide.close()
        capped.close()


def test_an_actor_takes_a_batch_as_bytes_and_answers_bytes(ray_backend: RayBackend) -> None:
    """One bytes argument in, one bytes reply out per Ray call (`run_wire`):
    what Ray's serialiser carries cheapest; the driver rebuilds the results."""
    import ray
    from toolcrib.sandbox.ray_actor import job_bytes
    from toolcrib.sandbox.ray_backend import _results

    jobs = [Job(source="def f(x):\n    return x * 2\n", entrypoint="f", args={"x": i}) for i in range(3)]
    handle, node = ray_backend.actors()[0]
    reply = ray.get(handle.run_wire.remote(job_bytes([(f"wire-{i}", job) for i, job in enumerate(jobs)])), timeout=120)
    assert isinstance(reply, bytes)
    results = _results(reply, jobs)
    assert [(r.status, r.result, r.backend) for r in results] == [("ok", 0, "ray"), ("ok", 2, "ray"), ("ok", 4, "ray")]
    assert {r.environment["ray_node"] for r in results} == {node}
    assert all({"landlock", "seccomp", "netns"} <= set(r.layers) for r in results)


def test_a_tool_cannot_reach_rays_own_ports(ray_backend: RayBackend, cluster: Any) -> None:
    port = int(cluster.address.rsplit(":", 1)[1])
    probe = (
        "import socket\n"
        "def f():\n"
        "    s = socket.socket()\n"
        "    s.settimeout(5)\n"
        f"    s.connect(('127.0.0.1', {port}))\n"
        "    return 'connected'\n"
    )
    result = ray_backend.run(Job(source=probe, entrypoint="f", policy="plain"))
    assert result.status == "error" and result.result is None, result
    assert result.error is not None and result.error.type in ("PermissionError", "ConnectionRefusedError", "OSError")


def test_a_locks_wheels_reach_the_nodes_from_the_drivers_cache(
    cluster: Any, tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = tmp_path / "index"
    build_wheel(index, "tcshout", "1.0", {"tcshout/__init__.py": b"def shout(text):\n    return text.upper()\n"})
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    with Registry(tmp_path / "r.db", actor="tester") as reg:
        tool = reg.add(SHOUT, requires=["tcshout"], tests=[{"args": {"text": "a"}, "expected": "A"}]).tool
        assert tool.lock is not None
        verdict = reg.verify(tool.ref, backend="ray")
        outcomes = [reg.call(tool.ref, {"text": "hi"}, backend="ray") for _ in range(2)]
    assert verdict.status == "verified", verdict
    assert [(o.status, o.result) for o in outcomes] == [("ok", "HI"), ("ok", "HI")]
    # Each node installed the lock from the wheels the driver sent: its own
    # cache holds them (the nodes never reached an index).
    for label in ("head", "worker"):
        wheels = sorted(p.name for p in (cluster.temp / f"cache-{label}" / "wheels").glob("*.whl"))
        assert wheels == ["tcshout-1.0-py3-none-any.whl"], (label, wheels)


def test_a_lost_actors_call_is_run_again_on_another_and_audited_once(cluster: Any, tmp_path: Path) -> None:
    import ray

    backend = RayBackend(cluster.address, actors_per_node=1)
    with Registry(tmp_path / "r.db", actor="tester", backends={"ray": backend}) as reg:
        reg.add(SPIN, tests=[{"args": {"n": 1}, "expected": 1}])
        thread, out = _call_in_thread(reg, "spin", {"n": 0})
        handle, first = _in_flight(backend)
        ray.kill(handle, no_restart=True)
        thread.join(DEADLINE)
        calls = reg.audit(event="call", tool="spin")
        actors_after = len(backend.actors())
    backend.close()
    (outcome,) = out
    # Run again to its end on another actor: its CPU limit, not a lost call.
    assert outcome.status == "limit" and outcome.limit == "cpu", outcome
    assert len(calls) == 1 and calls[0].details["status"] == "limit"
    assert calls[0].details["environment"]["ray_actor"] != first["actor"]
    assert actors_after == 2  # the lost actor was replaced


def test_a_call_lost_twice_is_unavailable_naming_the_node(cluster: Any, tmp_path: Path) -> None:
    import ray

    backend = RayBackend(cluster.address, actors_per_node=1)
    with Registry(tmp_path / "r.db", actor="tester", backends={"ray": backend}) as reg:
        reg.add(SPIN, tests=[{"args": {"n": 1}, "expected": 1}])
        thread, out = _call_in_thread(reg, "spin", {"n": 0})
        handle, first = _in_flight(backend)
        ray.kill(handle, no_restart=True)
        again, second = _in_flight(backend, exclude={first["actor"]})
        ray.kill(again, no_restart=True)
        thread.join(DEADLINE)
        calls = reg.audit(event="call", tool="spin")
    backend.close()
    (outcome,) = out
    assert outcome.status == "unavailable", outcome
    assert outcome.error is not None and f"node {second['node'][:12]}" in outcome.error.message
    assert len(calls) == 1 and calls[0].details["status"] == "unavailable"


def test_an_unreachable_cluster_is_exit_6_naming_its_address(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    with Registry(db, actor="tester") as reg:
        reg.add(ADD, tests=ADD_TESTS)
    env = {**os.environ, "TOOLCRIB_RAY_ADDRESS": "127.0.0.1:9", "TOOLCRIB_REGISTRY": str(db)}
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run(
        [TOOLCRIB, "call", "add", "--arg", "a=1", "--arg", "b=2", "--backend", "ray", "--allow-unverified", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=DEADLINE,
    )
    assert done.returncode == 6, (done.stdout, done.stderr)
    assert "127.0.0.1:9" in json.loads(done.stdout)["error"]["message"]
    assert "Traceback" not in done.stderr


def test_doctor_checks_the_cluster_named_for_it(cluster: Any) -> None:
    from toolcrib.sandbox.doctor import doctor

    report = doctor(probe=False, restricted=False)
    check = next(c for c in report["checks"] if c["name"] == "ray backend")
    assert check["ok"] is True and "trivial call: ok" in check["detail"], check
    assert len(report["ray"]["nodes"]) == 2 and {"landlock", "seccomp"} <= {e["layer"] for e in report["ray"]["layers"]}


def _both_actors_busy_during(work: Callable[[], Any]) -> tuple[Any, bool]:
    """What `work` returns, run on a thread, and whether both of the shared
    ray backend's actors were seen running a job at one moment meanwhile."""
    import ray
    from toolcrib.sandbox import get_backend

    shared = get_backend("ray")
    shared.start()
    out: list[Any] = []
    worker = threading.Thread(target=lambda: out.append(work()))
    worker.start()
    both_busy = False
    deadline = time.monotonic() + DEADLINE
    while worker.is_alive() and not both_busy and time.monotonic() < deadline:
        busy = [ray.get(h.describe.remote(), timeout=30)["in_flight"] for h, _node in shared.actors()]
        both_busy = len(busy) == 2 and all(busy)
        time.sleep(0.05)
    worker.join(DEADLINE)
    (result,) = out
    return result, both_busy


def test_verify_all_keeps_every_actor_busy_and_reports_in_order(cluster: Any, tmp_path: Path) -> None:
    """`verify --all` on ray verifies as many versions at once as there are
    actors: both are seen running a case at the same moment (each case
    spins to its CPU limit, so the moment lasts), and the report keeps the
    pending list's order."""
    from click.testing import CliRunner
    from toolcrib.cli import cli

    db = tmp_path / "r.db"
    names = [f"spin{i}" for i in range(4)]
    with Registry(db, actor="tester") as reg:
        for name in names:
            reg.add(SPIN.replace("def spin", f"def {name}"), tests=[{"args": {"n": 1}, "expected": 1}])
    result, both_busy = _both_actors_busy_during(
        lambda: CliRunner().invoke(cli, ["--registry", str(db), "verify", "--all", "--backend", "ray", "--json"])
    )
    assert both_busy, "never saw both actors running a case at once"
    assert result.exit_code == 1, result.output  # every case hit its CPU limit
    report = json.loads(result.stdout)
    assert [r["tool"] for r in report["results"]] == [f"{name}@1.0.0" for name in names]
    assert all(r["cases"][0]["status"] == "limit" for r in report["results"])


def test_use_runs_the_answers_on_every_actor_and_reports_them_in_order(cluster: Any, tmp_path: Path) -> None:
    """LATM's tool user on ray: each answer's sandboxed run starts as soon as
    its reply is in, several at once (both actors seen busy at one moment:
    each snippet spins to its CPU limit), answers in the questions' order."""
    from toolcrib.latm import Example, ReplayModel, use

    with Registry(tmp_path / "r.db", actor="tester") as reg:
        reg.add("def count(n: int) -> int:\n    return n\n", tests=[{"args": {"n": 1}, "expected": 1}])
        assert reg.verify("count").status == "verified"
        questions = [Example(f"question {i}") for i in range(4)]
        spin = "```python\nn = count(0)\nwhile True:\n    n += 1\n```"
        seen: list[str] = []
        report, both_busy = _both_actors_busy_during(
            lambda: use(
                reg,
                "count",
                questions,
                ReplayModel([spin] * 4),
                backend="ray",
                on_answer=lambda a: seen.append(a.question),
            )
        )
    assert both_busy, "never saw both actors running an answer at once"
    assert [a.question for a in report.answers] == [q.input for q in questions] == seen
    assert all(a.status == "limit" for a in report.answers), report.answers


def test_the_mcp_server_serves_calls_on_the_cluster(cluster: Any, tmp_path: Path) -> None:
    """`toolcrib serve --backend ray`'s server, with the SDK's own client in
    this process: concurrent calls run on both nodes, each audited with the
    client and the node."""
    import anyio
    import mcp_types as types
    from mcp import Client

    from toolcrib.mcp_server import ServeOptions, ToolServer

    db = tmp_path / "r.db"
    with Registry(db, actor="tester") as reg:
        reg.add(ADD, tests=ADD_TESTS)
        assert reg.verify("add").status == "verified"
    server = ToolServer(ServeOptions(registry=db, backend="ray"))
    server.warm_up()

    async def body() -> list[Any]:
        async with Client(server.server, client_info=types.Implementation(name="ray-agent", version="1")) as client:
            results: list[Any] = [None] * 4

            async def one(i: int) -> None:
                results[i] = await client.call_tool("add", {"a": i, "b": 1})

            async with anyio.create_task_group() as group:
                for i in range(4):
                    group.start_soon(one, i)
            return results

    try:
        results = anyio.run(body)
    finally:
        server.close()
    assert [r.structured_content for r in results] == [{"result": i + 1} for i in range(4)]
    with Registry(db, create=False) as reg:
        calls = reg.audit(event="call", tool="add")
    assert len(calls) == 4 and {c.actor for c in calls} == {"mcp:ray-agent/1"}
    assert {c.details["environment"]["ray_node"] for c in calls} <= set(cluster_nodes())
    assert all(c.details["backend"] == "ray" for c in calls)


def _actor_with_a_batch(backend: RayBackend) -> tuple[Any, dict[str, Any]]:
    """An actor running one job of a batch of several, once one is."""
    import ray

    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        for handle, _node in backend.actors():
            try:
                info = ray.get(handle.describe.remote(), timeout=30)
            except Exception:  # noqa: BLE001 - an actor being replaced
                continue
            if info["in_flight"] and len(info["batched"]) >= 2:
                return handle, info
        time.sleep(0.05)
    raise AssertionError("no batch of several jobs came in flight")


def _both_actors_busy(reg: Registry, backend: RayBackend) -> list[tuple[threading.Thread, list[Any]]]:
    """Add SPIN and start one spinning call on each of the two actors (one
    slot each), so the next calls queue; the two calls' threads."""
    reg.add(SPIN, tests=[{"args": {"n": 1}, "expected": 1}])
    backend.start()
    first = [_call_in_thread(reg, "spin", {"n": 0}) for _ in range(2)]
    _in_flight(backend)
    _in_flight(backend, exclude={_in_flight(backend)[1]["actor"]})
    return first


def test_a_lost_batchs_jobs_are_each_run_again_once_and_audited_once(cluster: Any, tmp_path: Path) -> None:
    """Calls queued while every actor is busy go in batches; an actor lost
    with a batch puts each of its jobs back once: each runs to its end on
    another actor, and each call is audited once."""
    import ray

    backend = RayBackend(cluster.address, actors_per_node=1, slots=1, batch=4)
    with Registry(tmp_path / "r.db", actor="tester", backends={"ray": backend}) as reg:
        first = _both_actors_busy(reg, backend)
        # The next four calls queue up and leave in a batch when a slot frees.
        queued = [_call_in_thread(reg, "spin", {"n": 0}) for _ in range(4)]
        handle, lost = _actor_with_a_batch(backend)
        ray.kill(handle, no_restart=True)
        for thread, _out in first + queued:
            thread.join(DEADLINE)
        calls = reg.audit(event="call", tool="spin")
    backend.close()
    outcomes = [out[0] for _thread, out in first + queued]
    assert all(o.status == "limit" and o.limit == "cpu" for o in outcomes), outcomes
    assert len(calls) == 6 and all(c.details["status"] == "limit" for c in calls)
    # Only a call that ended before the kill names the lost actor.
    assert sum(1 for c in calls if c.details["environment"]["ray_actor"] == lost["actor"]) <= 1


def test_a_call_alone_cancelled_while_it_runs_is_killed_on_its_node(cluster: Any, tmp_path: Path) -> None:
    import ray

    backend = RayBackend(cluster.address, actors_per_node=1)
    with Registry(tmp_path / "r.db", actor="tester", backends={"ray": backend}) as reg:
        reg.add(SPIN, tests=[{"args": {"n": 1}, "expected": 1}])
        cancel = Cancel()
        thread, out = _call_in_thread(reg, "spin", {"n": 0}, cancel=cancel)
        handle, _info = _in_flight(backend)
        cancel.cancel()
        thread.join(DEADLINE)
        after = ray.get(handle.describe.remote(), timeout=60)
        calls = reg.audit(event="call", tool="spin")
    backend.close()
    (outcome,) = out
    assert outcome.status == "error" and outcome.error.type == "Cancelled", outcome
    # The sandbox was killed, not left to spin to its CPU limit; audited once.
    assert after["in_flight"] == [] and after["ran"] == 1, after
    assert len(calls) == 1 and calls[0].details["status"] == "cancelled"


@pytest.mark.parametrize("which", [2, 0], ids=["waiting", "running"])
def test_a_call_cancelled_in_a_batch_is_answered_at_once(cluster: Any, tmp_path: Path, which: int) -> None:
    """A call of a batch of three on one actor, cancelled while it waits
    there behind the others (it then never starts) or while it runs as the
    batch's first (its caller is the one that sent the batch), is answered
    at once, without waiting for its batch; the batch's other jobs run to
    their end; every call is audited once."""
    import ray

    backend = RayBackend(cluster.address, actors_per_node=1, slots=1, batch=4)
    with Registry(tmp_path / "r.db", actor="tester", backends={"ray": backend}) as reg:
        first = _both_actors_busy(reg, backend)
        # Three calls queue, in this order, and leave together in one batch
        # when a slot frees.
        cancel = Cancel()
        queued = []
        for i in range(3):
            queued.append(_call_in_thread(reg, "spin", {"n": 0}, cancel=cancel if i == which else None))
            deadline = time.monotonic() + DEADLINE
            while len(backend._pending) < i + 1:
                assert time.monotonic() < deadline, "the call did not queue"
                time.sleep(0.01)
        handle, info = _actor_with_a_batch(backend)
        keys = sorted(info["batched"], key=lambda key: int(key.rpartition("-")[2]))
        assert len(keys) == 3 and info["in_flight"] == keys[:1], info
        cancel.cancel()
        thread, out = queued[which]
        thread.join(DEADLINE)
        # Answered while its batch still runs (its two others spin to their
        # CPU limit one after the other).
        still = ray.get(handle.describe.remote(), timeout=60)
        assert still["in_flight"] and (which == 0 or keys[which] not in still["in_flight"]), still
        for thread, _out in first + queued:
            thread.join(DEADLINE)
        calls = reg.audit(event="call", tool="spin")
        ran = sum(ray.get(h.describe.remote(), timeout=60)["ran"] for h, _node in backend.actors())
    backend.close()
    (cancelled,) = out
    assert cancelled.status == "error" and cancelled.error.type == "Cancelled", cancelled
    others = [o[0] for _t, o in first + queued[:which] + queued[which + 1 :]]
    assert all(o.status == "limit" and o.limit == "cpu" for o in others), others
    assert len(calls) == 5 and sorted(c.details["status"] for c in calls) == ["cancelled"] + ["limit"] * 4
    # A job cancelled while it waited was never handed to a zygote.
    assert ran == (5 if which == 0 else 4)


def test_bulk_add_verify_runs_on_both_actors(cluster: Any, tmp_path: Path) -> None:
    """`add DIR --verify --backend ray` verifies each admitted version on
    the cluster: every version verified, and both nodes' actors ran cases."""
    from click.testing import CliRunner
    from toolcrib.cli import cli

    lib = tmp_path / "lib"
    lib.mkdir()
    names = [f"add{i}" for i in range(6)]
    for name in names:
        (lib / f"{name}.py").write_text(ADD.replace("def add", f"def {name}"))
        (lib / f"{name}.tests.json").write_text(json.dumps(ADD_TESTS))
    db = tmp_path / "r.db"
    done = CliRunner().invoke(cli, ["--registry", str(db), "add", str(lib), "--verify", "--backend", "ray", "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert [t["verification"]["status"] for t in report["tools"]] == ["verified"] * 6
    assert all(t["verification"]["backend"] == "ray" for t in report["tools"])
    with Registry(db, create=False) as reg:
        ran_on = {case.environment["ray_node"] for name in names for case in reg.verification(name).cases}
    assert ran_on == set(cluster_nodes()), ran_on


# -- the tests below change the cluster's nodes ------------------------------------------


def test_a_stopped_nodes_call_moves_to_the_other_node(cluster: Any, tmp_path: Path) -> None:
    backend = RayBackend(cluster.address, actors_per_node=1)
    with Registry(tmp_path / "r.db", actor="tester", backends={"ray": backend}) as reg:
        reg.add(SPIN, tests=[{"args": {"n": 1}, "expected": 1}])
        backend.start()
        worker = next(node for _handle, node in backend.actors() if node != head_node(cluster))
        # Take calls until the next one goes to the worker node's actor.
        while backend._free[0].node != worker:
            assert backend.run(Job(source="def f():\n    return 1\n", entrypoint="f")).status == "ok"
        thread, out = _call_in_thread(reg, "spin", {"n": 0})
        _handle, running = _in_flight(backend)
        assert running["node"] == worker
        cluster.stop_node("worker")
        thread.join(DEADLINE)
        calls = reg.audit(event="call", tool="spin")
    backend.close()
    (outcome,) = out
    assert outcome.status == "limit", outcome
    assert len(calls) == 1 and calls[0].details["environment"]["ray_node"] == head_node(cluster)
    cluster.wait_for_dead(worker)
    cluster.add_node("worker-2")  # the next tests have two nodes again
    cluster.wait_for_nodes(2)
    # and a shared ray backend whose actors all live (its worker-node actor went with the node)
    from toolcrib.sandbox import backends

    backends.register("ray", backends.FACTORIES["ray"])


def head_node(cluster: Any) -> str:
    """The head node's id (Ray gives it an internal resource of its own)."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    head = [n for n in nodes if n.get("Resources", {}).get("node:__internal_head__")]
    return head[0]["NodeID"]


def test_a_node_without_the_whole_jail_takes_no_work(cluster: Any) -> None:
    before = set(cluster_nodes())
    cluster.add_node("nojail", without_landlock=True)
    (nojail,) = set(cluster.wait_for_nodes(len(before) + 1)) - before
    backend = RayBackend(cluster.address, actors_per_node=1)
    try:
        health = backend.health()
        job = Job(source="def f():\n    return 1\n", entrypoint="f", limits=Limits())
        ran_on = {backend.run(job).environment["ray_node"] for _ in range(6)}
    finally:
        backend.close()
        cluster.stop_node("nojail")
    assert nojail in health["refused_nodes"] and "landlock" in health["refused_nodes"][nojail]
    assert nojail not in health["nodes"] and len(health["nodes"]) == 2
    assert ran_on == set(health["nodes"])
