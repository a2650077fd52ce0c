"""`toolcrib serve --http --token`: a 401 that does not send OAuth clients
into an authorization flow the server cannot complete.

The token is a static secret (MCP's authorization spec is optional, and
toolcrib has no authorization server): the 401 is RFC 6750's plain challenge
``Bearer realm="toolcrib"`` with no ``resource_metadata``, and a wrong token
adds ``error="invalid_token"``. An OAuth-capable client (the MCP Inspector;
the TypeScript SDK's client given an auth provider) probes discovery after a
401 whatever the challenge says; the discovery documents and the fallback
endpoints then answer 404 with a description naming the static token, so
the client stops there, with that message, and never redirects to an
authorization page. (Before: every probe got a 401, the client registered
at /register and failed with an empty message.)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from toolcrib import Registry

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from mcp_servers import ServerProcess  # noqa: E402
from serve_on_fake import fake_backends  # noqa: E402

TOKEN = "s3cret-token"
DOUBLE = '''
def double(x: int) -> int:
    """Double x."""
    return 2 * x
'''


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("auth") / "r.db"
    with Registry(path, actor="setup", backends=fake_backends()) as reg:
        reg.add(DOUBLE, tests=[{"args": {"x": 2}, "expected": 4}])
        reg.verify("double")
    server = ServerProcess([sys.executable, str(HERE / "serve_on_fake.py"), str(path), "--http", TOKEN])
    try:
        yield server.url
    finally:
        server.stop()


PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
ACCEPT = {"Accept": "application/json, text/event-stream"}


def test_the_challenge_is_a_plain_bearer_one(url: str) -> None:
    missing = httpx2.post(url, json=PING, headers=ACCEPT, timeout=60)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="toolcrib"'
    wrong = httpx2.post(url, json=PING, headers={**ACCEPT, "Authorization": "Bearer nope"}, timeout=60)
    assert wrong.status_code == 401
    challenge = wrong.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="toolcrib", error="invalid_token", error_description="')
    assert "resource_metadata" not in challenge
    assert "--token" in wrong.json()["error"]


def test_oauth_discovery_answers_that_there_is_no_oauth(url: str) -> None:
    root = url.removesuffix("/mcp")
    for path in (
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ):
        answer = httpx2.get(root + path, timeout=60)
        assert answer.status_code == 404, path
        assert "static bearer token, not OAuth" in answer.json()["error_description"]
    assert httpx2.post(root + "/register", json={}, timeout=60).status_code == 404
    # Nothing else is served without the token.
    assert httpx2.get(root + "/anything", timeout=60).status_code == 401


def test_an_oauth_client_stops_with_the_reason_and_never_redirects(url: str) -> None:
    node = shutil.which("node")
    assert node, "node is not installed (tests/run.sh installs it)"
    done = subprocess.run(
        [node, str(HERE / "ts_client" / "oauth_client.mjs"), url],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=HERE / "ts_client",
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["redirected"] == [] and report["saved"] == [], report
    assert "static bearer token, not OAuth" in report["error"], report
    # The MCP endpoint's 401, then only 404s from the discovery it tried.
    statuses = [request.rsplit(" ", 1)[1] for request in report["requests"]]
    assert statuses[0] == "401" and set(statuses[1:]) == {"404"}, report
