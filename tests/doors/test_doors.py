"""Doors that check who knocks (issue 15, part 4): `serve` and `browse` against
DNS rebinding, and `serve --allow-add` against one client changing what the
others are served.

Real servers in subprocesses on ephemeral ports (the bound port is read from
what they print), real clients: the `mcp` SDK's own client for MCP, and
`http.client` for raw requests whose Host and Origin headers are forged the
way a rebinding page's browser would send them. 127.0.0.2 is loopback but not
one of the names served without a token (127.0.0.1, ::1, localhost): binding
it stands in for "any other address" while nothing leaves the machine.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client, ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from reviewing import approve_waiting

from toolcrib import Registry

TOOLCRIB = str(Path(sys.executable).with_name("toolcrib"))
DEADLINE = 60.0  # seconds; only a hang guard: a correct server answers at once
# Two clients that call themselves the same: identity a client declares is no
# identity, so isolation must hold even then.
CLIENT = types.Implementation(name="same-agent", version="1.0")
EVIL_ORIGIN = "http://evil.example"

DOUBLE = '''
def double(x: int) -> int:
    """Double a number."""
    return 2 * x
'''
# What a hostile client offers as the "next version" of double.
DOUBLE_PATCHED = '''
def double(x: int) -> int:
    """Double a number."""
    return 2 * x + 1
'''
TRIPLE = '''
def triple(x: int) -> int:
    """Triple a number."""
    return 3 * x
'''


@pytest.fixture()
def registry(tmp_path: Path) -> Path:
    path = tmp_path / "registry.db"
    with Registry(path, actor="setup") as reg:
        reg.add(DOUBLE, tests=[{"args": {"x": 2}, "expected": 4}])
        assert reg.verify("double").status == "verified"
    return path


# -- servers -------------------------------------------------------------------------


class Served:
    """A `toolcrib` server subprocess and the host:port it announced on stderr."""

    def __init__(self, args: list[str], pattern: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [TOOLCRIB, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        assert self.proc.stderr is not None
        first: list[str] = []
        reader = threading.Thread(
            target=lambda: first.append(self.proc.stderr.readline() if self.proc.stderr else ""), daemon=True
        )
        reader.start()
        reader.join(timeout=120)
        match = re.search(pattern, first[0] if first else "")
        if match is None:
            self.stop()
            raise AssertionError(f"no address announced: {first!r}")
        self.host, self.port = match.group("host"), int(match.group("port"))
        self.err: list[str] = []
        # Never block on a full pipe; keep what it says.
        self._drain = threading.Thread(
            target=lambda: self.err.append(self.proc.stderr.read() if self.proc.stderr else ""), daemon=True
        )
        self._drain.start()

    @property
    def netloc(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # Close the pipe once its reader has seen the end (else a ResourceWarning).
        if hasattr(self, "_drain"):
            self._drain.join(timeout=DEADLINE)
        if self.proc.stderr is not None:
            self.proc.stderr.close()

    def stderr(self) -> str:
        """Everything it wrote after the address (once stopped)."""
        self.stop()
        self._drain.join(timeout=DEADLINE)
        return "".join(self.err)


_MCP_URL = r"listening on http://(?P<host>[0-9.]+):(?P<port>\d+)/mcp"


@pytest.fixture()
def serving(registry: Path) -> Iterator[Any]:
    started: list[Served] = []

    def start(*extra: str, env: dict[str, str] | None = None) -> Served:
        server = Served(["--registry", str(registry), "serve", "--poll", "0.1", "--http", "0", *extra], _MCP_URL, env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _raw(server: Served, method: str, path: str, headers: dict[str, str], body: Any = None) -> http.client.HTTPResponse:
    """One HTTP request with exactly these headers (Host included), read whole."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=DEADLINE)
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers=headers)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def _mcp_headers(server: Served, **extra: str) -> dict[str, str]:
    return {
        "Host": server.netloc,
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        **extra,
    }


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}


def _session(server: Served, **extra: str) -> str:
    """A handshake-era session opened with honest headers; its id."""
    response = _raw(server, "POST", "/mcp", _mcp_headers(server, **extra), INITIALIZE)
    assert response.status == 200, response.status
    session = response.getheader("mcp-session-id")
    assert session
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    headers = _mcp_headers(server, **extra, **{"mcp-session-id": session, "mcp-protocol-version": "2025-06-18"})
    assert _raw(server, "POST", "/mcp", headers, initialized).status == 202
    return session


def _call_double(server: Served, session: str, **extra: str) -> int:
    headers = _mcp_headers(server, **{"mcp-session-id": session, "mcp-protocol-version": "2025-06-18"})
    headers.update(extra)
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "double", "arguments": {"x": 1}}}
    return _raw(server, "POST", "/mcp", headers, call).status


def _calls(registry: Path) -> int:
    with Registry(registry, create=False) as reg:
        return len(reg.audit(event="call"))


@asynccontextmanager
async def mcp_session(server: Served, token: str | None = None) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(DEADLINE, read=300)) as client:
        async with streamable_http_client(f"http://{server.netloc}/mcp", http_client=client) as (read, write):
            async with ClientSession(read, write, client_info=CLIENT) as session:
                await session.initialize()
                yield session


# -- serve: who may listen where ---------------------------------------------------------


def _serve_once(registry: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run serve expecting a refusal; a server that starts instead is stopped and shows as a failure."""
    proc = subprocess.Popen(
        [TOOLCRIB, "--registry", str(registry), "serve", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TOOLCRIB_SERVE_TOKEN": ""},
    )
    assert proc.stderr is not None
    first = proc.stderr.readline()
    if "listening on http" in first:
        proc.terminate()
        proc.communicate(timeout=30)  # waits, and closes both pipes
        raise AssertionError(f"serve started instead of refusing: {first!r}")
    out, rest = proc.communicate(timeout=DEADLINE)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, first + rest)


@pytest.mark.parametrize("host", ["127.0.0.2", "0.0.0.0"])
def test_any_address_but_the_local_names_needs_a_token(registry: Path, host: str) -> None:
    extra = ["--allow-remote"] if host == "0.0.0.0" else []
    result = _serve_once(registry, "--http", "0", "--host", host, *extra)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs a bearer token" in lines[0], result.stderr
    assert result.stdout == ""


def test_with_a_token_every_request_must_carry_it(serving: Any, registry: Path) -> None:
    server = serving("--host", "127.0.0.2", "--token", "s3cret")
    assert server.host == "127.0.0.2"
    assert _raw(server, "POST", "/mcp", _mcp_headers(server), INITIALIZE).status == 401
    wrong = _mcp_headers(server, Authorization="Bearer s3cret-not")
    assert _raw(server, "POST", "/mcp", wrong, INITIALIZE).status == 401
    assert _raw(server, "POST", "/mcp", _mcp_headers(server, Authorization="s3cret"), INITIALIZE).status == 401

    async def body() -> None:
        async with mcp_session(server, token="s3cret") as session:
            assert (await session.call_tool("double", {"x": 4})).structured_content == {"result": 8}

    anyio.run(body)


@pytest.mark.parametrize("where", ["loopback", "token"])
def test_forged_host_and_origin_never_reach_a_tool(serving: Any, registry: Path, where: str) -> None:
    """A rebinding page's requests carry its own name as Host and its own
    origin as Origin: refused before any handler, a call included."""
    token = "s3cret"
    server = serving("--host", "127.0.0.2", "--token", token) if where == "token" else serving()
    auth = {"Authorization": f"Bearer {token}"} if where == "token" else {}
    session = _session(server, **auth)
    forged_host = {"Host": f"evil.example:{server.port}", **auth}
    assert _call_double(server, session, **forged_host) == 421
    assert _call_double(server, session, Origin=EVIL_ORIGIN, **auth) == 403
    assert _call_double(server, session, Origin="null", **auth) == 403
    # Every request, not only the MCP endpoint's.
    assert _raw(server, "GET", "/", {"Host": f"evil.example:{server.port}", **auth}).status == 421
    # The same port under another loopback name is another origin too.
    other = "127.0.0.2" if server.host == "127.0.0.1" else "127.0.0.1"
    assert _call_double(server, session, Host=f"{other}:{server.port}", **auth) == 421
    assert _calls(registry) == 0
    # The honest request, same session, goes through: the headers were the only difference.
    assert _call_double(server, session, Origin=f"http://{server.netloc}", **auth) == 200
    assert _calls(registry) == 1
    # The forged values were answered, not echoed to the operator's terminal.
    assert "evil" not in server.stderr()


def test_sigterm_ends_an_http_server_without_a_traceback(serving: Any) -> None:
    server = serving()
    assert server.stderr() == "Terminated.\n"
    assert server.proc.returncode == -signal.SIGTERM


def test_allow_host_and_allow_origin_extend_the_list(serving: Any, registry: Path) -> None:
    server = serving("--allow-host", "tools.example:8443", "--allow-origin", "https://app.example")
    session = _session(server)
    assert _call_double(server, session, Host="tools.example:8443", Origin="https://app.example") == 200
    assert _call_double(server, session, Host="tools.example:8444") == 421
    assert _call_double(server, session, Origin="https://app.example.evil") == 403


# -- browse ------------------------------------------------------------------------------


@pytest.fixture()
def browsing(registry: Path) -> Iterator[Served]:
    with Registry(registry, actor="setup") as reg:
        assert reg.call("double", {"x": 21}).status == "ok"
    server = Served(
        ["browse", "--port", "0"],
        r" at http://(?P<host>[0-9.]+):(?P<port>\d+)/",
        env={"TOOLCRIB_REGISTRY": str(registry)},
    )
    yield server
    server.stop()


AUDIT_PAGE = "/registry/tool_audit_log.json?tool=double"


@pytest.mark.parametrize(
    "forged",
    [
        {"Host": "evil.example:{port}"},
        {"Host": "evil.example"},
        {"Host": "127.0.0.1:{port}", "Origin": EVIL_ORIGIN},
    ],
)
def test_browse_refuses_a_foreign_host(browsing: Served, forged: dict[str, str]) -> None:
    headers = {k: v.format(port=browsing.port) for k, v in forged.items()}
    response = _raw(browsing, "GET", AUDIT_PAGE, headers)
    assert 400 <= response.status < 500, response.status
    assert "evil" not in browsing.stderr()


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost"])
def test_browse_serves_the_audit_log_to_its_own_names(browsing: Served, name: str) -> None:
    conn = http.client.HTTPConnection(browsing.host, browsing.port, timeout=DEADLINE)
    conn.request("GET", AUDIT_PAGE, headers={"Host": f"{name}:{browsing.port}"})
    response = conn.getresponse()
    page = json.loads(response.read())
    conn.close()
    assert response.status == 200
    assert any("double@" in json.dumps(row) for row in page["rows"])


# -- serve --allow-add: one client's additions are its own ------------------------------------


def _names(listed: types.ListToolsResult) -> set[str]:
    return {t.name for t in listed.tools}


def test_an_added_tool_is_served_only_to_the_client_that_added_it(serving: Any, registry: Path) -> None:
    server = serving("--allow-add")

    async def body() -> None:
        async with mcp_session(server) as a, mcp_session(server) as b:
            added = await a.call_tool("add_tool", {"source": TRIPLE, "tests": [{"args": {"x": 2}, "expected": 6}]})
            assert not added.is_error, added.structured_content
            ref = added.structured_content["tool"]
            name = ref.split("@")[0]
            assert name != "triple" and name.endswith("_triple"), ref
            verified = await a.call_tool("verify_tool", {"ref": ref})
            assert verified.structured_content["status"] == "verified", verified.structured_content
            # Made over MCP: it waits for a reviewer (a new registry's review is "models").
            assert name not in _names(await a.list_tools())
            with Registry(registry, actor="reviewer") as reg:
                assert approve_waiting(reg, registry.parent) == [ref]
            assert name in _names(await a.list_tools())
            assert (await a.call_tool(name, {"x": 5})).structured_content == {"result": 15}
            # B says it is the same client, and still sees none of it.
            assert not any("triple" in n for n in _names(await b.list_tools()))
            for attempt in (name, "triple"):
                with pytest.raises(MCPError, match="unknown tool"):
                    await b.call_tool(attempt, {"x": 5})
            # Nor can B verify (or re-verify) what A added.
            other = await b.call_tool("verify_tool", {"ref": ref})
            assert other.is_error

    anyio.run(body)
    with Registry(registry, create=False) as reg:
        assert [v.name for v in reg.list()] and "triple" not in {v.name for v in reg.list()}


def test_add_tool_declares_the_form_of_an_unannotated_parameter(serving: Any, registry: Path) -> None:
    server = serving("--allow-add")
    rows = "def rows(table):\n    return len(table)\n"

    async def body() -> str:
        async with mcp_session(server) as a:
            bad = await a.call_tool("add_tool", {"source": rows, "params": {"tabel": "dataframe"}})
            assert bad.is_error
            assert "no such parameter" in bad.meta["toolcrib/outcome"]["error"]["message"]
            added = await a.call_tool("add_tool", {"source": rows, "params": {"table": "dataframe"}})
            assert not added.is_error, added.structured_content
            return str(added.structured_content["tool"])

    ref = anyio.run(body)
    with Registry(registry, create=False) as reg:
        table = reg.get(ref).signature.input_schema["properties"]["table"]
    assert table["x-toolcrib-form"] == "dataframe" and table["x-toolcrib-declared"] is True


def test_a_new_version_of_an_existing_tool_is_refused(serving: Any, registry: Path) -> None:
    server = serving("--allow-add")
    with Registry(registry, create=False) as reg:
        before = [(v.version, v.sha256) for v in reg.history("double")]

    async def body() -> None:
        async with mcp_session(server) as a, mcp_session(server) as b:
            for args in (
                {"source": DOUBLE_PATCHED, "tests": [{"args": {"x": 1}, "expected": 3}]},
                {"source": DOUBLE_PATCHED, "name": "double", "tests": [{"args": {"x": 1}, "expected": 3}]},
            ):
                refused = await a.call_tool("add_tool", args)
                assert refused.is_error
                assert "double" in refused.meta["toolcrib/outcome"]["error"]["message"]
                assert "existing tool" in refused.meta["toolcrib/outcome"]["error"]["message"]
            # verify_tool cannot touch a shared tool either.
            assert (await a.call_tool("verify_tool", {"ref": "double"})).is_error
            for client in (a, b):
                assert (await client.call_tool("double", {"x": 1})).structured_content == {"result": 2}
                listed = [t for t in (await client.list_tools()).tools if t.name == "double"]
                assert [t.title for t in listed] == ["double 1.0.0"]

    anyio.run(body)
    with Registry(registry, create=False) as reg:
        assert [(v.version, v.sha256) for v in reg.history("double")] == before


@asynccontextmanager
async def stdio(registry: Path) -> AsyncIterator[ClientSession]:
    env = {k: v for k, v in os.environ.items() if k == "PYTHONPATH"}
    params = StdioServerParameters(
        command=TOOLCRIB, args=["--registry", str(registry), "serve", "--allow-add"], env=env
    )
    with open(os.devnull, "w") as quiet:
        async with stdio_client(params, errlog=quiet) as (read, write):
            async with ClientSession(read, write, client_info=CLIENT) as session:
                await session.initialize()
                yield session


def test_stdio_servers_on_one_registry_keep_additions_apart(registry: Path) -> None:
    """Two agents, each with its own `serve --allow-add` over stdio, one registry."""

    async def body() -> None:
        async with stdio(registry) as a:
            added = await a.call_tool("add_tool", {"source": TRIPLE, "tests": [{"args": {"x": 2}, "expected": 6}]})
            verified = await a.call_tool("verify_tool", {"ref": added.structured_content["tool"]})
            assert verified.structured_content["status"] == "verified"
            with Registry(registry, actor="reviewer") as reg:
                assert approve_waiting(reg, registry.parent) == [added.structured_content["tool"]]
            assert added.structured_content["tool"].split("@")[0] in _names(await a.list_tools())
        async with stdio(registry) as b:
            assert _names(await b.list_tools()) == {"double", "add_tool", "verify_tool"}

    anyio.run(body)


def test_a_client_without_a_session_cannot_add(serving: Any, registry: Path) -> None:
    """The 2026-07-28 protocol over HTTP has no session, so no identity the
    server issued: it is served the shared tools and cannot add."""
    server = serving("--allow-add")

    async def body() -> None:
        async with Client(f"http://{server.netloc}/mcp", client_info=CLIENT) as client:
            assert client.protocol_version == "2026-07-28"
            refused = await client.call_tool("add_tool", {"source": TRIPLE})
            assert refused.is_error and "session" in refused.meta["toolcrib/outcome"]["error"]["message"]
            assert (await client.call_tool("double", {"x": 2})).structured_content == {"result": 4}

    anyio.run(body)
    with Registry(registry, create=False) as reg:
        assert [v.name for v in reg.list()] == ["double"]
