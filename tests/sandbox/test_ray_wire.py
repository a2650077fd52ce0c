"""The bytes between the `ray` backend's driver and its actors (issue 20):
a batch of jobs goes as JSON (each job its wire, what the restricted backend
sends its sandbox) and the results come back as JSON bytes, rebuilt on the
driver through the contract's checks. No cluster here: the two ends are
plain functions (the cluster tests run them through Ray,
tests/sandbox/test_ray_backend.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from toolcrib.sandbox.contract import Job, Limits, Lock, LockedPackage, Result
from toolcrib.sandbox.ray_actor import job_bytes, job_from_wire
from toolcrib.sandbox.ray_backend import RayBackend, _results

JOB = Job(source="def f(x):\n    return x + 1\n", entrypoint="f", args={"x": 1})


def _reply(**changes: Any) -> dict[str, Any]:
    reply = Result(status="ok", backend="restricted", result=2, layers=("seccomp",)).to_json()
    reply.update(backend="ray", environment={"ray_node": "n1"}, calls=None)
    reply.update(changes)
    return reply


def _bytes(*replies: Any) -> bytes:
    return json.dumps(list(replies)).encode()


def test_every_field_of_a_job_survives_its_wire() -> None:
    package = LockedPackage(name="tcshout", version="1.0", filename="tcshout-1.0-py3-none-any.whl", sha256="a" * 64)
    lock = Lock(requirements=("tcshout==1.0",), packages=(package,), imports=("tcshout",))
    jobs = [
        JOB,
        Job(
            source="def g(df):\n    return 1\n",
            entrypoint="g",
            args={"df": [{"a": 1}], "n": None},
            limits=Limits(cpu=1.5, wall=3, memory=128, output=64, disk=0),
            policy="plain",
            lock=lock,
            prelude="import math\n",
            arg_forms={"df": "dataframe"},
            measure=True,
        ),
        Job(
            source="def h():\n    return 1\n", entrypoint="h", mode="snippet", snippet="ans = h()", stub_entrypoint=True
        ),
    ]
    sent = json.loads(job_bytes([(f"k{i}", job) for i, job in enumerate(jobs)]))
    assert [key for key, _wire in sent] == ["k0", "k1", "k2"]
    assert [job_from_wire(wire) for _key, wire in sent] == jobs


def test_a_job_off_the_wire_goes_through_the_contracts_checks() -> None:
    with pytest.raises(ValueError):
        job_from_wire({**JOB.wire(), "policy": "none"})
    with pytest.raises(ValueError):
        job_from_wire(["not", "an", "object"])


def test_results_come_back_checked_and_in_order() -> None:
    results = _results(_bytes(_reply(result=2), _reply(result=[1, "two"], calls=3)), [JOB, JOB])
    assert [(r.status, r.backend, r.result, r.calls) for r in results] == [
        ("ok", "ray", 2, None),
        ("ok", "ray", [1, "two"], 3),
    ]
    assert results[0].layers == ("seccomp",) and results[0].environment == {"ray_node": "n1"}


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        (_bytes(_reply()).decode(), "not bytes"),  # a str, not bytes
        (b"[" + b" " * (5 * 1024 * 1024) + b"]", "over"),  # larger than the output cap allows
        (b'[{"status": ', "not JSON"),
        (_bytes(_reply(duration_ms=float("nan"))), "not JSON"),  # NaN is no JSON number
        (_bytes(_reply(), _reply()), "wrong length"),
        (_bytes({"status": "ok"}), "wrong shape"),
        (_bytes({**_reply(), "extra": 1}), "wrong shape"),
        (_bytes(_reply(status="fine")), "fails the contract"),
        (_bytes(_reply(environment={"ray_node": 1})), "fails the contract"),
        (_bytes(_reply(error={"type": "E"})), "fails the contract"),
        (_bytes(_reply(calls=-1)), "fails the contract"),
    ],
)
def test_a_reply_that_is_not_a_checked_list_of_results_is_unavailable(reply: Any, why: str) -> None:
    small = Job(source=JOB.source, entrypoint="f", limits=Limits(output=1024))
    (result,) = _results(reply, [small])
    assert result.status == "unavailable" and result.error is not None, result
    assert why in result.error.message


def test_a_job_that_cannot_be_json_is_refused_before_any_cluster_is_reached() -> None:
    # As the restricted backend answers it; no cluster is named or started.
    backend = RayBackend("127.0.0.1:1")
    result = backend.run(Job(source=JOB.source, entrypoint="f", args={"x": {1, 2}}))
    assert result.status == "error" and result.error is not None
    assert result.error.type == "InvalidJob" and "cannot be sent as JSON" in result.error.message
    assert not backend.started


@pytest.mark.parametrize(
    ("cores", "sharing", "zygotes"), [(2, 1, 2), (2, 2, 1), (1, 1, 1), (8, 8, 1), (8, 2, 2), (3, 4, 1)]
)
def test_an_actor_starts_zygotes_for_its_share_of_the_cores(
    cores: int, sharing: int, zygotes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two zygotes, or one on a one-core share, as the restricted backend
    does for a whole machine."""
    from toolcrib.sandbox import ray_actor

    monkeypatch.setattr(ray_actor.os, "sched_getaffinity", lambda _pid: set(range(cores)))
    assert ray_actor.zygotes_for(sharing) == zygotes
