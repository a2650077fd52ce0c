"""The official TypeScript MCP SDKs' client, 1.x or 2.x (tests/doors/ts_client/client.mjs),
run by node for the tests: `run` sends it one job and returns its report.

tests/run.sh installs node and the SDK (``npm ci`` in tests/doors/ts_client);
without them the tests that use this fail (on CI a missing part is a failure)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

TS_CLIENT = Path(__file__).parent / "ts_client"


def run(job: dict[str, Any], *, timeout: float = 120.0, allow_failure: bool = False) -> dict[str, Any]:
    """The client's report for `job` (see client.mjs); its ``failure`` must be absent unless allowed."""
    node = shutil.which("node")
    assert node, "node is not installed (tests/run.sh installs it)"
    for package in ("sdk", "client"):
        assert (TS_CLIENT / "node_modules" / "@modelcontextprotocol" / package).is_dir(), (
            "the TypeScript SDKs are not installed: run `npm ci` in tests/doors/ts_client (tests/run.sh does)"
        )
    done = subprocess.run(
        [node, str(TS_CLIENT / "client.mjs")],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=TS_CLIENT,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    if not allow_failure:
        assert "failure" not in report, report["failure"]
    return report
