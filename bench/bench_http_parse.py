"""CPU per HTTP request in uvicorn's protocol layer, as `toolcrib serve --http`
runs it (issue 17): parsing an MCP tools/call POST as the TypeScript SDK's
client sends it and writing a JSON answer, through h11 (`CoalescingH11Protocol`)
and through httptools (`http_protocol()`), each over a transport that records
nothing, on the same trivial ASGI app, in one process. CPU time (process_time),
the best and the median of 7 batches, so the machine's load matters little.

Run: .venv/bin/python bench/bench_http_parse.py [--requests N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState

from toolcrib.mcp_http_writes import CoalescingH11Protocol, http_protocol

BODY = b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"double","arguments":{"x":21}}}'
REQUEST = (
    b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1:4242\r\nconnection: keep-alive\r\nauthorization: Bearer t\r\n"
    b"content-type: application/json\r\naccept: application/json, text/event-stream\r\n"
    b"mcp-session-id: 0123456789abcdef0123456789abcdef\r\nmcp-protocol-version: 2025-06-18\r\n"
    b"accept-language: *\r\nsec-fetch-mode: cors\r\nuser-agent: node\r\naccept-encoding: gzip, deflate\r\n"
    b"content-length: %d\r\n\r\n" % len(BODY)
) + BODY
ANSWER = (
    b'{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"42"}],"structuredContent":{"result":42}}}'
)


async def app(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    headers = [(b"content-type", b"application/json"), (b"mcp-session-id", b"0123456789abcdef0123456789abcdef")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": ANSWER})


class Sink(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, data: Any) -> None:
        self.writes += 1

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5), "sockname": ("127.0.0.1", 4242)}.get(name, default)

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


async def per_request_us(protocol: Any, requests: int) -> list[float]:
    config = Config(app, log_level="warning", access_log=False, lifespan="off")
    config.load()
    proto = protocol(config=config, server_state=ServerState(), app_state={})
    sink = Sink()
    proto.connection_made(sink)

    async def one() -> None:
        proto.data_received(REQUEST)
        for _ in range(6):  # the app's task runs, answers; the held head leaves with the body
            await asyncio.sleep(0)

    for _ in range(200):
        await one()
    assert sink.writes == 200, f"{protocol.__name__}: {sink.writes} writes for 200 answers"
    batches = []
    for _ in range(7):
        started = time.process_time()
        for _ in range(requests):
            await one()
        batches.append((time.process_time() - started) / requests * 1e6)
    return batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per batch (7 batches a protocol)")
    args = parser.parse_args()
    print(f"CPU per request (µs), {args.requests} a batch, 7 batches; load average {os.getloadavg()}")
    for label, protocol in (("h11", CoalescingH11Protocol), ("httptools (serve)", http_protocol())):
        batches = asyncio.run(per_request_us(protocol, args.requests))
        print(f"{label:<18} best {min(batches):6.1f}  median {statistics.median(batches):6.1f}")


if __name__ == "__main__":
    main()
