"""The backend seam (`sandbox/backends.py`, `contract.Backend`,
`sandbox/fake.py`): one table of backends by name, injection into a
`Registry` (as httpx's ``transport=``), and the fake that tests use where the
sandbox is not what is under test.

The real backends keep the shared contract suite (tests/sandbox/test_contract.py,
parametrized over the table's names by the `backend` fixture)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from toolcrib.registry import Registry
from toolcrib.sandbox import BACKEND_NAMES, backends, get_backend
from toolcrib.sandbox.contract import ErrorInfo, Job, Result
from toolcrib.sandbox.fake import FakeBackend

ADD = 'def add(a: int, b: int) -> int:\n    """Add two integers."""\n    return a + b\n'
ADD_TESTS = [{"args": {"a": 1, "b": 2}, "expected": 3}, {"args": {"a": -1, "b": -2}, "expected": -3}]


def test_a_backend_is_added_by_one_line_in_the_table(tmp_path: Path) -> None:
    """Register a name with a factory: verify and call through `Registry`
    run on it end to end, and the audit names it."""
    built: list[FakeBackend] = []

    def factory(**options: object) -> FakeBackend:
        built.append(FakeBackend(name="echo", environment={"node": "n1"}))
        return built[-1]

    with backends.registered("echo", factory), Registry(tmp_path / "r.db", actor="tester") as reg:
        reg.add(ADD, tests=ADD_TESTS)
        verdict = reg.verify("add", backend="echo")
        outcome = reg.call("add", {"a": 20, "b": 22}, backend="echo")
        entry = reg.audit(event="call")[-1]
    assert (verdict.status, verdict.backend, verdict.passed) == ("verified", "echo", 2)
    assert (outcome.status, outcome.result) == ("ok", 42)
    assert entry.details["backend"] == "echo" and entry.details["status"] == "ok"
    assert len(built) == 1 and [job.args for job in built[0].jobs] == [c["args"] for c in ADD_TESTS] + [
        {"a": 20, "b": 22}
    ]
    # The block is over: the table is as it was, and the backend it built is closed.
    assert "echo" not in backends.FACTORIES and built[0].closed
    with pytest.raises(ValueError, match="unknown backend 'echo'"):
        get_backend("echo")


def test_an_injected_backend_serves_the_registry_and_stays_its_owners(tmp_path: Path) -> None:
    fake = FakeBackend(lambda job: job.args["a"] * job.args["b"], name="restricted")
    with Registry(tmp_path / "r.db", actor="tester", backends={"restricted": fake}) as reg:
        reg.add(ADD, tests=ADD_TESTS)
        verdict = reg.verify("add")
        outcome = reg.call("add", {"a": 6, "b": 7}, allow_unverified=True)
    # The handler multiplies: the verdict and the call came from the fake, not a zygote.
    assert (verdict.status, verdict.failed) == ("failed", 2)
    assert (outcome.status, outcome.result) == ("ok", 42)
    assert [job.entrypoint for job in fake.jobs] == ["add"] * 3
    assert not fake.closed  # an instance given in is its owner's to close


def test_an_injected_factory_is_built_once_and_closed_with_the_registry(tmp_path: Path) -> None:
    made: list[FakeBackend] = []

    def factory() -> FakeBackend:
        made.append(FakeBackend())
        return made[-1]

    with Registry(tmp_path / "r.db", actor="tester", backends={"restricted": factory}) as reg:
        reg.add(ADD, tests=ADD_TESTS)
        reg.verify("add")
        reg.call("add", {"a": 1, "b": 1})
    assert len(made) == 1 and made[0].closed


def test_the_policy_default_is_the_backends_own(tmp_path: Path) -> None:
    """`Backend.default_policy` decides, not the backend's name."""

    class Contained(FakeBackend):
        def default_policy(self, declared: str) -> str:  # type: ignore[override]
            return "plain"

    fake = Contained(name="restricted")
    with Registry(tmp_path / "r.db", actor="tester", backends={"restricted": fake}) as reg:
        reg.add(ADD, tests=ADD_TESTS)
        reg.call("add", {"a": 1, "b": 1}, allow_unverified=True)
        reg.call("add", {"a": 1, "b": 1}, allow_unverified=True, policy="restricted")
    assert [job.policy for job in fake.jobs] == ["plain", "restricted"]


def test_a_runtime_is_prepared_through_the_protocol(tmp_path: Path) -> None:
    """`prepare` is asked of every backend for a version with packages (a
    no-op where nothing is needed), never looked up with getattr."""
    from toolcrib.registry.calls import prepare_runtime
    from toolcrib.registry.errors import SandboxUnavailable
    from toolcrib.sandbox.contract import Lock, LockedPackage
    from toolcrib.sandbox.image import RuntimeImageMissing

    class Missing(FakeBackend):
        def prepare(self, lock: Lock, *, build: bool | None = None, progress: object = None) -> None:
            raise RuntimeImageMissing("toolcrib-runtime:x", "toolcrib image build --for t@1.0.0")

    lock = Lock(
        requirements=("six",),
        packages=(
            LockedPackage(name="six", version="1.16.0", filename="six-1.16.0-py2.py3-none-any.whl", sha256="0" * 64),
        ),
    )
    with pytest.raises(SandboxUnavailable, match="toolcrib image build --for t@1.0.0"):
        prepare_runtime(Missing(), "t@1.0.0", lock, no_build=True, progress=None)
    prepare_runtime(FakeBackend(), "t@1.0.0", lock, no_build=True, progress=None)


def test_the_fake_is_not_a_production_backend() -> None:
    """Only tests reach it: the CLI's and the server's choices are the table's
    production names, and the shared table does not know it."""
    assert "fake" not in BACKEND_NAMES
    with pytest.raises(ValueError, match="unknown backend 'fake'"):
        get_backend("fake")


def test_the_cli_refuses_the_fake_by_name(tc) -> None:
    result = tc("call", "add", "--backend", "fake", "--args", "{}")
    assert result.exit_code == 2
    assert "'fake' is not one of" in result.output


def test_the_fake_keeps_the_contract() -> None:
    """Every outcome a Result, even when the handler raises or returns what
    is not JSON; each job recorded."""
    fake = FakeBackend()
    ok = fake.run(Job(source=ADD, entrypoint="add", args={"a": 2, "b": 3}))
    boom = fake.run(Job(source="def f():\n    raise KeyError('k')\n", entrypoint="f"))
    snippet = fake.run(Job(source=ADD, entrypoint="add", mode="snippet", snippet="ans = add(1, add(2, 3))"))
    odd = FakeBackend(lambda job: {1, 2}).run(Job(source=ADD, entrypoint="add"))
    given = Result(status="limit", backend="fake", limit="wall")
    assert FakeBackend(lambda job: given).run(Job(source=ADD, entrypoint="add")) is given
    assert (ok.status, ok.result) == ("ok", 5)
    assert (boom.status, boom.error) == ("error", ErrorInfo(type="KeyError", message="'k'", line=2))
    assert (snippet.status, snippet.result) == ("ok", 6)
    assert odd.status == "error" and odd.error is not None and odd.error.type == "TypeError"
    assert len(fake.jobs) == 3


def test_the_environment_map_holds_strings_only() -> None:
    """What only one backend knows (Docker's image) is an entry of
    `Result.environment`, never a field of the contract."""
    assert Result(status="ok", backend="x", environment={"image_digest": "sha256:1"}).to_json()["environment"] == {
        "image_digest": "sha256:1"
    }
    with pytest.raises(ValueError, match="environment"):
        Result(status="ok", backend="x", environment={"n": 1})  # type: ignore[dict-item]
    assert "image_digest" not in Result.__dataclass_fields__


def test_the_cli_runs_on_the_table_entry(tc, fake_sandbox: FakeBackend, tmp_path: Path) -> None:
    """A door takes the table's backends: with the fake in place of
    "restricted" for this test (`fake_sandbox`), `add`, `verify` and
    `call --json` run end to end without a zygote, and the table is
    restored afterwards (conftest's fixture)."""
    tool, tests = tmp_path / "add.py", tmp_path / "add.json"
    tool.write_text(ADD)
    tests.write_text(json.dumps(ADD_TESTS))
    assert tc("add", str(tool), "--tests", str(tests)).exit_code == 0
    assert tc("verify", "add").exit_code == 0
    called = tc("call", "add", "--args", '{"a": 40, "b": 2}', "--json")
    assert called.exit_code == 0 and json.loads(called.stdout)["result"] == 42
    assert [job.args for job in fake_sandbox.jobs][-1] == {"a": 40, "b": 2}


def test_the_fake_counts_a_snippets_calls_and_captures_prints() -> None:
    """What LATM `make` reads of a snippet run (`Result.calls`), as the real
    backends report it; a stubbed entrypoint does not run the tool."""
    fake = FakeBackend()
    ran = fake.run(Job(source=ADD, entrypoint="add", mode="snippet", snippet="print('hi')\nans = add(1, add(2, 3))"))
    stubbed = fake.run(
        Job(
            source="def f():\n    raise KeyError('ran')\n",
            entrypoint="f",
            mode="snippet",
            snippet="f()\nans = 1",
            stub_entrypoint=True,
        )
    )
    assert (ran.status, ran.result, ran.calls, ran.stdout) == ("ok", 6, 2, "hi\n")
    assert (stubbed.status, stubbed.result, stubbed.calls) == ("ok", 1, 1)


def test_the_mcp_server_starts_and_calls_its_backend_through_the_protocol(
    reg: Registry, fake_sandbox: FakeBackend
) -> None:
    """`serve`'s warm-up asks the backend to `start` (no getattr), and its
    calls run on the table's backend of its name: here the fake, in process."""
    from toolcrib.sandbox.contract import Cancel

    from toolcrib.mcp_server import ServeOptions, ToolServer

    reg.add(ADD, tests=ADD_TESTS)
    assert reg.verify("add").status == "verified"
    server = ToolServer(ServeOptions(registry=reg.path))
    try:
        server.warm_up()
        served = server._call("client", "add", {"a": 2, "b": 3}, Cancel())  # the call a client's request runs
    finally:
        server.close()
    assert fake_sandbox.started
    assert served.structured_content == {"result": 5} and not served.is_error
    assert fake_sandbox.jobs[-1].args == {"a": 2, "b": 3}


def test_an_unknown_backend_is_reported_after_the_arguments_as_before(reg: Registry) -> None:
    """Building the backend before choosing the policy moved no error: bad
    arguments are still reported first, an unknown name is still an audited
    'invalid' without argument fields, and nothing ran."""
    from toolcrib.registry.errors import ArgumentsError, InvalidInput

    reg.add(ADD, tests=ADD_TESTS)
    with pytest.raises(ArgumentsError):
        reg.call("add", {"a": "x", "b": 1}, backend="nope", allow_unverified=True)
    with pytest.raises(InvalidInput, match="unknown backend 'nope'"):
        reg.call("add", {"a": 1, "b": 1}, backend="nope", allow_unverified=True)
    bad_args, unknown = (e.details for e in reg.audit(event="call"))
    assert bad_args["status"] == "invalid" and bad_args["fields"]
    assert unknown["status"] == "invalid" and "fields" not in unknown and "unknown backend" in unknown["reason"]


def test_doctor_checks_a_new_backend_through_the_protocol_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """A backend added to the table shows in `doctor` with no line of its
    own there: its `health()` and one trivial call; a broken one fails the
    report. (No engine: the Docker section fails quickly and apart.)"""
    from toolcrib.sandbox.doctor import doctor

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    good = FakeBackend(name="echo", environment={"node": "n1"})
    gone = FakeBackend(lambda job: Result(status="unavailable", backend="gone", error=ErrorInfo("Down", "no node")))
    gone.health = lambda: {"backend": "gone", "available": True}  # type: ignore[method-assign]
    with backends.registered("echo", good), backends.registered("gone", gone):
        report = doctor(probe=False, restricted=False)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["echo backend"]["ok"] is True and "trivial call: ok" in checks["echo backend"]["detail"]
    assert report["echo"]["available"] is True and report["echo"]["backend"] == "echo"
    assert [job.entrypoint for job in good.jobs] == ["f"]
    assert checks["gone backend"]["ok"] is False and "unavailable (no node)" in checks["gone backend"]["detail"]
    assert report["checks"][0]["name"] == "engine reachable"  # Docker's section first, as before
    assert report["ok"] is False


def test_doctor_reports_a_ray_backend_nobody_set_up_without_failing(monkeypatch: pytest.MonkeyPatch) -> None:
    """No cluster named: `doctor` says the ray backend is not in use, and does
    not try to reach a cluster (nor fail the report for it)."""
    from toolcrib.sandbox.doctor import doctor

    for name in ("TOOLCRIB_RAY_ADDRESS", "RAY_ADDRESS", "TOOLCRIB_RAY_START_LOCAL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    # A ray backend of this test's own, built under this environment (the table is restored after).
    with backends.registered("ray", _ray_factory):
        report = doctor(probe=False, restricted=False)
    check = next(c for c in report["checks"] if c["name"] == "ray backend")
    assert check["ok"] is True and check["detail"].startswith("not in use: no Ray cluster named"), check
    assert report["ray"]["configured"] is False


def _ray_factory(**options: object) -> object:
    from toolcrib.sandbox.ray_backend import RayBackend

    return RayBackend(**options)  # type: ignore[arg-type]


def test_a_ray_cluster_beyond_loopback_needs_token_authentication(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused before any packet is sent: Ray without its token lets anyone
    who reaches the head run code on every node."""
    from toolcrib.sandbox.ray_backend import RayBackend

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    result = RayBackend("192.0.2.1:6379").run(Job(source="def f():\n    return 1\n", entrypoint="f"))
    assert result.status == "unavailable" and result.error is not None
    assert "without token authentication" in result.error.message and "192.0.2.1:6379" in result.error.message
