"""uvicorn's HTTP protocols as `toolcrib serve --http` runs them: one write per
answer, sent the moment its body is written, and httptools' parser with the
request head bounded.

One write. uvicorn writes a response's head and its body with two ``send``
calls. With ``TCP_NODELAY`` on (it must be: without it Nagle held the body for
the client's delayed ACK, ~40 ms a request) each write leaves as its own
segment, so a client wakes up for the head, parses it, sleeps, and wakes again
for the body: about half a millisecond per MCP request from the TypeScript
SDK's client on this machine (bench/README.md, issue 17). The protocols here
write through a `CoalescingTransport`, which gathers writes, and flush it as
each of the app's ASGI sends returns (a head waits for its body): one write
per answer, sent the moment its body is. (It first flushed only at the end of
the event loop's turn; the answer then waited behind the callbacks it had
woken, about 60 µs a request at load.) Nothing is held past the turn.

httptools. uvicorn's pure-Python h11 protocol spent ~145 µs of CPU parsing
an MCP request and writing its answer, its httptools (llhttp) protocol ~45 µs
(one process, the same request; bench/README.md): that time sits on every
HTTP call's path and on no stdio call's. h11 bounds a request's head at
16 KiB (uvicorn's ``h11_max_incomplete_event_size``); llhttp buffers a head of
any size, so `BoundedHttpToolsProtocol` counts the bytes that arrive while a
head is incomplete and answers 400 and closes past the same bound, as the h11
protocol does. Without httptools installed, `http_protocol` gives the h11 one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["MAX_HEAD_BYTES", "CoalescingH11Protocol", "CoalescingTransport", "http_protocol"]

# What uvicorn's h11 protocol allows for a request line plus headers (its default
# h11_max_incomplete_event_size).
MAX_HEAD_BYTES = 16 * 1024


class CoalescingTransport:
    """An `asyncio.Transport` stand-in: ``write`` gathers; ``flush`` (called
    by the protocol as each ASGI send returns, `_one_write_per_send`) or the
    end of the event loop's turn sends what was gathered as one write.

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
            self._loop.call_soon(self.flush)  # never held past this turn
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


_ASGISend = Callable[[Any], Awaitable[None]]
_ASGIApp = Callable[[Any, Any, _ASGISend], Awaitable[None]]


def _one_write_per_send(app: _ASGIApp, transport: Callable[[], Any]) -> _ASGIApp:
    """``app`` with each of its HTTP sends flushed as it returns: the bytes of
    one ASGI send (a body chunk, and with the first the head held for it; a
    chunked answer's last chunk and its terminator) leave as one write, at
    once, instead of waiting for the end of the turn behind every callback
    the answer woke (about 60 µs at load)."""

    async def flushing(scope: Any, receive: Any, send: _ASGISend) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def sending(message: Any) -> None:
            await send(message)
            if message["type"] != "http.response.start":  # the head waits for its body
                transport().flush()

        await app(scope, receive, sending)

    return flushing


class CoalescingH11Protocol(H11Protocol):
    """uvicorn's h11 protocol over a `CoalescingTransport` (``Config(http=...)``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.app = _one_write_per_send(self.app, lambda: self.transport)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        coalescing: Any = CoalescingTransport(transport, asyncio.get_running_loop())
        super().connection_made(coalescing)


def http_protocol() -> type[asyncio.Protocol]:
    """The protocol class `toolcrib serve --http` gives uvicorn: httptools'
    (bounded, coalescing) when installed, else h11's (coalescing)."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # httptools missing: uvicorn's h11 protocol is complete without it
        return CoalescingH11Protocol

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol over a `CoalescingTransport`, each
        request's head (request line and headers) bounded at MAX_HEAD_BYTES."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.app = _one_write_per_send(self.app, lambda: self.transport)

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            self._head_bytes = 0
            self._in_head = True
            coalescing: Any = CoalescingTransport(transport, asyncio.get_running_loop())
            super().connection_made(coalescing)

        def data_received(self, data: bytes) -> None:
            if self._in_head:
                # Counted per read, before the parser buffers it: a head may
                # overrun the bound by at most one read.
                self._head_bytes += len(data)
                if self._head_bytes > MAX_HEAD_BYTES:
                    self._in_head = False
                    self.send_400_response("Invalid HTTP request received.")
                    return
            super().data_received(data)

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._in_head = True  # what arrives next is the next request's head
            self._head_bytes = 0

    return BoundedHttpToolsProtocol
