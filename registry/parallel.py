"""Many sandbox jobs at once, results in order (issue 19: every check
multiplies sandboxed runs).

Each job still runs in its own fresh jailed child: concurrency only keeps
the backend's spare children busy (`RestrictedBackend.spares`, forked and
locked down ahead of the call) instead of leaving them idle while the host
waits for one call at a time. A backend without spares (a test's
`FakeBackend`) runs its jobs one after the other, in order.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

from ..sandbox.contract import Backend, Job, Result

__all__ = ["JobPool", "run_jobs", "workers_for"]


def workers_for(runner: Backend) -> int:
    """How many jobs to keep in flight on `runner`: one per spare child
    its zygote keeps ready, and no more than the machine's cores (a
    backend with no spares: one)."""
    spares = getattr(runner, "spares", 0)
    if not isinstance(spares, int) or isinstance(spares, bool) or spares < 2:
        return 1
    # A backend whose calls run on other machines (Ray's actors on their
    # nodes) is bound by its own capacity, not this machine's cores.
    if getattr(runner, "runs_elsewhere", False) is True:
        return spares
    return max(1, min(spares, os.cpu_count() or 1))


def run_jobs(
    runner: Backend,
    jobs: Sequence[Job],
    *,
    deadline: float | None = None,
    workers: int | None = None,
    on_done: Callable[[int, Result], None] | None = None,
) -> list[Result | None]:
    """Run `jobs` on `runner`, up to `workers` at once (default
    `workers_for`); the results in the jobs' order. A job not started by
    ``deadline`` (a `time.monotonic` value) is not run: its place is None.
    ``on_done(index, result)`` is called for each finished job, from the
    thread that ran it."""

    def one(index: int) -> Result | None:
        if deadline is not None and time.monotonic() >= deadline:
            return None
        result = runner.run(jobs[index])
        if on_done is not None:
            on_done(index, result)
        return result

    count = workers if workers is not None else workers_for(runner)
    if count <= 1 or len(jobs) <= 1:
        return [one(i) for i in range(len(jobs))]
    with ThreadPoolExecutor(max_workers=count, thread_name_prefix="toolcrib-case") as pool:
        return list(pool.map(one, range(len(jobs))))


class JobPool:
    """Jobs handed over one at a time, as they are made (fuzzing's inputs
    while Hypothesis still draws the next ones), run like `run_jobs`: up to
    `workers_for` at once, each in its own fresh child; a job not started
    by ``deadline`` gives None. Each `submit` returns a future of its
    result; leaving the ``with`` waits for every job."""

    def __init__(self, runner: Backend, *, deadline: float | None = None, workers: int | None = None) -> None:
        self._runner = runner
        self._deadline = deadline
        count = workers if workers is not None else workers_for(runner)
        self._pool = ThreadPoolExecutor(max_workers=max(1, count), thread_name_prefix="toolcrib-case")

    def _one(self, job: Job) -> Result | None:
        if self._deadline is not None and time.monotonic() >= self._deadline:
            return None
        return self._runner.run(job)

    def submit(self, job: Job) -> Future[Result | None]:
        return self._pool.submit(self._one, job)

    def __enter__(self) -> JobPool:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        # On an error the jobs not yet started are dropped; those running finish.
        self._pool.shutdown(wait=True, cancel_futures=kind is not None)
