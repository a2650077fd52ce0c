"""`Job.measure`: the restricted backend reports what a call used (CPU
seconds, peak memory above the start) in `Result.environment`, from the
zygote's trailer, whatever settled the outcome; without it nothing is
waited for or reported. LATM `make` reads these (toolcrib/latm/measure.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from toolcrib.sandbox.contract import Job, Limits
from toolcrib.sandbox.restricted import RestrictedBackend

WORK = "def work(n, mib=0):\n    block = [0] * (mib * 1024 * 1024 // 8)\n    t = 0\n    for i in range(n):\n        t += i % 7\n    return t + len(block) * 0\n"


def _run(rb: RestrictedBackend, **fields: object) -> dict[str, str]:
    job = Job(source=WORK, entrypoint="work", **fields)  # type: ignore[arg-type]
    result = rb.run(job)
    assert result.status in ("ok", "limit"), result
    return dict(result.environment)


@pytest.mark.parametrize("policy", ["restricted", "plain"])
def test_a_measured_call_reports_its_cpu_and_memory(rb: RestrictedBackend, policy: str) -> None:
    light = _run(rb, args={"n": 10}, measure=True, policy=policy)
    heavy = _run(rb, args={"n": 3_000_000, "mib": 40}, measure=True, policy=policy, limits=Limits(cpu=30, wall=60))
    assert set(light) >= {"cpu_seconds", "memory_mib"} and set(heavy) >= {"cpu_seconds", "memory_mib"}
    # Relations within one run, not speeds: three million steps cost more
    # CPU than ten, and a 40 MiB list shows as at least 30 MiB of growth.
    assert float(heavy["cpu_seconds"]) > float(light["cpu_seconds"])
    assert float(heavy["memory_mib"]) >= 30 > float(light["memory_mib"])


def test_a_call_that_hits_a_limit_is_measured_too(rb: RestrictedBackend) -> None:
    used = _run(rb, args={"n": 10**9}, measure=True, limits=Limits(cpu=1, wall=30))
    assert float(used["cpu_seconds"]) >= 0.5


def test_an_unmeasured_call_reports_nothing_of_it(rb: RestrictedBackend) -> None:
    assert "cpu_seconds" not in _run(rb, args={"n": 10})
    with pytest.raises(ValueError, match="job.measure must be a bool"):
        Job(source=WORK, entrypoint="work", measure=1)  # type: ignore[arg-type]


def test_the_warm_service_measures_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the sandbox service (sandbox/service.py) the flag crosses the
    socket with the job, and the service's own restricted backend measures."""
    from toolcrib.sandbox.service import ServiceBackend, status, stop

    directory = tmp_path / "svc"
    monkeypatch.setenv("TOOLCRIB_SERVICE_DIR", str(directory))
    monkeypatch.setenv("TOOLCRIB_SERVICE_IDLE", "60")
    try:
        result = ServiceBackend().run(Job(source=WORK, entrypoint="work", args={"n": 1000}, measure=True))
        assert result.status == "ok" and "cpu_seconds" in result.environment, result
    finally:
        stop(directory)
        deadline = time.monotonic() + 30  # a hang guard
        while status(directory)["running"] and time.monotonic() < deadline:
            time.sleep(0.05)
