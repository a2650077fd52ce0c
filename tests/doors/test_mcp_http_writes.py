"""`toolcrib serve --http` answers each request with one write, head and body
together (toolcrib/mcp_http_writes.py): with TCP_NODELAY on, two writes are two
segments and two wake-ups of the client per answer."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from mcp_servers import over_http_in_process, sdk_session
from toolcrib.sandbox.fake import FakeBackend

from toolcrib import Registry
from toolcrib.mcp_http_writes import CoalescingTransport
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
