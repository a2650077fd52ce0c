"""LATM's `make` on an injected `FakeBackend`: every run of every stage and
the final verification go through the registry's backend seam, and a sandbox
that becomes unavailable mid-make stops it without registering anything.

The sandbox is not what is under test here (`test_latm_evidence.py` and
`test_latm_make.py` keep the real one: the calls counted inside the jail, the
policy's refusals reaching the model); the fake lets these tests decide what
the sandbox answers.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from latm_tasks import SORT, SORT_PROPOSAL, SORT_TESTS, SORT_WRAP, write_json
from toolcrib.sandbox.contract import ErrorInfo, Job, Result
from toolcrib.sandbox.fake import FakeBackend, exec_job

from toolcrib import Registry, SandboxUnavailable
from toolcrib.latm import ReplayModel, load_task, make


def _make(reg: Registry, tmp_path: Path):  # type: ignore[no-untyped-def]
    task = load_task(write_json(tmp_path / "word_sorting.json", SORT))
    return make(reg, task, ReplayModel([SORT_PROPOSAL, SORT_TESTS, SORT_WRAP]))


def test_every_run_of_make_goes_to_the_registrys_backend(tmp_path: Path) -> None:
    fake = FakeBackend(name="restricted")
    with Registry(tmp_path / "r.db", actor="t", backends={"restricted": fake}) as reg:
        made = _make(reg, tmp_path)
        assert made.status == "made" and made.tool is not None
        tool = reg.get(made.tool)
    # The stages' runs (the proposal's, the tests', the wrap's use cases with
    # the entrypoint stubbed) and the verification's cases all reached the
    # injected backend, none the table's.
    assert any(job.stub_entrypoint for job in fake.jobs)
    assert len(fake.jobs) > len(tool.tests)
    assert all("def sort_words" in job.source for job in fake.jobs)
    assert tool.status == "verified"


def test_a_sandbox_that_goes_away_mid_make_stops_it_and_registers_nothing(tmp_path: Path) -> None:
    seen: list[Job] = []

    def first_run_only(job: Job) -> object:
        seen.append(job)
        if len(seen) == 1:
            return exec_job(job)
        return Result(
            status="unavailable", backend="restricted", error=ErrorInfo(type="SandboxGone", message="the node left")
        )

    with Registry(tmp_path / "r.db", actor="t", backends={"restricted": FakeBackend(first_run_only)}) as reg:
        with pytest.raises(SandboxUnavailable, match="the node left"):
            _make(reg, tmp_path)
        assert reg.list() == []
    assert len(seen) == 2  # it stopped at the first unavailable answer
    assert list((tmp_path / "transcripts").glob("*")) != []  # the transcript is kept for the operator
