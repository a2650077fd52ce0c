"""Where a warm MCP call over HTTP spends beyond stdio, per server (issue 17):
the official TypeScript SDK's client (tests/doors/ts_client) makes N warm
calls of ``double(x)`` in one process per side, transport and round, and for
each the low percentiles of its call times (min, p10, p25: the calls a
shared machine's load delayed least) and the median are reported, with the
server's CPU per call (``getrusage`` of the server process, the difference
between an N-call and a 100-call run) when ``--cpu`` is given.

Sides: ``now`` (``toolcrib serve``), ``h11`` (the same with the HTTP protocol
it had at 2aaeb1f: uvicorn's h11, the answer flushed at the end of the loop's
turn; `bench_mcp.serve_toolcrib_h11`), ``bare`` (bench_mcp's bare FastMCP
server). Rounds alternate the sides.

Run: .venv/bin/python bench/profile_mcp_http.py [--sides now,h11,bare] [--rounds 2] [--calls 600] [--cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_mcp import DOUBLE, TOKEN, TOOLCRIB, TS_CLIENT  # noqa: E402

WARM = 20


def wrapped(out: str, argv: list[str]) -> None:
    """Run argv; when it ends, write its CPU seconds (user + system) to out."""
    proc = subprocess.Popen(argv)
    signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGINT))
    while True:
        try:
            proc.wait()
            break
        except KeyboardInterrupt:
            continue
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    Path(out).write_text(str(usage.ru_utime + usage.ru_stime))


def server_argv(side: str, transport: str, registry: Path) -> list[str]:
    http = ["--http", "0", "--token", TOKEN] if transport == "http" else []
    if side == "now":
        return [TOOLCRIB, "--registry", str(registry), "serve", *http]
    if side == "h11":
        return [sys.executable, str(HERE / "bench_mcp.py"), "--serve-toolcrib-h11", "--registry", str(registry)]
    return [sys.executable, str(HERE / "bench_mcp.py"), "--serve-bare", transport]


def one_run(side: str, transport: str, registry: Path, calls: int) -> tuple[list[float], float]:
    """(the warm call times in ms, the server's CPU seconds) of one client process."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "PYTHONPATH", "HOME")}
    argv = server_argv(side, transport, registry)
    if side == "h11":
        argv += ["serve", "--http", "0", "--token", TOKEN] if transport == "http" else ["serve"]
    out = tempfile.mktemp(prefix="cpu-")
    wrapper = [sys.executable, __file__, "--wrap", out, "--", *argv]
    job: dict[str, Any] = {"env": env, "repeat": {"name": "double", "arguments": {"x": 21}, "times": WARM + calls}}
    proc = None
    if transport == "stdio":
        job.update(transport="stdio", command=wrapper[0], args=wrapper[1:])
    else:
        proc = subprocess.Popen(wrapper, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert proc.stderr is not None
        while not (found := re.search(rb"listening on (http://\S+/mcp)", line := proc.stderr.readline())):
            if not line:
                raise SystemExit(f"{side} did not start")
        threading.Thread(target=proc.stderr.read, daemon=True).start()
        job.update(transport="http", url=found.group(1).decode(), **({} if side == "bare" else {"token": TOKEN}))
    done = subprocess.run(
        ["node", str(TS_CLIENT / "client.mjs")], input=json.dumps(job), capture_output=True, text=True, cwd=TS_CLIENT
    )
    report = json.loads(done.stdout)
    if "failure" in report:
        raise SystemExit(f"{side} {transport}: {report['failure']}")
    if proc is not None:
        proc.terminate()
        proc.wait(60)
    for _ in range(600):
        if os.path.exists(out) and os.path.getsize(out):
            break
        time.sleep(0.05)
    cpu = float(Path(out).read_text())
    os.unlink(out)
    return report["calls_ms"][WARM:], cpu


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--wrap":
        wrapped(sys.argv[2], sys.argv[4:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", default="now,h11,bare")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--calls", type=int, default=600)
    parser.add_argument("--cpu", action="store_true", help="also the server's CPU per call (a 100-call run more)")
    args = parser.parse_args()
    from toolcrib import Registry

    rows: dict[tuple[str, str], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        registry = Path(tmp) / "bench.db"
        with Registry(registry, actor="bench") as reg:
            reg.add(DOUBLE, tests=[{"args": {"x": 2}, "expected": 4}])
            assert reg.verify("double").status == "verified"
        for _ in range(args.rounds):
            for side in args.sides.split(","):
                for transport in ("stdio", "http"):
                    took, cpu = one_run(side, transport, registry, args.calls)
                    ms = sorted(took)
                    row = {
                        "min": ms[0],
                        "p10": ms[len(ms) // 10],
                        "p25": ms[len(ms) // 4],
                        "median": statistics.median(ms),
                    }
                    if args.cpu:
                        _, cpu_small = one_run(side, transport, registry, 100)
                        row["server_cpu_ms_per_call"] = (cpu - cpu_small) / (args.calls - 100) * 1000
                    rows.setdefault((side, transport), []).append(row)
    print(f"TypeScript client, {args.calls} warm calls a process, {args.rounds} rounds; ms, each round")
    for (side, transport), runs in rows.items():
        cells = "  ".join("/".join(f"{v:.2f}" for v in run.values()) for run in runs)
        print(f"{side:5} {transport:5} {'/'.join(runs[0])}: {cells}")
    for side in args.sides.split(","):
        for stat in ("min", "p10"):
            gaps = [h[stat] - s[stat] for h, s in zip(rows[(side, "http")], rows[(side, "stdio")], strict=True)]
            print(f"{side:5} HTTP - stdio at {stat}: {', '.join(f'{g:+.2f}' for g in gaps)}")
    print(f"load average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
