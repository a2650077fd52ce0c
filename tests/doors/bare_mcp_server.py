"""A bare MCP server with one tool, as its users write one: the official
SDK's MCPServer (what was FastMCP), served over streamable HTTP by uvicorn on
127.0.0.1 port 0. Prints its URL on stderr once it listens. The baseline
that tests/doors/test_mcp_http_latency.py compares `toolcrib serve` with.

    python tests/doors/bare_mcp_server.py
"""

from __future__ import annotations

import sys

import anyio
import uvicorn
from mcp.server.mcpserver import MCPServer

app = MCPServer("bare")


@app.tool()
def double(x: int) -> int:
    """Double x."""
    return 2 * x


async def main() -> None:
    web = uvicorn.Server(
        uvicorn.Config(app.streamable_http_app(), host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(web.serve)
        while not web.started:
            await anyio.sleep(0.01)
        port = web.servers[0].sockets[0].getsockname()[1]
        print(f"bare MCP server: listening on http://127.0.0.1:{port}/mcp", file=sys.stderr, flush=True)


if __name__ == "__main__":
    anyio.run(main)
