"""One contract per version, the one `serve` advertises: `call` validates
against the STORED input schema, `import` refuses a bundle whose stored schema
is not what its source derives, and a call can be cancelled from another
thread (what the MCP server does when a client cancels)."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from toolcrib.cli import cli
from toolcrib.registry import ArgumentsError, BundleError, Registry
from toolcrib.registry.models import Signature
from toolcrib.registry.signature import validate_stored_arguments
from toolcrib.registry.versions import canonical_json, content_sha256
from toolcrib.sandbox import get_backend
from toolcrib.sandbox.contract import Cancel

from toolcrib import Limits

ECHO = '''
def echo(x: int) -> int:
    """Give x back."""
    return x
'''

# Never ends by itself for n < 0; its ~96 MB of ballast marks the process that
# runs it (a warm spare or an idle container is far smaller), so the test can
# find it without looking at timing.
HOLD = '''
def hold(n: int) -> int:
    """Count n down to zero, holding some memory."""
    ballast = [0] * 12_000_000
    steps = 0
    while n != 0:
        n -= 1
        steps += 1
    return steps + len(ballast) - 12_000_000
'''
BALLAST_KIB = 64 * 1024


def _store_schema(reg: Registry, ref: str, input_schema: dict[str, Any]) -> None:
    """Doctor one stored signature in place, as an older registry might hold it."""
    tool = reg.get(ref)
    doctored = tool.signature.model_copy(update={"input_schema": input_schema})
    reg.db.execute(
        "UPDATE versions SET signature = ? WHERE name = ? AND version = ?",
        [canonical_json(doctored.model_dump(mode="json")), tool.name, tool.version],
    )


def test_call_validates_against_the_stored_schema_not_the_source(tmp_path: Path) -> None:
    with Registry(tmp_path / "r.db", actor="t") as reg:
        reg.add(ECHO, tests=[{"args": {"x": 3}, "expected": 3}])
        assert reg.verify("echo").status == "verified"
        assert reg.call("echo", {"x": 2}).result == 2
        # The stored schema now says x is a string: what `show` prints is what `call` enforces.
        _store_schema(
            reg,
            "echo",
            {
                "type": "object",
                "properties": {"x": {"type": "string"}},
                "required": ["x"],
                "additionalProperties": False,
            },
        )
        assert reg.call("echo", {"x": "a"}).result == "a"
        with pytest.raises(ArgumentsError) as info:
            reg.call("echo", {"x": 2})
        assert info.value.fields == {"x": "2 is not of type 'string'"}


def test_stored_schema_validation_names_each_bad_field() -> None:
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
            "mode": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None},
        },
        "required": ["n"],
        "additionalProperties": False,
    }
    assert validate_stored_arguments(schema, {"n": 1, "tags": ["a"]}, function="f") == {"n": 1, "tags": ["a"]}
    with pytest.raises(ArgumentsError) as info:
        validate_stored_arguments(schema, {"tags": ["a", 1], "mode": "x", "extra": 1}, function="f")
    fields = info.value.fields
    assert list(fields) == ["n", "tags", "mode", "extra"]
    assert fields["n"] == "missing required argument"
    assert fields["extra"] == "unexpected argument"
    assert fields["tags"] == "[1]: 1 is not of type 'string'"
    assert "'x' is not of type 'integer'" in fields["mode"] and "'null'" in fields["mode"]
    assert str(info.value).startswith("bad arguments for f: n: missing required argument; ")
    # Strict integers, as the derived validator always was: 1.0 and true are not integers.
    for bad in (1.0, True, "1"):
        with pytest.raises(ArgumentsError):
            validate_stored_arguments(schema, {"n": bad}, function="f")
    with pytest.raises(ArgumentsError, match="arguments must be a JSON object"):
        validate_stored_arguments(schema, [1], function="f")


def _doctored_bundle(reg: Registry) -> dict[str, Any]:
    """Export `echo`, then say x is a string and re-hash, as a careful forger would."""
    bundle = reg.export(["echo"])
    entry = bundle["tools"][0]
    entry["signature"]["input_schema"]["properties"]["x"]["type"] = "string"
    signature = Signature.model_validate(entry["signature"])
    from toolcrib.registry.models import TestCase

    tests = [TestCase.model_validate(t) for t in entry["tests"]]
    entry["sha256"] = content_sha256(entry["source"], entry["entrypoint"], signature, tests)
    return bundle


def test_import_refuses_a_stored_schema_the_source_does_not_derive(tmp_path: Path) -> None:
    with Registry(tmp_path / "src.db", actor="t") as src, Registry(tmp_path / "dst.db", actor="t") as dst:
        src.add(ECHO, tests=[{"args": {"x": 3}, "expected": 3}])
        good = src.export(["echo"])
        bundle = _doctored_bundle(src)
        with pytest.raises(BundleError) as info:
            dst.import_bundle(bundle)
        message = str(info.value)
        assert message.startswith(
            "tools[0] (echo@1.0.0): the stored input schema differs from the one its source derives"
        )
        assert '.properties.x.type: stored "string", derived "integer"' in message
        assert dst.list() == []  # nothing imported
        assert [r.created for r in dst.import_bundle(good)] == [True]


def test_cli_import_of_a_doctored_bundle_exits_2_with_one_line(tmp_path: Path) -> None:
    with Registry(tmp_path / "src.db", actor="t") as src:
        src.add(ECHO, tests=[{"args": {"x": 3}, "expected": 3}])
        path = tmp_path / "bundle.json"
        path.write_text(json.dumps(_doctored_bundle(src)))
    result = CliRunner().invoke(cli, ["--registry", str(tmp_path / "dst.db"), "import", str(path)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "stored input schema differs from the one its source derives" in lines[0]


def _procs() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) for every process."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rpartition(")")[2].split()
            except OSError:
                continue
            found[int(entry)] = (int(fields[1]), fields[0])
    return found


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _rss_kib(pid: int) -> int:
    for line in _read(f"/proc/{pid}/status").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _descendants(roots: set[int], procs: dict[int, tuple[int, str]]) -> set[int]:
    found: set[int] = set()
    frontier = set(roots)
    while frontier:
        frontier = {pid for pid, (parent, _) in procs.items() if parent in frontier} - found
        found |= frontier
    return found


def _holders(backend: str) -> set[int]:
    """Live processes of this test's sandboxes that hold hold()'s ballast:
    processes inside containers this process started (docker), children of
    our zygote (restricted), descendants of the Ray actors (ray), else
    descendants of this process (the wasm host's children)."""
    procs = _procs()
    if backend == "docker":
        from toolcrib.sandbox.docker import LABEL, LABEL_PID

        client = get_backend("docker")._client  # the backend's own engine connection
        ids = [c["Id"] for c in client.api.containers(filters={"label": [f"{LABEL}=1", f"{LABEL_PID}={os.getpid()}"]})]
        candidates = {pid for pid in procs if any(cid in _read(f"/proc/{pid}/cgroup") for cid in ids)}
    elif backend == "restricted":
        zygote = get_backend("restricted").info()["zygote_pid"]
        candidates = {pid for pid, (parent, _) in procs.items() if parent == zygote}
    elif backend == "ray":
        # The actors' own descendants (their zygotes' children): the cluster's
        # processes, also this process's descendants, hold far more than the ballast.
        import ray

        ray_backend: Any = get_backend("ray")
        pids = set()
        for handle, _node in ray_backend.actors():
            try:
                pids.add(ray.get(handle.describe.remote(), timeout=60)["pid"])
            except ray.exceptions.RayError:  # an actor lost with its node: it holds nothing
                continue
        candidates = _descendants(pids, procs)
    else:
        candidates = _descendants({os.getpid()}, procs)
    return {pid for pid in candidates if procs[pid][1] != "Z" and _rss_kib(pid) > BALLAST_KIB}


def test_cancel_kills_the_sandboxed_process(tmp_path: Path, backend: str) -> None:
    with Registry(tmp_path / "r.db", actor="t") as reg:
        reg.add(HOLD, limits=Limits(cpu=100, wall=120, memory=512))
        cancel = Cancel()
        outcome: list[Any] = []
        caller = threading.Thread(
            target=lambda: outcome.append(
                reg.call("hold", {"n": -1}, backend=backend, allow_unverified=True, cancel=cancel)
            )
        )
        caller.start()
        deadline = time.monotonic() + 120
        running: set[int] = set()
        while not running:
            assert time.monotonic() < deadline, "the call never started its sandbox"
            assert caller.is_alive(), outcome
            running = _holders(backend)
            time.sleep(0.05)
        cancel.cancel()
        caller.join(120)  # the wall limit is 120 s: only the cancellation ends it sooner
        assert not caller.is_alive()
        [result] = outcome
        assert result.status == "error" and result.error.type == "Cancelled"
        deadline = time.monotonic() + 60
        while any(_procs().get(p, (0, "Z"))[1] != "Z" for p in running):
            assert time.monotonic() < deadline, "the cancelled sandbox is still running"
            time.sleep(0.05)
        assert _holders(backend) == set()
        entry = reg.audit(event="call")[-1]
        assert entry.details["status"] == "cancelled"
