"""Shared fixtures.

`backend` runs a test once per sandbox backend. The Docker backend needs a
running engine: without one the Docker cases are skipped on a developer's
machine, and *fail* when CI is set (CI must run them for real).
"""

from __future__ import annotations

import os

import pytest

from toolcrib.sandbox import close_backends


def docker_engine_available() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=5)
        client.ping()
        client.close()
        return True
    except Exception:  # noqa: BLE001 - any failure means "no engine"
        return False


def require_docker() -> None:
    """Skip (or, under CI, fail) when no Docker engine answers."""
    if docker_engine_available():
        return
    if os.environ.get("CI"):
        pytest.fail("CI is set but no Docker engine answers: the Docker tests must run for real in CI")
    pytest.skip("no Docker engine")


@pytest.fixture(params=["restricted", pytest.param("docker", marks=pytest.mark.docker)])
def backend(request: pytest.FixtureRequest) -> str:
    """The name of a sandbox backend; every test using it runs on both."""
    if request.param == "docker":
        require_docker()
        request.getfixturevalue("docker_image")
    return request.param


@pytest.fixture(scope="session")
def docker_image() -> str:
    """The sandbox image tag for this checkout, built offline once if missing
    (cached by the content hash, so this is instant when present)."""
    require_docker()
    from toolcrib.sandbox.image import build_image

    return build_image(offline=True)["tag"]


@pytest.fixture(scope="session", autouse=True)
def _close_backends_at_exit():
    yield
    close_backends()
