"""`toolcrib serve --http` answers without a fixed stall: every accepted
connection has TCP_NODELAY, and a ping costs about what it costs a bare
server built on the same SDK.

The listening socket used to be made with protocol 0; asyncio sets
TCP_NODELAY on an accepted socket only when its protocol is IPPROTO_TCP, so
Nagle's algorithm held each response's last write until the client's
delayed ACK. The TypeScript SDK's client (node's fetch) waited ~40 ms per
request for it; the Python SDK's client happens not to.

First the socket option itself on the server's side of a live connection
(toolcrib's server in this process), which does not depend on speed; then
the TypeScript client's pings to toolcrib's server and to a bare one, each
in its own process, alternating in one run: their upper quartiles' ratio, with a
wide margin (the issue asks for a ratio measured in the same run).
"""

from __future__ import annotations

import gc
import socket
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from toolcrib.sandbox.fake import FakeBackend

from toolcrib import Registry
from toolcrib.mcp_server import ServeOptions, ToolServer

HERE = Path(__file__).parent
SERVE = str(HERE / "serve_on_fake.py")
sys.path.insert(0, str(HERE))
import ts_sdk  # noqa: E402
from mcp_servers import ServerProcess, over_http_in_process, sdk_session  # noqa: E402

DOUBLE = '''
def double(x: int) -> int:
    """Double x."""
    return 2 * x
'''
TOKEN = "tok"
PINGS = 25  # per server and round
ROUNDS = 3
# With the stall toolcrib's upper-quartile ping was ~12x a bare server's (45 ms
# against 4 on a loaded 2-core machine); without it, under 2x.
MAX_RATIO = 3.0


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    path = tmp_path / "r.db"
    fake = FakeBackend(lambda job: 2 * job.args["x"], name="restricted")
    with Registry(path, actor="setup", backends={"restricted": fake}) as reg:
        reg.add(DOUBLE, tests=[{"args": {"x": 2}, "expected": 4}])
        reg.verify("double")
    return path


def _server_sockets(port: int) -> list[Any]:
    """The server's side of every open connection to `port` in this process (asyncio transports' sockets)."""
    found = []
    for obj in gc.get_objects():
        if type(obj).__name__ == "_SelectorSocketTransport":
            sock = obj.get_extra_info("socket")
            try:
                if sock is not None and sock.getsockname()[1] == port and sock.getpeername():
                    found.append(sock)
            except OSError:
                continue
    return found


def test_every_accepted_connection_has_tcp_nodelay(registry: Path) -> None:
    fake = FakeBackend(lambda job: 2 * job.args["x"], name="restricted")
    server = ToolServer(ServeOptions(registry=registry), backends={"restricted": fake})

    async def body(url: str) -> list[int]:
        async with sdk_session(url, TOKEN) as session:
            await session.send_ping()
            port = int(url.split(":")[2].split("/")[0])
            return [s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in _server_sockets(port)]

    try:
        options = over_http_in_process(server, TOKEN, body)
    finally:
        server.close()
    # The client's connections as the server accepted them: each one with TCP_NODELAY.
    assert options and all(options), options


@pytest.fixture
def servers(registry: Path) -> Iterator[tuple[str, str]]:
    ours = ServerProcess([sys.executable, SERVE, str(registry), "--http", TOKEN])
    try:
        bare = ServerProcess([sys.executable, str(HERE / "bare_mcp_server.py")])
        try:
            yield ours.url, bare.url
        finally:
            bare.stop()
    finally:
        ours.stop()


def test_a_ping_costs_about_what_it_costs_a_bare_server(servers: tuple[str, str]) -> None:
    ours, bare = servers
    mine: list[float] = []
    base: list[float] = []
    for _ in range(ROUNDS):
        mine += ts_sdk.run({"transport": "http", "url": ours, "token": TOKEN, "pings": PINGS})["pings_ms"]
        base += ts_sdk.run({"transport": "http", "url": bare, "pings": PINGS})["pings_ms"]
    # The stall hits about every other ping (bimodal: ~5 or ~45 ms), so the
    # upper quartile shows it where a median may fall either side.
    ours_q3, bare_q3 = (statistics.quantiles(took, n=4)[2] for took in (mine, base))
    assert ours_q3 / bare_q3 < MAX_RATIO, (
        f"from the TypeScript SDK's client, 3 pings in 4 took up to {ours_q3:.1f} ms on toolcrib's server, "
        f"{bare_q3:.1f} ms on a bare one (x{ours_q3 / bare_q3:.1f})"
    )


def test_each_answer_is_one_json_body(registry: Path) -> None:
    """A POST's answer is a plain JSON body (one write), not an SSE stream of
    several small writes each waking the client (bench/README.md: about half
    the time of a warm call from the TypeScript client)."""
    ours = ServerProcess([sys.executable, SERVE, str(registry), "--http", TOKEN])
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json, text/event-stream"}
    try:
        with httpx2.Client(headers=headers, timeout=60) as http:
            hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}
            opened = http.post(ours.url, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello})
            session = {"Mcp-Session-Id": opened.headers["mcp-session-id"], "Mcp-Protocol-Version": "2025-06-18"}
            http.post(ours.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
            call = {"name": "double", "arguments": {"x": 21}}
            answer = http.post(
                ours.url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": call}, headers=session
            )
    finally:
        ours.stop()
    for response in (opened, answer):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json"), response.headers
    assert answer.json()["result"]["structuredContent"] == {"result": 42}


LATE = '''
def late(x: int) -> int:
    """Verified while the server runs."""
    return x
'''


def test_a_2026_client_still_hears_of_changes_over_http(registry: Path) -> None:
    """With JSON answers, what must stream still does: a 2026-07-28 client's
    subscriptions/listen over HTTP gets the list change."""
    fake = FakeBackend(lambda job: job.args["x"], name="restricted")
    with Registry(registry, actor="setup", backends={"restricted": fake}) as reg:
        reg.add(LATE, tests=[{"args": {"x": 2}, "expected": 2}])
    ours = ServerProcess([sys.executable, SERVE, str(registry), "--http"])

    async def body() -> list[str]:
        async with Client(ours.url) as client:
            assert client.protocol_version == "2026-07-28"
            async with client.listen(tools_list_changed=True) as subscription:
                with Registry(registry, actor="setup", backends={"restricted": fake}) as reg:
                    await anyio.to_thread.run_sync(lambda: reg.verify("late"))
                with anyio.fail_after(60):
                    async for _event in subscription:
                        break
            return sorted(t.name for t in (await client.list_tools()).tools)

    try:
        assert anyio.run(body) == ["double", "late"]
    finally:
        ours.stop()
