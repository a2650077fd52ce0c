"""The cases of one verification run side by side on the backend's spare
children, each still its own job, with the evidence in the cases' order
(issue 19). A FakeBackend that says it has two spares stands in for the
sandbox: the point here is the scheduling, not the isolation."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from toolcrib.registry.parallel import run_jobs, workers_for
from toolcrib.sandbox.contract import Job
from toolcrib.sandbox.fake import FakeBackend

from toolcrib import Registry

IDENTITY = "def same(a: int) -> int:\n    return a\n"


class TwoSpares(FakeBackend):
    """A fake whose zygote would keep two children ready, like the restricted backend's."""

    spares = 2


def test_cases_run_side_by_side_and_the_evidence_keeps_their_order(tmp_path: Path) -> None:
    second_finished = threading.Event()

    def handler(job: Job) -> Any:
        if job.args["a"] == 0:
            # The first case finishes only after the second one: one at a
            # time, this would wait for nothing and fail (hang guard: 30 s).
            if not second_finished.wait(30):
                raise RuntimeError("the second case never ran beside the first")
            return 0
        second_finished.set()
        return job.args["a"]

    fake = TwoSpares(handler, name="restricted")
    progress: list[tuple[int, int]] = []
    with Registry(tmp_path / "r.db", backends={"restricted": fake}) as reg:
        reg.add(IDENTITY, tests=[{"args": {"a": 0}, "expected": 0}, {"args": {"a": 7}, "expected": 7}])
        ver = reg.verify("same", on_case=lambda done, total: progress.append((done, total)))
    assert ver.status == "verified"
    assert [(c.index, c.actual) for c in ver.cases] == [(0, 0), (1, 7)]  # in order, though case 2 finished first
    assert progress == [(1, 2), (2, 2)]


def test_a_backend_without_spares_runs_one_job_at_a_time_in_order() -> None:
    fake = FakeBackend(lambda job: job.args["a"])
    assert workers_for(fake) == 1
    jobs = [Job(source="def f(a):\n    return a\n", entrypoint="f", args={"a": i}) for i in range(5)]
    results = run_jobs(fake, jobs)
    assert [r.result for r in results if r is not None] == [0, 1, 2, 3, 4]
    assert [j.args["a"] for j in fake.jobs] == [0, 1, 2, 3, 4]


def test_a_deadline_leaves_the_jobs_not_started_unrun() -> None:
    fake = TwoSpares(lambda job: job.args["a"])
    jobs = [Job(source="def f(a):\n    return a\n", entrypoint="f", args={"a": i}) for i in range(3)]
    assert run_jobs(fake, jobs, deadline=0.0) == [None, None, None]
    assert fake.jobs == []


def test_workers_follow_the_spares_and_the_cores() -> None:
    class Many(FakeBackend):
        spares = 64

    class Cluster(Many):
        runs_elsewhere = True

    assert 1 <= workers_for(Many()) <= 64  # capped by this machine's cores
    assert workers_for(Cluster()) == 64  # a cluster's actors are not this machine's cores
