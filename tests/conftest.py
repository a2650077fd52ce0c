"""Shared fixtures.

`backend` runs a test once per sandbox backend. The Docker backend needs a
running engine: without one the Docker cases are skipped on a developer's
machine, and *fail* when CI is set (CI must run them for real).

`reg` is an empty registry (actor `registry_actor`, "tester"), `tc` the CLI on
the registry at `cli_registry` (a separate file, unless a module says
otherwise), `rb` a restricted backend that may run the plain policy. A module
whose tests need something else overrides the small fixture that differs (its
own `registry_actor`, its `cli_registry` pointing at `reg.path`, or a `reg`
that takes the shared one and adds the module's tools), never a copy of the
whole fixture.
"""

from __future__ import annotations

import gc
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from toolcrib.sandbox import BACKEND_NAMES, close_backends

if TYPE_CHECKING:
    from click.testing import Result
    from toolcrib.sandbox.fake import FakeBackend
    from toolcrib.sandbox.restricted import RestrictedBackend

    from toolcrib import Registry
    from toolcrib.latm import Task


def docker_engine_available() -> bool:
    # No DOCKER_HOST and no socket: no engine.
    if not os.environ.get("DOCKER_HOST") and not os.path.exists("/var/run/docker.sock"):
        return False
    try:
        import docker

        client = docker.from_env(timeout=5)
        try:
            client.ping()
        finally:
            client.close()
        return True
    except Exception:  # noqa: BLE001 - any failure means "no engine"
        pass
    # docker-py leaves the socket of a failed connect to the garbage
    # collector: collect it here (once the exception and its frames are
    # gone), its ResourceWarning silenced, rather than let the warning fail
    # whichever test runs next.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    return False


def require_docker() -> None:
    """Skip (or, under CI, fail) when no Docker engine answers."""
    if docker_engine_available():
        return
    if os.environ.get("CI"):
        pytest.fail("CI is set but no Docker engine answers: the Docker tests must run for real in CI")
    pytest.skip("no Docker engine")


# Every real backend of the table (`sandbox/backends.py`): a backend added
# there runs the shared contract suite with no other change (those that need
# an engine carry its marker here).
_NEEDS = {"docker": pytest.mark.docker, "ray": pytest.mark.ray}


@pytest.fixture(params=[pytest.param(name, marks=[_NEEDS[name]] if name in _NEEDS else []) for name in BACKEND_NAMES])
def backend(request: pytest.FixtureRequest) -> str:
    """The name of a sandbox backend; every test using it runs on each of the table's."""
    if request.param == "docker":
        require_docker()
        request.getfixturevalue("docker_image")
    if request.param == "ray":
        request.getfixturevalue("ray_cluster")
    return request.param


def require_ray() -> None:
    """Skip (or, under CI, fail) without what the Ray cluster needs: the ray
    extra, and root for the private network namespace it runs in."""
    missing = []
    try:
        import ray  # noqa: F401
    except ImportError:
        missing.append("the ray extra (pip install 'toolcrib[ray]')")
    if os.geteuid() != 0:
        missing.append("root (the cluster runs in a private network namespace)")
    if not missing:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but the Ray tests lack {' and '.join(missing)}: they must run for real in CI")
    pytest.skip(f"no {' and '.join(missing)}")


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """A two-node Ray cluster (head and one worker node, one CPU each) in
    this process's private network namespace (tests/raycluster.py); the
    `ray` backend of the table connects to it (one actor per node)."""
    require_ray()
    from raycluster import RayCluster, enter_private_network
    from toolcrib.sandbox import backends
    from toolcrib.sandbox.ray_backend import ACTORS_ENV, ADDRESS_ENV

    enter_private_network()
    factory = backends.FACTORIES["ray"]
    cluster = RayCluster()
    saved = {name: os.environ.get(name) for name in (ADDRESS_ENV, ACTORS_ENV)}
    try:
        cluster.start_head()
        cluster.connect()
        cluster.add_node("worker")
        cluster.wait_for_nodes(2)
        os.environ[ADDRESS_ENV] = cluster.address
        os.environ[ACTORS_ENV] = "1"
        yield cluster
    finally:
        backends.register("ray", factory)  # closes the shared ray backend (its actors)
        cluster.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The `ray` tests run last: their cluster moves this process into a
    private network namespace, where nothing but loopback is reachable."""
    items.sort(key=lambda item: item.get_closest_marker("ray") is not None)


@pytest.fixture
def wasm_ready() -> None:
    """The wasm backend installed and compiled (`toolcrib wasm install`, which
    tests/run.sh runs): skipped without it, except in CI, where it fails."""
    from toolcrib.sandbox.wasm import status

    facts = status()
    if facts.get("available"):
        if os.environ.get("CI") and facts.get("image_note"):
            # CI runs the wasm tests on the harness image (tests/run.sh installs its Wizer).
            pytest.fail(f"CI is set but the wasm backend is not on its harness image: {facts['image_note']}")
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but the wasm backend is not ready: {facts.get('error')}")
    pytest.skip(f"the wasm backend is not ready: {facts.get('error')}")


@pytest.fixture(scope="session")
def docker_image() -> str:
    """The sandbox image tag for this checkout, built offline once if missing
    (cached by the content hash, so this is instant when present)."""
    require_docker()
    from toolcrib.sandbox.image import build_image

    return build_image(offline=True)["tag"]


@pytest.fixture
def docker_client(docker_image: str) -> Iterator[Any]:
    """A docker-py client of the test's own, closed when the test ends (its
    connection pool would otherwise be left to the collector: a ResourceWarning)."""
    from toolcrib.sandbox.image import connect

    client = connect(timeout=60)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session", autouse=True)
def _close_backends_at_exit():
    yield
    close_backends()


# -- a registry, the CLI on one, a backend ---------------------------------------------


@pytest.fixture
def registry_actor() -> str:
    """Who `reg` records as the actor; a module overrides it to name another."""
    return "tester"


@pytest.fixture
def registry_path(tmp_path: Path) -> Path:
    """Where `reg` keeps its database."""
    return tmp_path / "r.db"


@pytest.fixture
def registry_backends() -> dict[str, Any] | None:
    """What `reg` is given as ``backends=`` (None: the real, shared ones); a
    module whose point is not the sandbox overrides it with a `FakeBackend`."""
    return None


@pytest.fixture
def reg(registry_path: Path, registry_actor: str, registry_backends: dict[str, Any] | None) -> Iterator[Registry]:
    """An empty registry in this test's own directory, closed after it."""
    from toolcrib import Registry

    with Registry(registry_path, actor=registry_actor, backends=registry_backends) as registry:
        yield registry


@pytest.fixture
def fake_sandbox() -> Iterator[FakeBackend]:
    """A `FakeBackend` serving the name "restricted" in the table of backends
    for one test: the CLI, the MCP server in this process and the LATM loop
    run on it (they take the table's backends; `reg` takes injection). For
    tests whose point is not the sandbox; the table is restored after."""
    from toolcrib.sandbox import backends
    from toolcrib.sandbox.fake import FakeBackend

    fake = FakeBackend(name="restricted")
    with backends.registered("restricted", fake):
        yield fake


@pytest.fixture
def cli_registry(tmp_path: Path) -> Path:
    """The registry file `tc` runs the CLI on: its own file, apart from `reg`'s.
    A module whose CLI tests read `reg`'s tools overrides it with `reg.path`."""
    return tmp_path / "cli.db"


CliInvoke = Callable[..., "Result"]


@pytest.fixture
def tc(cli_registry: Path, monkeypatch: pytest.MonkeyPatch) -> CliInvoke:
    """`tc("add", path, "--json", input=...)`: the CLI in-process on
    `cli_registry`, as actor "tester", exceptions left to propagate (a
    traceback fails the test instead of becoming an exit code)."""
    from click.testing import CliRunner
    from toolcrib.cli import cli

    monkeypatch.setenv("TOOLCRIB_ACTOR", "tester")
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(cli, ["--registry", str(cli_registry), *args], input=input, catch_exceptions=False)

    return invoke


@pytest.fixture(scope="module")
def rb() -> Iterator[RestrictedBackend]:
    """A started restricted backend that may run the plain policy (one per
    module: its zygote is the expensive part), closed after the module."""
    from toolcrib.sandbox.restricted import RestrictedBackend

    backend = RestrictedBackend(allow_plain=True)
    backend.start()
    yield backend
    backend.close()


@pytest.fixture
def fresh_guard_state() -> Iterator[None]:
    """The in-process policy guards' state, reset before and after a test that
    runs tool code in this process (a violation must not leak to the next)."""
    from toolcrib.sandbox.inside.guards import STATE

    STATE.reset(1 << 20)
    yield
    STATE.reset(1 << 20)


@pytest.fixture
def sort_task(tmp_path: Path) -> Task:
    """The LATM word-sorting task (tests/latm_tasks.py), loaded from a file."""
    from latm_tasks import SORT, write_json

    from toolcrib.latm import load_task

    return load_task(write_json(tmp_path / "word_sorting.json", SORT))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A wheel and site cache of this test's own (TOOLCRIB_CACHE)."""
    monkeypatch.setenv("TOOLCRIB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"
