"""A Docker container that never becomes ready (issue 21): the call is
``unavailable`` (exit 6 on the command line), not ``error`` ("the tool
raised", which it never did), with what the engine says about it, after one
more container was tried (safe: no job is sent before the ready line). On
the real engine, with an image whose command exits at once instead of
running the harness."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from toolcrib.sandbox import Job, Limits
from toolcrib.sandbox.docker import DockerBackend

pytestmark = pytest.mark.docker

BROKEN_TAG = "toolcrib-test-broken-start:1"


@pytest.fixture
def broken_image(docker_image: str, docker_client: Any) -> Iterator[str]:
    dockerfile = (
        f"FROM {docker_image}\n"
        'CMD ["python3", "-c", "import sys; sys.stderr.write(\'no harness here\\\\n\'); sys.exit(3)"]\n'
    )
    docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=BROKEN_TAG, rm=True)
    try:
        yield BROKEN_TAG
    finally:
        docker_client.images.remove(BROKEN_TAG, force=True)


def test_a_container_that_never_starts_is_unavailable_after_one_retry(broken_image: str) -> None:
    backend = DockerBackend(pool_size=0, image=broken_image)
    try:
        assert backend.unavailable_reason is None
        result = backend.run(Job(source="def f():\n    return 1\n", entrypoint="f", args={}, limits=Limits()))
    finally:
        backend.close()
    assert result.status == "unavailable"
    assert result.error is not None and result.error.type == "SandboxUnavailable"
    message = result.error.message
    assert message.startswith("the sandbox container did not start (")
    assert "exited" in message and "tried 2 times" in message
    assert backend.start_retries == 1
