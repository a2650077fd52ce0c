"""Lock zygotes are never stopped with a call in flight: past the cap of
four, the least recently used *idle* one stops; while every one is busy the
cap is exceeded, and the idle thread trims back to it later.

Real zygotes, real calls; the locks' site directories are empty local
directories (a fake ``materialize``), so nothing is installed and no
package is imported: only the lock digests differ.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from toolcrib.sandbox.contract import Job, Limits, Lock, LockedPackage
from toolcrib.sandbox.restricted import RestrictedBackend

CAP = 4
# Long enough to still be running while another lock's zygote starts (a
# fraction of a second); the wall limit is only a hang guard.
SLEEPER = "import time\n\ndef run(seconds: float) -> str:\n    time.sleep(seconds)\n    return 'done'\n"
QUICK = "def run(seconds: float) -> str:\n    return 'done'\n"


def _lock(index: int) -> Lock:
    name = f"demo-evict-{index}"
    return Lock(
        requirements=(name,),
        imports=(),
        packages=(
            LockedPackage(
                name=name, version="1.0", filename=f"demo_evict_{index}-1.0-py3-none-any.whl", sha256=f"{index:064x}"
            ),
        ),
    )


def _job(lock: Lock, source: str = QUICK, seconds: float = 0.0) -> Job:
    return Job(
        source=source,
        entrypoint="run",
        args={"seconds": seconds},
        policy="plain",
        lock=lock,
        limits=Limits(cpu=2, wall=60, memory=256, output=16),
    )


@pytest.fixture()
def backend(tmp_path: Path) -> Iterator[RestrictedBackend]:
    site = tmp_path / "site"
    site.mkdir()
    running = RestrictedBackend(spares=1, lock_idle=600, materialize=lambda lock: site)
    try:
        yield running
    finally:
        running.close()


def _wait_busy(backend: RestrictedBackend, lock: Lock, calls: int = 1) -> None:
    """Until the backend counts the call(s) as in flight on this lock's zygote."""
    end = time.monotonic() + 60
    while time.monotonic() < end:
        with backend._lock:
            zygote = backend._lock_zygotes.get(lock.digest())
            if zygote is not None and zygote.busy >= calls:
                return
        time.sleep(0.005)
    pytest.fail("the call never got in flight")


def test_a_fifth_lock_evicts_an_idle_zygote_not_the_busy_one(backend: RestrictedBackend) -> None:
    locks = [_lock(i) for i in range(CAP + 1)]
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        # A long call on locks[0], then calls on the others: locks[0] is the
        # least recently used when the fifth lock starts, and busy.
        in_flight = pool.submit(backend.run, _job(locks[0], SLEEPER, 5.0))
        _wait_busy(backend, locks[0])
        for lock in locks[1:]:
            assert backend.run(_job(lock)).status == "ok"
        running = backend.lock_zygotes()
        result = in_flight.result()
    assert result.status == "ok" and result.result == "done", result
    # The least recently used idle one made room.
    assert sorted(running) == sorted(lock.digest() for lock in [locks[0], *locks[2:]])


def test_all_busy_exceeds_the_cap_until_the_calls_end(backend: RestrictedBackend) -> None:
    locks = [_lock(10 + i) for i in range(CAP + 1)]
    with concurrent.futures.ThreadPoolExecutor(CAP) as pool:
        in_flight = []
        for lock in locks[:CAP]:
            in_flight.append(pool.submit(backend.run, _job(lock, SLEEPER, 3.0)))
            _wait_busy(backend, lock)
        assert backend.run(_job(locks[CAP])).status == "ok"
        assert len(backend.lock_zygotes()) == CAP + 1  # none could be stopped
        results = [future.result() for future in in_flight]
    assert all(r.status == "ok" and r.result == "done" for r in results), results
    # Once idle, the trim (the idle thread's, called here) brings the count
    # back to the cap, dropping the least recently used: the fifth lock's,
    # whose quick call ended before the long ones.
    assert backend.trim() == 1
    assert sorted(backend.lock_zygotes()) == sorted(lock.digest() for lock in locks[:CAP])
