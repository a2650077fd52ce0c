"""Tools that need packages, run: a `sympy` tool made, locked, verified and
called in the plain-policy restricted backend (a zygote per lock, inside the
same jail) and in Docker (a runtime image built offline for the lock); the
restricted policy refused for such a version; `--no-build` unavailable with
the command that builds the image; the runtime image's container settings
equal the plain sandbox's.

Real wheels from the package index this machine reaches (pip, through
`packages.resolve`), real processes, a real Docker engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from toolcrib.cli import cli
from toolcrib.sandbox import packages
from toolcrib.sandbox.contract import Job, Limits, Lock
from toolcrib.sandbox.restricted import RestrictedBackend

from toolcrib import Registry

# Every test here resolves `sympy` (or `mpmath`) from the real package index.
pytestmark = pytest.mark.network

FACTOR = '''
import sympy


def factor_poly(expr: str) -> str:
    """Factor a polynomial in x, e.g. "x**2 - 1"."""
    return str(sympy.factor(sympy.sympify(expr)))
'''
FACTOR_TESTS = [
    {"args": {"expr": "x**2 - 1"}, "expected": "(x - 1)*(x + 1)"},
    {"args": {"expr": "x**2 + 2*x + 1"}, "expected": "(x + 1)**2"},
]


@pytest.fixture(scope="module")
def sympy_lock() -> Lock:
    return packages.resolve(["sympy"])


def test_a_sympy_tool_is_locked_verified_and_called_in_the_restricted_backend(reg: Registry) -> None:
    added = reg.add(FACTOR, tests=FACTOR_TESTS, requires=["sympy"])
    tool = added.tool
    assert tool.lock is not None and "sympy" in tool.lock.imports
    assert {p.name.lower() for p in tool.lock.packages} >= {"sympy", "mpmath"}
    # A version with packages declares the plain policy: the jail is its boundary.
    assert tool.policy == "plain"
    verdict = reg.verify(tool.ref)
    assert (verdict.status, verdict.passed) == ("verified", 2), verdict.cases
    assert verdict.policy == "plain"
    assert {"landlock", "seccomp"} <= set(verdict.layers)
    outcome = reg.call(tool.ref, {"expr": "x**3 - x"})
    assert outcome.status == "ok", outcome.error
    assert outcome.result == "x*(x - 1)*(x + 1)"
    assert {"landlock", "seccomp", "netns"} <= set(outcome.layers)


def test_the_restricted_policy_is_refused_for_a_version_with_packages(reg: Registry) -> None:
    tool = reg.add(FACTOR, tests=FACTOR_TESTS, requires=["sympy"]).tool
    outcome = reg.call(tool.ref, {"expr": "x**2 - 1"}, policy="restricted", allow_unverified=True)
    assert outcome.status == "unavailable"
    assert outcome.error is not None and "plain policy" in outcome.error.message


def test_one_zygote_per_lock_inside_the_same_jail(sympy_lock: Lock) -> None:
    backend = RestrictedBackend(lock_idle=600)
    try:
        job = Job(source=FACTOR, entrypoint="factor_poly", args={"expr": "x**2 - 4"}, policy="plain", lock=sympy_lock)
        first = backend.run(job)
        assert first.status == "ok", first.error
        assert first.result == "(x - 2)*(x + 2)"
        zygotes = backend.lock_zygotes()
        assert list(zygotes) == [sympy_lock.digest()]
        # The same lock reuses its zygote; the plain zygote stays without sympy.
        assert backend.run(job).result == "(x - 2)*(x + 2)"
        assert backend.lock_zygotes() == zygotes
        plain = backend.run(Job(source=FACTOR, entrypoint="factor_poly", args={"expr": "x"}, policy="plain"))
        assert plain.status == "error" and plain.error is not None
        assert plain.error.type == "ModuleNotFoundError" and "not available in the sandbox" in plain.error.message
        # Inside the lock's zygote the jail holds as it does for any child:
        # no file, no socket, no process, and nothing not loaded before.
        probe = """
import os, socket
def probe() -> dict:
    out = {}
    for name, attempt in (("open", lambda: open("/etc/hostname").read()),
                          ("socket", lambda: socket.socket()),
                          ("fork", lambda: os.fork()),
                          ("import", lambda: __import__("xml.dom.minidom"))):
        try:
            attempt()
            out[name] = "allowed"
        except Exception as exc:
            out[name] = type(exc).__name__
    return out
"""
        result = backend.run(Job(source=probe, entrypoint="probe", policy="plain", lock=sympy_lock))
        assert result.status == "ok", result.error
        assert result.result == {
            "open": "PermissionError",
            "socket": "PermissionError",
            "fork": "PermissionError",
            "import": "ModuleNotFoundError",
        }
        assert {"landlock", "seccomp"} <= set(result.layers)
        # Idle: stopped (and started again by the next call).
        pid = zygotes[sympy_lock.digest()]
        assert backend.stop_idle(idle=0) == [sympy_lock.digest()]
        assert backend.lock_zygotes() == {}
        assert backend.run(job).status == "ok"
        assert backend.lock_zygotes()[sympy_lock.digest()] != pid
    finally:
        backend.close()
    assert backend.lock_zygotes() == {}


def test_an_idle_lock_zygote_stops_by_itself(sympy_lock: Lock) -> None:
    backend = RestrictedBackend(lock_idle=0.2)
    try:
        job = Job(source=FACTOR, entrypoint="factor_poly", args={"expr": "x**2 - 1"}, policy="plain", lock=sympy_lock)
        assert backend.run(job).status == "ok"
        thread = backend._idle_thread
        assert thread is not None
        # The idle thread ends once it has stopped the last lock zygote.
        thread.join(timeout=60)
        assert not thread.is_alive()
        assert backend.lock_zygotes() == {}
    finally:
        backend.close()


# --------------------------------------------------------------------------- Docker


@pytest.mark.docker
def test_a_sympy_tool_is_verified_and_called_in_its_runtime_image(
    reg: Registry, docker_image: str, docker_client: Any
) -> None:
    tool = reg.add(FACTOR, tests=FACTOR_TESTS, requires=["sympy"]).tool
    assert tool.lock is not None
    progress: list[str] = []
    verdict = reg.verify(tool.ref, backend="docker", progress=progress.append)
    assert (verdict.status, verdict.passed) == ("verified", 2), verdict.cases
    from toolcrib.sandbox.image import runtime_tag

    tag = runtime_tag(tool.lock, docker_image)
    image = docker_client.images.get(tag)
    # The evidence names the runtime image, not the plain sandbox image.
    assert verdict.image_digest == image.id
    assert image.labels["toolcrib.runtime.lock"] == tool.lock.digest()
    outcome = reg.call(tool.ref, {"expr": "x**2 - 9"}, backend="docker")
    assert (outcome.status, outcome.result) == ("ok", "(x - 3)*(x + 3)")
    entries = reg.audit(tool=tool.ref)
    verify_entry = next(e for e in entries if e.event == "verify")
    call_entry = [e for e in entries if e.event == "call"][-1]
    assert verify_entry.details["image_digest"] == image.id
    assert call_entry.details["image_digest"] == image.id


@pytest.mark.docker
def test_no_build_is_unavailable_with_the_command_then_the_command_builds_it(
    tmp_path: Path, docker_image: str, monkeypatch: pytest.MonkeyPatch, docker_client: Any
) -> None:
    import docker
    from toolcrib.sandbox import close_backends
    from toolcrib.sandbox.image import runtime_tag

    monkeypatch.setenv("TOOLCRIB_REGISTRY", str(tmp_path / "cli.db"))
    source = "import mpmath\n\n\ndef digits_of_pi(n: int) -> str:\n    mpmath.mp.dps = n\n    return str(mpmath.pi)\n"
    (tmp_path / "pi.py").write_text(source)
    (tmp_path / "pi.tests.json").write_text('[{"args": {"n": 5}, "expected": "3.1416"}]')
    runner = CliRunner()
    added = runner.invoke(
        cli,
        ["add", str(tmp_path / "pi.py"), "--tests", str(tmp_path / "pi.tests.json"), "--requires", "mpmath", "--json"],
    )
    assert added.exit_code == 0, added.output
    reg = Registry(tmp_path / "cli.db")
    tool = reg.get("digits_of_pi")
    reg.close()
    assert tool.lock is not None
    tag = runtime_tag(tool.lock, docker_image)
    client = docker_client
    try:
        client.images.remove(tag, force=True)
    except docker.errors.ImageNotFound:
        pass
    close_backends()  # a shared Docker backend may remember the image from an earlier test
    missing = runner.invoke(cli, ["verify", tool.ref, "--backend", "docker", "--no-build"])
    assert missing.exit_code == 6, missing.output
    assert f"run `toolcrib image build --for {tool.ref}`" in missing.output
    assert tag in missing.output
    called = runner.invoke(
        cli, ["call", tool.ref, "--arg", "n=5", "--backend", "docker", "--no-build", "--allow-unverified"]
    )
    assert called.exit_code == 6, called.output
    assert f"toolcrib image build --for {tool.ref}" in called.output
    built = runner.invoke(cli, ["image", "build", "--for", tool.ref, "--json"])
    assert built.exit_code == 0, built.output
    assert client.images.get(tag).labels["toolcrib.runtime.lock"] == tool.lock.digest()
    close_backends()
    verified = runner.invoke(cli, ["verify", tool.ref, "--backend", "docker", "--no-build"])
    assert verified.exit_code == 0, verified.output
    again = runner.invoke(cli, ["call", tool.ref, "--arg", "n=5", "--backend", "docker", "--no-build"])
    assert (again.exit_code, again.output.strip()) == (0, "3.1416")


@pytest.mark.docker
def test_the_runtime_images_container_settings_equal_the_plain_sandboxs(
    sympy_lock: Lock, docker_image: str, docker_client: Any
) -> None:
    from toolcrib.sandbox.docker import LABEL_BACKEND, DockerBackend

    backend = DockerBackend(pool_size=1)
    try:
        tag, image_id = backend.prepare(sympy_lock)
        limits = Limits(memory=300, pids=20, disk=4)
        assert backend.warm(limits) and backend.warm(limits, image=tag)
        api = docker_client.api
        found = api.containers(all=True, filters={"label": f"{LABEL_BACKEND}={backend._owner}"})
        configs = {}
        for info in found:
            record = api.inspect_container(info["Id"])
            if record["HostConfig"]["Memory"] == 300 * 2**20:
                configs[record["Config"]["Image"]] = record
        assert set(configs) == {docker_image, tag}
        plain, runtime = configs[docker_image], configs[tag]
        assert runtime["Image"] == image_id
        # Limits, network, mounts, capabilities, security options: all of it.
        assert runtime["HostConfig"] == plain["HostConfig"]
        assert runtime["Mounts"] == plain["Mounts"]
        # Each container runs as a call uid of its own when toolcrib is root
        # (sandbox/uids.py): never root, never the other's.
        users = {plain["Config"]["User"], runtime["Config"]["User"]}
        assert len(users) == 2 or users == {"65534:65534"}, users
        assert not any(user.startswith("0:") or user == "0" for user in users), users
        for key in (
            "WorkingDir",
            "Hostname",
            "NetworkDisabled",
            "Cmd",
            "Entrypoint",
            "OpenStdin",
            "StdinOnce",
            "Tty",
            "Volumes",
        ):
            assert runtime["Config"].get(key) == plain["Config"].get(key), key
        # The one difference: the image's thread caps for numerical libraries.
        extra = set(runtime["Config"]["Env"]) - set(plain["Config"]["Env"])
        assert extra == {"OPENBLAS_NUM_THREADS=1", "OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1"}
        assert set(plain["Config"]["Env"]) <= set(runtime["Config"]["Env"])
        # And a call in it runs the tool with its packages.
        job = Job(
            source=FACTOR,
            entrypoint="factor_poly",
            args={"expr": "x**2 - 1"},
            policy="plain",
            lock=sympy_lock,
            limits=limits,
        )
        result = backend.run(job)
        assert (result.status, result.result, result.environment["image_digest"]) == ("ok", "(x - 1)*(x + 1)", image_id)
    finally:
        backend.close()
