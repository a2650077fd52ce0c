"""`toolcrib serve --http` answers each request with one write, head and body
together (toolcrib/mcp_http_writes.py): with TCP_NODELAY on, two writes are two
segments and two wake-ups of the client per answer."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from mcp_servers import over_http_in_process, sdk_session
from toolcrib.sandbox.fake import FakeBackend

from toolcrib import Registry
from toolcrib.mcp_http_writes import MAX_HEAD_BYTES, CoalescingH11Protocol, CoalescingTransport, http_protocol
from toolcrib.mcp_server import ServeOptions, ToolServer

TOKEN = "tok"
DOUBLE = '''
def double(x: int) -> int:
    """Double x."""
    return 2 * x
'''


class Recording(asyncio.Transport):
    """A transport that records what reaches it (the socket's side)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.events: list[str] = []
        self.closing = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))
        self.events.append("write")

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True
        self.events.append("close")

    def abort(self) -> None:
        self.closing = True
        self.events.append("abort")

    def write_eof(self) -> None:
        self.events.append("eof")

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 1)}.get(name, default)


def run(body: Any) -> Any:
    async def main() -> Any:
        inner = Recording()
        outer = CoalescingTransport(inner, asyncio.get_running_loop())
        await body(outer, inner)
        return inner

    return asyncio.run(main())


def test_writes_of_one_turn_leave_as_one() -> None:
    async def body(outer: CoalescingTransport, inner: Recording) -> None:
        outer.write(b"HTTP/1.1 200 OK\r\n\r\n")
        outer.write(memoryview(b'{"id": 1}'))
        assert inner.writes == [] and outer.get_write_buffer_size() == 28
        await asyncio.sleep(0)
        outer.write(b"next turn")
        await asyncio.sleep(0)

    inner = run(body)
    assert inner.writes == [b'HTTP/1.1 200 OK\r\n\r\n{"id": 1}', b"next turn"]


def test_closing_flushes_first_and_abort_drops() -> None:
    async def body(outer: CoalescingTransport, inner: Recording) -> None:
        outer.write(b"last words")
        outer.write_eof()
        outer.close()
        await asyncio.sleep(0)

    assert run(body).events == ["write", "eof", "close"]

    async def aborted(outer: CoalescingTransport, inner: Recording) -> None:
        outer.write(b"never sent")
        outer.abort()
        await asyncio.sleep(0)

    inner = run(aborted)
    assert inner.writes == [] and inner.events == ["abort"]


def test_everything_else_is_the_real_transports() -> None:
    async def body(outer: CoalescingTransport, inner: Recording) -> None:
        assert outer.get_extra_info("sockname") == ("127.0.0.1", 1)
        assert outer.is_closing() is False

    run(body)


def test_each_mcp_answer_leaves_in_one_write(tmp_path: Path) -> None:
    """toolcrib's own HTTP server (on a FakeBackend, in this process): every
    answer to the SDK's client reaches the socket as one write holding its
    head and its whole body. Before, uvicorn wrote them apart."""
    registry = tmp_path / "r.db"
    fake = FakeBackend(lambda job: 2 * job.args["x"], name="restricted")
    with Registry(registry, actor="setup", backends={"restricted": fake}) as reg:
        reg.add(DOUBLE, tests=[{"args": {"x": 2}, "expected": 4}])
        reg.verify("double")
    server = ToolServer(ServeOptions(registry=registry), backends={"restricted": fake})
    written: list[bytes] = []
    real_flush = CoalescingTransport.flush

    def recording(self: CoalescingTransport) -> None:
        written.append(b"".join(self._pending))
        real_flush(self)

    async def body(url: str) -> Any:
        async with sdk_session(url, TOKEN) as session:
            await session.send_ping()
            return await session.call_tool("double", {"x": 21})

    CoalescingTransport.flush = recording  # type: ignore[method-assign]
    try:
        result = over_http_in_process(server, TOKEN, body)
    finally:
        CoalescingTransport.flush = real_flush  # type: ignore[method-assign]
        server.close()
    assert result.structured_content == {"result": 42}
    # The answers to POSTs (the session's GET is an event stream, its head sent
    # when it opens): initialize, ping and the call at least, each whole, its
    # head and exactly Content-Length bytes of body.
    answers = [w for w in written if w.startswith(b"HTTP/1.1 200") and b"content-type: application/json" in w]
    assert len(answers) >= 3, written
    for answer in answers:
        head, _, rest = answer.partition(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length: *(\d+)", head)
        assert length and len(rest) == int(length.group(1)), answer


@pytest.mark.parametrize("protocol", [CoalescingH11Protocol, http_protocol()], ids=["h11", "httptools"])
def test_each_send_leaves_as_it_returns(protocol: Any) -> None:
    """Through the protocols `serve --http` runs: the head waits for the body,
    and the body's send returns with head and body written, as one, at once
    (not at the end of the event loop's turn, behind the callbacks the answer
    woke); a chunked answer's last chunk leaves with its terminator."""
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    seen: dict[str, list[bytes]] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        chunked = scope["path"] == "/chunked"
        headers = [] if chunked else [(b"content-length", b"9")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        seen[scope["path"] + " after head"] = list(inner.writes)
        await send({"type": "http.response.body", "body": b'{"id": 1}'})
        seen[scope["path"] + " after body"] = list(inner.writes)

    async def main() -> None:
        config = Config(app, log_level="warning", access_log=False, lifespan="off")
        config.load()
        proto = protocol(config=config, server_state=ServerState(), app_state={})
        proto.connection_made(inner)
        for path in ("/json", "/chunked"):
            proto.data_received(f"GET {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
            for _ in range(20):
                await asyncio.sleep(0)

    inner = Recording()
    asyncio.run(main())
    assert seen["/json after head"] == []
    [answer] = seen["/json after body"]
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b'\r\n\r\n{"id": 1}'), answer
    [_, chunked] = seen["/chunked after body"]
    assert chunked.startswith(b"HTTP/1.1 200 OK\r\n") and chunked.endswith(b'{"id": 1}\r\n0\r\n\r\n'), chunked
    assert inner.writes == [answer, chunked]


def test_the_server_parses_with_httptools() -> None:
    """httptools is a dependency (pyproject): its protocol, not h11's, serves."""
    assert http_protocol().__name__ == "BoundedHttpToolsProtocol"


def _served_fake(tmp_path: Path) -> ToolServer:
    registry = tmp_path / "r.db"
    fake = FakeBackend(lambda job: 2 * job.args["x"], name="restricted")
    with Registry(registry, actor="setup", backends={"restricted": fake}) as reg:
        reg.add(DOUBLE, tests=[{"args": {"x": 2}, "expected": 4}])
        reg.verify("double")
    return ToolServer(ServeOptions(registry=registry), backends={"restricted": fake})


def test_a_request_head_is_bounded(tmp_path: Path) -> None:
    """llhttp buffers a head of any size: the server refuses one past
    MAX_HEAD_BYTES (400, connection closed) as uvicorn's h11 protocol does,
    whichever way it arrives (one read, or many small ones), and still serves
    the next client."""
    import socket
    from urllib.parse import urlsplit

    server = _served_fake(tmp_path)

    def exchange(port: int, pieces: list[bytes]) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            try:
                for piece in pieces:
                    sock.sendall(piece)
            except OSError:  # refused and closed while still sending
                pass
            answer = b""
            try:
                while chunk := sock.recv(65536):
                    answer += chunk
            except ConnectionResetError:
                pass
            return answer

    async def body(url: str) -> list[bytes]:
        import anyio

        port = urlsplit(url).port or 0
        start = b"GET /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        filler = b"x-filler: " + b"a" * 1000 + b"\r\n"
        many = [start] + [filler] * (4 * MAX_HEAD_BYTES // len(filler))
        one = [start + b"x-big: " + b"b" * (4 * MAX_HEAD_BYTES) + b"\r\n\r\n"]
        small = [start + f"authorization: Bearer {TOKEN}\r\nconnection: close\r\n\r\n".encode()]
        return [await anyio.to_thread.run_sync(exchange, port, p) for p in (many, one, small)]

    try:
        many, one, small = over_http_in_process(server, TOKEN, body)
    finally:
        server.close()
    for answer in (many, one):
        assert answer.startswith(b"HTTP/1.1 400 ") and b"connection: close" in answer, answer[:200]
    # A head within the bound is read and answered (the MCP endpoint's own reply to a bare GET).
    assert small.startswith(b"HTTP/1.1 ") and not small.startswith(b"HTTP/1.1 400 "), small[:200]
