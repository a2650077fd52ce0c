"""Sandbox side: run one job in *this* process and return the JSON reply.

INTERIM VERSION (no policy yet): the interface is the contract.

The caller (the zygote's forked child, or the in-container harness) has
already isolated this process. This module imports only the standard library,
RestrictedPython and its sibling policy modules, so the container image needs
nothing else.

Reply (UTF-8 JSON object, at most ``job["limits"]["output"]`` KiB):
    {"status": "ok"|"error"|"blocked"|"limit",
     "result": <JSON>, "error": {"type", "message", "line"} | null,
     "limit": null|"memory"|"output"|..., "stdout": "<captured prints>"}
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["run_job"]


def _reply(status: str, result: Any = None, error: dict | None = None, limit: str | None = None, stdout: str = "") -> dict:
    return {"status": status, "result": result, "error": error, "limit": limit, "stdout": stdout}


def run_job(job: dict, *, restricted: bool = True) -> bytes:
    """Run the job here; never raises. Returns the encoded reply."""
    cap = int(job.get("limits", {}).get("output", 1024)) * 1024
    try:
        ns: dict[str, Any] = {"__name__": "tool"}
        exec(compile(job["source"], "<tool>", "exec"), ns)
        if job.get("mode", "args") == "args":
            value = ns[job["entrypoint"]](**job.get("args", {}))
        else:
            exec(compile(job["snippet"], "<snippet>", "exec"), ns)
            value = ns.get("ans")
        reply = _reply("ok", value)
    except MemoryError:
        reply = _reply("limit", limit="memory")
    except BaseException as exc:  # noqa: BLE001 - everything the tool does is an outcome
        reply = _reply("error", error={"type": type(exc).__name__, "message": str(exc)[:2000], "line": None})
    try:
        data = json.dumps(reply, ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        data = json.dumps(_reply("error", error={"type": "ResultNotJSON", "message": str(exc), "line": None})).encode()
    if len(data) > cap:
        data = json.dumps(_reply("limit", limit="output")).encode()
    return data
