"""One write per HTTP answer: uvicorn's h11 protocol with its writes coalesced.

uvicorn writes a response's head and its body with two ``send`` calls. With
``TCP_NODELAY`` on (it must be: without it Nagle held the body for the
client's delayed ACK, ~40 ms a request) each write leaves as its own
segment, so a client wakes up for the head, parses it, sleeps, and wakes
again for the body: about half a millisecond per MCP request from the
TypeScript SDK's client on this machine (bench/README.md, issue 17).

`CoalescingH11Protocol` gives the protocol a transport that gathers every
write made during one turn of the event loop and hands them to the socket as
one, at the end of that turn (``call_soon``). A Starlette response writes its
head and body in one turn, so an MCP answer becomes one segment; nothing is
held past the turn, so no write waits on anything but the loop itself.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["CoalescingH11Protocol", "CoalescingTransport"]


class CoalescingTransport:
    """An `asyncio.Transport` stand-in: ``write`` gathers, the loop flushes.

    Everything else is the real transport's, except the calls that end the
    stream (``close``, ``write_eof``), which flush first so that no byte is
    lost or reordered, and ``abort``, which drops what is pending with the
    connection."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingH11Protocol(H11Protocol):
    """uvicorn's h11 protocol over a `CoalescingTransport` (``Config(http=...)``)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        coalescing: Any = CoalescingTransport(transport, asyncio.get_running_loop())
        super().connection_made(coalescing)
