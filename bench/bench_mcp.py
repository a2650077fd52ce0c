"""A warm trivial MCP call: `toolcrib serve` side by side with a bare FastMCP
server exposing the same function, in one run (issue 17).

Measured, per transport (stdio; streamable HTTP on 127.0.0.1, with a token
for toolcrib):

- toolcrib: ``toolcrib --registry R serve`` (the real CLI, the restricted
  backend: a jailed process per call), calling ``double(x)``;
- bare: a fastmcp ``FastMCP`` server (this script, ``--serve-bare``) with the
  same function, run in-process by the server (no sandbox);
- toolcrib's own API call, in this process: ``Registry.call("double", ...)``
  with the zygote warm (what the server pays per call before MCP);

from the official Python SDK's ``ClientSession`` (one session per server,
all open at once, measured call by call in rotating order so that the load
of a shared machine falls on every side alike), and from the official
TypeScript SDK's client (one process per side and round, rounds rotating;
HTTP minus stdio also taken within each round, the median of the rounds reported)
(tests/doors/ts_client/client.mjs; skipped if node or its install is missing).
Both HTTP servers run uvicorn with the same options: the same parser
(httptools when installed, as `toolcrib serve` takes it; else h11), anyio's
asyncio loop, no access log. ``--h11`` adds both servers on h11 as further
sides of the same run, toolcrib's with the HTTP protocol it had at 2aaeb1f
(h11, each answer flushed at the end of the event loop's turn): the
baseline of the httptools change, measured side by side.
The load average before the TypeScript rounds and at the end is recorded.
Reported: p10, medians and p90, and the issue's goals as differences: stdio
within 1.5 ms of (bare stdio + API call), HTTP within 1 ms of stdio (for
every HTTP side, also at the 10th percentile: on a shared machine the calls
its load delayed least).

Run: .venv/bin/python bench/bench_mcp.py [--calls N] [--rounds N] [--ts-rounds N] [--h11] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out"
ROOT = Path(__file__).resolve().parents[1]
TS_CLIENT = ROOT / "tests" / "doors" / "ts_client"
TOOLCRIB = str(Path(sys.executable).with_name("toolcrib"))
TOKEN = "bench-token"
H11 = "--h11"
DOUBLE = '''
def double(x: int) -> int:
    """Double a number."""
    return 2 * x
'''


# -- the bare server ------------------------------------------------------------------------


def http_parser() -> str:
    """The HTTP parser both servers run: toolcrib serve takes httptools when
    installed (toolcrib/mcp_http_writes.py), else h11, on anyio's asyncio
    loop, without an access log; the bare server is given the same
    (uvicorn's plain protocol of that parser), so that only the servers
    differ."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


def serve_bare(transport: str, h11: bool = False) -> None:
    """A FastMCP server with double(); HTTP on port 0, its URL printed on stderr."""
    import anyio
    import uvicorn
    from fastmcp import FastMCP

    bare = FastMCP("bare")

    @bare.tool
    def double(x: int) -> int:
        """Double a number."""
        return 2 * x

    if transport == "stdio":
        anyio.run(lambda: bare.run_stdio_async(show_banner=False, log_level="WARNING"))
        return

    async def main() -> None:
        config = uvicorn.Config(
            bare.http_app(path="/mcp"),
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="on",
            access_log=False,
            http="h11" if h11 else http_parser(),
        )
        web = uvicorn.Server(config)
        async with anyio.create_task_group() as tg:
            tg.start_soon(web.serve)
            while not web.started:
                await anyio.sleep(0.01)
            port = web.servers[0].sockets[0].getsockname()[1]
            print(f"bare: listening on http://127.0.0.1:{port}/mcp", file=sys.stderr, flush=True)

    anyio.run(main)


def serve_toolcrib_h11(argv: list[str]) -> None:
    """`toolcrib serve` (argv as the CLI's) on the HTTP protocol it ran before
    (2aaeb1f): uvicorn's h11 parser, each answer's writes gathered and sent at
    the end of the event loop's turn. The baseline side of ``--h11``."""
    import asyncio

    from uvicorn.protocols.http.h11_impl import H11Protocol

    import toolcrib.mcp_http_writes as writes
    from toolcrib.console import main as toolcrib_main

    class Previous(H11Protocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(writes.CoalescingTransport(transport, asyncio.get_running_loop()))

    writes.http_protocol = lambda: Previous
    sys.argv = ["toolcrib", *argv]
    toolcrib_main()


# -- measuring --------------------------------------------------------------------------------


def http_servers(registry: Path, h11: bool) -> dict[str, Http]:
    """The HTTP servers: toolcrib's and the bare one; with ``h11`` also both
    on uvicorn's h11 parser, toolcrib's as it served before (2aaeb1f)."""
    serve = ["--registry", str(registry), "serve", "--http", "0", "--token", TOKEN]
    servers = {
        "toolcrib http": Http([TOOLCRIB, *serve]),
        "bare http": Http([sys.executable, __file__, "--serve-bare", "http"]),
    }
    if h11:
        servers["toolcrib http h11"] = Http([sys.executable, __file__, "--serve-toolcrib-h11", *serve])
        servers["bare http h11"] = Http([sys.executable, __file__, "--serve-bare", "http", H11])
    return servers


class Http:
    """A server process that announces its URL on stderr."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        assert self.proc.stderr is not None
        while not (match := re.search(r"listening on (http://\S+/mcp)", line := self.proc.stderr.readline())):
            if not line:
                raise SystemExit(f"{argv[0]} did not start")
        self.url = match.group(1)
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def summary(took: list[float]) -> dict[str, float]:
    ms = sorted(t * 1000 for t in took)
    return {
        "p10_ms": ms[int(0.1 * (len(ms) - 1))],
        "median_ms": statistics.median(ms),
        "p90_ms": ms[int(0.9 * (len(ms) - 1))],
        "n": len(ms),
    }


async def python_client(registry: Path, calls: int, rounds: int, h11: bool) -> dict[str, list[float]]:
    import httpx2
    from mcp import ClientSession, StdioServerParameters, stdio_client
    from mcp.client.streamable_http import streamable_http_client

    from toolcrib import Registry

    env = {k: v for k, v in os.environ.items() if k in ("PATH", "PYTHONPATH", "HOME")}
    servers = http_servers(registry, h11)
    took: dict[str, list[float]] = {k: [] for k in ("toolcrib stdio", "bare stdio", *servers, "api")}
    try:
        async with AsyncExitStack() as stack:
            quiet = stack.enter_context(open(os.devnull, "w"))
            sessions: dict[str, Any] = {}
            for name, command, args in (
                ("toolcrib stdio", TOOLCRIB, ["--registry", str(registry), "serve"]),
                ("bare stdio", sys.executable, [__file__, "--serve-bare", "stdio"]),
            ):
                params = StdioServerParameters(command=command, args=args, env=env)
                read, write = await stack.enter_async_context(stdio_client(params, errlog=quiet))
                sessions[name] = await stack.enter_async_context(ClientSession(read, write))
            for name, server in servers.items():
                headers = {"Authorization": f"Bearer {TOKEN}"} if name.startswith("toolcrib") else {}
                client = await stack.enter_async_context(httpx2.AsyncClient(headers=headers, timeout=60))
                read, write = await stack.enter_async_context(streamable_http_client(server.url, http_client=client))
                sessions[name] = await stack.enter_async_context(ClientSession(read, write))
            for session in sessions.values():
                await session.initialize()
                await session.list_tools()
                for _ in range(20):  # warm: zygote, imports, connections
                    result = await session.call_tool("double", {"x": 21})
                    assert not result.is_error and result.structured_content == {"result": 42}, result
            registry_api = stack.enter_context(Registry(registry, actor="bench", create=False))
            for _ in range(20):
                registry_api.call("double", {"x": 21})
            # Interleaved call by call (the order rotating), so that the
            # machine's load, which varies from second to second on a shared
            # VM, falls on every side alike.
            sides = [*sessions, "api"]
            for turn in range(rounds * calls):
                for name in sides[turn % len(sides) :] + sides[: turn % len(sides)]:
                    started = time.perf_counter()
                    if name == "api":
                        registry_api.call("double", {"x": 21})
                    else:
                        await sessions[name].call_tool("double", {"x": 21})
                    took[name].append(time.perf_counter() - started)
    finally:
        for server in servers.values():
            server.stop()
    return took


def ts_client(
    registry: Path, calls: int, rounds: int, h11: bool
) -> tuple[dict[str, list[float]], list[dict[str, float]]] | None:
    node = shutil.which("node")
    if not node or not (TS_CLIENT / "node_modules" / "@modelcontextprotocol" / "sdk").is_dir():
        return None
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "PYTHONPATH", "HOME")}
    servers = http_servers(registry, h11)
    warm = 20
    took: dict[str, list[float]] = {k: [] for k in ("toolcrib stdio", "bare stdio", *servers)}
    # Each round's own medians: a node process's JIT and the machine's load
    # move from process to process, so the differences are also taken round
    # by round, between processes that ran back to back.
    per_round: list[dict[str, float]] = []
    jobs = {
        "toolcrib stdio": {"transport": "stdio", "command": TOOLCRIB, "args": ["--registry", str(registry), "serve"]},
        "bare stdio": {"transport": "stdio", "command": sys.executable, "args": [__file__, "--serve-bare", "stdio"]},
        **{
            name: {"transport": "http", "url": server.url, **({"token": TOKEN} if name.startswith("toolcrib") else {})}
            for name, server in servers.items()
        },
    }
    try:
        for turn in range(rounds):
            this_round: dict[str, float] = {}
            order = list(jobs.items())
            for name, job in order[turn % len(order) :] + order[: turn % len(order)]:
                job = {**job, "env": env, "repeat": {"name": "double", "arguments": {"x": 21}, "times": warm + calls}}
                done = subprocess.run(
                    [node, str(TS_CLIENT / "client.mjs")],
                    input=json.dumps(job),
                    capture_output=True,
                    text=True,
                    timeout=300,
                    cwd=TS_CLIENT,
                )
                report = json.loads(done.stdout)
                if "failure" in report:
                    raise SystemExit(f"TypeScript client, {name}: {report['failure']}")
                took[name] += [ms / 1000 for ms in report["calls_ms"][warm:]]
                this_round[name] = statistics.median(report["calls_ms"][warm:])
            per_round.append(this_round)
    finally:
        for server in servers.values():
            server.stop()
    return took, per_round


def round_differences(per_round: list[dict[str, float]]) -> dict[str, Any]:
    """HTTP minus stdio, and toolcrib's over bare's, within each round."""
    out: dict[str, Any] = {}
    for http in [name for name in per_round[0] if " http" in name]:
        stdio = http.split(" ")[0] + " stdio"
        differences = [r[http] - r[stdio] for r in per_round]
        out[f"{http} - stdio, each round ms"] = [round(d, 2) for d in differences]
        out[f"{http} - stdio, median of rounds ms"] = statistics.median(differences)
    return out


def goals(table: dict[str, dict[str, float]], api: float | None) -> dict[str, float]:
    out = {}
    if api is not None:
        out["stdio - (bare stdio + api) ms"] = (
            table["toolcrib stdio"]["median_ms"] - table["bare stdio"]["median_ms"] - api
        )
    out["http - stdio ms"] = table["toolcrib http"]["median_ms"] - table["toolcrib stdio"]["median_ms"]
    out["bare http - bare stdio ms"] = table["bare http"]["median_ms"] - table["bare stdio"]["median_ms"]
    for http in ("toolcrib http h11", "bare http h11"):
        if http in table:
            stdio = http.split(" ")[0] + " stdio"
            out[f"{http} - stdio ms"] = table[http]["median_ms"] - table[stdio]["median_ms"]
    # The 10th percentiles: the calls the shared machine's load delayed least.
    for http in [name for name in table if " http" in name]:
        stdio = http.split(" ")[0] + " stdio"
        out[f"{http} - stdio at p10 ms"] = table[http]["p10_ms"] - table[stdio]["p10_ms"]
    out["toolcrib / bare, stdio"] = table["toolcrib stdio"]["median_ms"] / table["bare stdio"]["median_ms"]
    out["toolcrib / bare, http"] = table["toolcrib http"]["median_ms"] / table["bare http"]["median_ms"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50, help="calls per side and round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--ts-rounds", type=int, default=12, help="TypeScript client processes per side (default 12)")
    parser.add_argument("--out", default="mcp.json", help="results file under bench/out/ (default mcp.json)")
    parser.add_argument(
        H11,
        action="store_true",
        help="also both servers on uvicorn's h11 parser, toolcrib's as it served at 2aaeb1f "
        "(the side-by-side baseline of the httptools change)",
    )
    parser.add_argument("--serve-bare", choices=["stdio", "http"], help=argparse.SUPPRESS)
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-toolcrib-h11":
        serve_toolcrib_h11(sys.argv[2:])
        return
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare, args.h11)
        return

    import anyio

    from toolcrib import Registry

    with tempfile.TemporaryDirectory() as tmp:
        registry = Path(tmp) / "bench.db"
        with Registry(registry, actor="bench") as reg:
            reg.add(DOUBLE, tests=[{"args": {"x": 2}, "expected": 4}])
            assert reg.verify("double").status == "verified"
        python = anyio.run(python_client, registry, args.calls, args.rounds, args.h11)
        load_before = os.getloadavg()
        ts = ts_client(registry, args.calls, args.ts_rounds, args.h11)

    results: dict[str, Any] = {
        "machine": platform.platform(),
        "load_average_before_ts": load_before,
        "load_average": os.getloadavg(),
        "calls": args.calls,
        "http_parser": http_parser(),
        "rounds": args.rounds,
    }
    python_table = {name: summary(took) for name, took in python.items()}
    api = python_table["api"]["median_ms"]
    results["python_sdk"] = {"table": python_table, "goals": goals(python_table, api)}
    if ts is not None:
        ts_took, ts_rounds = ts
        ts_table = {name: summary(took) for name, took in ts_took.items()}
        results["typescript_sdk"] = {
            "table": ts_table,
            "goals": {**goals(ts_table, api), **round_differences(ts_rounds)},
        }
    for client in ("python_sdk", "typescript_sdk"):
        if client not in results:
            print(f"\n{client}: skipped (node or tests/doors/ts_client/node_modules missing)")
            continue
        print(f"\n{client}: warm call of double(x), ms")
        print(f"{'side':<18} {'p10':>8} {'median':>8} {'p90':>8} {'n':>5}")
        for name, row in results[client]["table"].items():
            print(f"{name:<18} {row['p10_ms']:8.2f} {row['median_ms']:8.2f} {row['p90_ms']:8.2f} {row['n']:5d}")
        for goal, value in results[client]["goals"].items():
            print(f"  {goal}: {value}" if isinstance(value, list) else f"  {goal}: {value:.2f}")
    print(f"\nHTTP parser (both servers): {results['http_parser']}")
    print(f"load average (1, 5, 15 min) before the TypeScript rounds: {results['load_average_before_ts']}")
    print(f"load average (1, 5, 15 min) at the end: {results['load_average']}")
    OUT.mkdir(exist_ok=True)
    (OUT / args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
