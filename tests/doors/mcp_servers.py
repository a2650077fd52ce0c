"""An MCP server over HTTP in a subprocess, for the door tests: started,
the URL it announces on stderr, stopped (test_mcp_server, test_mcp_clients,
test_mcp_http_latency, test_mcp_auth); or in this process (`over_http_in_process`)."""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

T = TypeVar("T")

ANNOUNCED = re.compile(r"listening on (http://127\.0\.0\.1:\d+/mcp)")


class ServerProcess:
    """`argv` in a subprocess; `url`, the one it announced on stderr
    (``listening on http://127.0.0.1:PORT/mcp``; the few lines an SDK may
    log first are passed over). `stop` ends it."""

    def __init__(self, argv: list[str], *, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stderr is not None
        seen: list[str] = []
        try:
            while not (match := ANNOUNCED.search(line := self.proc.stderr.readline())):
                seen.append(line)
                assert line and len(seen) < 100, "".join(seen)
        except BaseException:
            self.stop()
            raise
        self.url = match.group(1)
        # Keep draining stderr so the server never blocks on a full pipe.
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()  # the drain reads to the end first (a ResourceWarning otherwise)


def over_http_in_process(server: Any, token: str, body: Callable[[str], Awaitable[T]]) -> T:
    """`body(url)`'s answer, with `server` (a `ToolServer`) served over HTTP
    by `run_http` in this process (port 0, `token`) while it runs."""
    import anyio
    from anyio.from_thread import start_blocking_portal

    from toolcrib.mcp_server import run_http

    announced: list[str] = []
    ready = threading.Event()

    def announce(line: str) -> None:
        announced.append(line.rsplit(" ", 1)[-1])
        ready.set()

    with start_blocking_portal() as portal:
        running = portal.start_task_soon(run_http, server, "127.0.0.1", 0, token, announce)
        try:
            assert ready.wait(60), "toolcrib's HTTP server did not start"
            return anyio.run(body, announced[0])
        finally:
            running.cancel()


@asynccontextmanager
async def sdk_session(url: str, token: str) -> AsyncIterator[Any]:
    """The official Python SDK's session over streamable HTTP to `url` with
    the bearer `token`, initialized."""
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        async with streamable_http_client(url, http_client=client) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session
