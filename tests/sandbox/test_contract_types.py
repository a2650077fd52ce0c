"""The sandbox contract's own checks. `Job`, `Limits`, `Lock`, `Result` and
`ErrorInfo` are frozen dataclasses (no pydantic on the call path): what a
pydantic model checked for free is written out, and tested here."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
from toolcrib.sandbox.contract import ErrorInfo, Job, Limits, Lock, LockedPackage, Result

SHA = "a" * 64


def test_limits_take_whole_numbers_and_positive_values() -> None:
    assert Limits(memory=512.0).memory == 512 and isinstance(Limits(memory=512.0).memory, int)
    assert Limits(cpu=3).cpu == 3.0 and isinstance(Limits(cpu=3).cpu, float)
    assert Limits(disk=0).disk == 0  # 0: no writes
    for bad in (
        {"cpu": 0},
        {"wall": -1},
        {"memory": 1.5},
        {"pids": True},
        {"output": "8"},
        {"cpu": float("inf")},
        {"cpu": float("nan")},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Limits(**bad)  # type: ignore[arg-type]


def test_limits_override_and_from_json_refuse_unknown_names() -> None:
    assert Limits().override(cpu=1).cpu == 1.0
    with pytest.raises(ValueError, match="unknown limit 'gpu'"):
        Limits().override(gpu=1)
    with pytest.raises(ValueError, match="unknown limit 'gpu'"):
        Limits.from_json({"gpu": 1})
    assert Limits.from_json(Limits(cpu=4).to_json()) == Limits(cpu=4)


def test_contract_values_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Limits().cpu = 9  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Result(status="ok", backend="restricted").status = "error"  # type: ignore[misc]


def test_a_lock_round_trips_through_json_and_checks_its_hashes() -> None:
    lock = Lock(
        requirements=["six"],
        packages=[
            {
                "name": "six",
                "version": "1.16.0",  # type: ignore[arg-type]
                "filename": "six-1.16.0-py2.py3-none-any.whl",
                "sha256": SHA,
            }
        ],
        imports=["six"],
    )
    assert isinstance(lock.requirements, tuple) and isinstance(lock.packages[0], LockedPackage)
    assert Lock.from_json(json.dumps(lock.to_json())) == lock
    assert Lock.from_json(lock.to_json()).digest() == lock.digest()
    with pytest.raises(ValueError, match="sha256"):
        LockedPackage(name="six", version="1", filename="six-1-py3-none-any.whl", sha256="A" * 64)
    with pytest.raises(ValueError, match="no field 'extra'"):
        Lock.from_json({**lock.to_json(), "extra": 1})
    with pytest.raises(ValueError, match="fields name, version, filename and sha256"):
        Lock.from_json({**lock.to_json(), "packages": [{"name": "six"}]})


def test_a_job_checks_its_mode_and_its_fields() -> None:
    with pytest.raises(ValueError, match="needs a snippet"):
        Job(source="x = 1", entrypoint="f", mode="snippet")
    with pytest.raises(ValueError, match="takes no snippet"):
        Job(source="x = 1", entrypoint="f", snippet="ans = 1")
    with pytest.raises(ValueError, match="policy"):
        Job(source="x = 1", entrypoint="f", policy="none")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="arg_forms"):
        Job(source="x = 1", entrypoint="f", arg_forms={"x": "tensor"})  # type: ignore[dict-item]
    wire = Job(source="x = 1", entrypoint="f", args={"a": 1}, limits={"cpu": 1}).wire()  # type: ignore[arg-type]
    assert wire["limits"] == Limits(cpu=1).to_json() and json.loads(json.dumps(wire)) == wire


def test_a_result_checks_what_the_host_builds_it_from() -> None:
    # wire.classify hands the error over as a dict; it becomes an ErrorInfo.
    result = Result(status="error", backend="restricted", error={"type": "KeyError", "message": "'k'", "line": 3})
    assert result.error == ErrorInfo(type="KeyError", message="'k'", line=3)
    assert result.to_json()["error"] == {"type": "KeyError", "message": "'k'", "line": 3}
    assert Result(status="ok", backend="docker", layers=["netns"]).layers == ("netns",)
    for bad in (
        {"status": "fine"},
        {"limit": "gpu"},
        {"stdout": b"x"},
        {"duration_ms": -1},
        {"error": {"type": 1, "message": "m"}},
        {"error": {"type": "T", "message": "m", "line": "2"}},
        {"error": {"type": "T", "message": "m", "extra": 1}},
        {"layers": "netns"},
    ):
        with pytest.raises(ValueError):
            Result(**{"status": "error", "backend": "restricted", **bad})  # type: ignore[arg-type]


def test_the_sandbox_layer_loads_no_pydantic_and_no_jsonschema() -> None:
    code = (
        "import sys, toolcrib.sandbox.contract, toolcrib.sandbox.restricted, toolcrib.sandbox.inside.wire;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pydantic', 'jsonschema', 'sqlite_utils'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
