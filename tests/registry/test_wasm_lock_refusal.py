"""A lock the wasm backend cannot run is refused at `add` and `verify`, not at
the first call: one line naming the backends that can run it.

The locks are resolved through the registry's real resolution cache (this
test's own TOOLCRIB_CACHE, seeded with the lock pip would have given), so no
index is reached; the wheels themselves are never needed, as nothing runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from toolcrib.sandbox import packages
from toolcrib.sandbox.contract import Lock, LockedPackage
from toolcrib.sandbox.default_backend import JAIL_OFF_ENV
from toolcrib.sandbox.wasm_guest import BUILT_IN

from toolcrib import InvalidInput, Registry, SandboxUnavailable

PYTHON = f"cp{sys.version_info.major}{sys.version_info.minor}"
UJSON = 'import ujson\n\ndef dump(x: int) -> str:\n    """x as JSON."""\n    return ujson.dumps(x)\n'
UJSON_TESTS = [{"args": {"x": 1}, "expected": "1"}]
HUMANIZE = (
    'import humanize\n\ndef size(n: int) -> str:\n    """n bytes, for people."""\n    return humanize.naturalsize(n)\n'
)


def _seed(name: str, version: str, filename: str) -> None:
    """The registry's resolution cache holds this one-wheel lock for `name`."""
    package = LockedPackage(name=name, version=version, filename=filename, sha256="0" * 64)
    packages._remember_resolution(Lock(requirements=(name,), packages=(package,), imports=(name,), python=PYTHON))


@pytest.fixture
def locks(cache: Path) -> None:
    _seed("ujson", "5.10.0", f"ujson-5.10.0-{PYTHON}-{PYTHON}-manylinux_2_17_x86_64.whl")
    _seed("humanize", "4.9.0", "humanize-4.9.0-py3-none-any.whl")
    numpy = BUILT_IN["numpy"]
    _seed("numpy", "1.0.0" if numpy != "1.0.0" else "0.9.0", f"numpy-1.0.0-{PYTHON}-{PYTHON}-manylinux_2_17_x86_64.whl")


def _one_line_naming_the_others(message: str) -> None:
    assert "\n" not in message and "restricted or docker backend" in message, message


def test_where_wasm_is_the_default_add_refuses_a_compiled_package_the_guest_lacks(
    reg: Registry, locks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(JAIL_OFF_ENV, "1")
    monkeypatch.delenv("TOOLCRIB_BACKEND", raising=False)
    with pytest.raises(InvalidInput) as refused:
        reg.add(UJSON, tests=UJSON_TESTS, requires=["ujson"])
    _one_line_naming_the_others(str(refused.value))
    assert "wasm backend" in str(refused.value) and "ujson" in str(refused.value)
    with pytest.raises(InvalidInput) as other_version:  # built in, but at another version
        reg.add("import numpy\n\ndef f() -> int:\n    return 1\n", requires=["numpy"])
    _one_line_naming_the_others(str(other_version.value))
    assert reg.list() == []  # nothing stored
    added = reg.add(HUMANIZE, requires=["humanize"])  # pure Python: runs from the lock's own files
    assert added.tool.lock is not None


def test_toolcrib_backend_wasm_refuses_at_add_through_the_cli(
    tc, locks: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "dump.py"
    source.write_text(UJSON)
    monkeypatch.setenv("TOOLCRIB_BACKEND", "wasm")
    refused = tc("add", str(source), "--requires", "ujson")
    assert refused.exit_code == 2, refused.output
    error = refused.stderr.strip().splitlines()[-1]  # after the resolution's progress line
    assert error.startswith("Error: the wasm backend"), refused.stderr
    _one_line_naming_the_others(error)
    monkeypatch.setenv("TOOLCRIB_BACKEND", "restricted")  # the restricted backend can run it
    assert tc("add", str(source), "--requires", "ujson").exit_code == 0
    assert [t["name"] for t in json.loads(tc("list", "--json").stdout)] == ["dump"]


@pytest.mark.usefixtures("wasm_ready")
def test_verify_on_wasm_refuses_before_any_case_runs(reg: Registry, locks: None) -> None:
    reg.add(UJSON, tests=UJSON_TESTS, requires=["ujson"])  # on Linux with the jail: restricted by default
    cases: list[int] = []
    with pytest.raises(SandboxUnavailable) as refused:
        reg.verify("dump", backend="wasm", on_case=lambda done, _total: cases.append(done))
    _one_line_naming_the_others(str(refused.value))
    assert cases == []
    assert reg.verification("dump") is None
    outcome = reg.call("dump", {"x": 1}, backend="wasm", allow_unverified=True)
    assert outcome.status == "unavailable" and outcome.error is not None
    _one_line_naming_the_others(outcome.error.message)
