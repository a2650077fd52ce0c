"""`toolcrib serve`'s server on a `FakeBackend`, as a process of its own, for
MCP clients that are not Python (the TypeScript SDK's client spawns or
connects to it): the door is under test, not the sandbox.

    python tests/doors/serve_on_fake.py REGISTRY            # stdio
    python tests/doors/serve_on_fake.py REGISTRY --http [TOKEN]

Over HTTP it binds 127.0.0.1 port 0 and prints the URL on stderr, as
`toolcrib serve --http 0` does. The fake runs each tool in this process
(`fake_answer`), except that ``burn`` hits the CPU limit for any n > 1000.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
from toolcrib.sandbox.contract import Job, Result
from toolcrib.sandbox.fake import FakeBackend, exec_job

from toolcrib.mcp_server import ServeOptions, ToolServer, run_http, run_stdio


def fake_answer(job: Job) -> Any:
    if job.entrypoint == "burn" and job.args.get("n", 0) > 1000:
        return Result(status="limit", backend="restricted", limit="cpu", duration_ms=1000.0)
    return exec_job(job)


def fake_backends() -> dict[str, FakeBackend]:
    return {"restricted": FakeBackend(fake_answer, name="restricted")}


def main(argv: list[str]) -> None:
    registry = Path(argv[0])
    server = ToolServer(ServeOptions(registry=registry, poll_seconds=0.1), backends=fake_backends())
    try:
        if "--http" in argv[1:]:
            rest = argv[argv.index("--http") + 1 :]
            anyio.run(run_http, server, "127.0.0.1", 0, rest[0] if rest else None)
        else:
            anyio.run(run_stdio, server)
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


if __name__ == "__main__":
    main(sys.argv[1:])
