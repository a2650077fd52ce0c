"""Inside the WebAssembly guest (CPython for WASI, `sandbox/wasm.py`): read
one job from stdin, run it with `execute.run_job` (the same code as in the
restricted backend's jail and the Docker container), write the reply to
stdout, exit.

The host starts every instance with this folder readable at
``/opt/toolcrib/tcbox`` and runs ``from tcbox import wasm_main; wasm_main.main()``.
The guest has no other way out: no file but the read-only standard
library (and a lock's read-only site folder), no socket, process or thread.
stdout is the reply and nothing else under the restricted policy (the tool
cannot reach ``sys`` or ``os``); under plain the tool owns the interpreter,
and whatever it writes there is its own answer, which the host checks as
it checks every reply (`wire.parse_reply`).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

__all__ = ["MAX_JOB_BYTES", "SITE", "main"]

MAX_JOB_BYTES = 32 * 1024 * 1024
READ_CHUNK = 64 * 1024
# Where the host grants a lock's site folder, read-only.
SITE = "/opt/toolcrib/site"
# A pre-warmed instance's own folder: what to import ahead (a lock's
# imports), then its job.
PRELOAD = "/job/preload.json"
JOB_FILE = "/job/job.json"
# The host tells this wait from any other by its exact timeout (wasm.py's _WAIT_FOR_JOB_NS).
WAIT_FOR_JOB = 0.271828


def _read_bounded(fh: Any) -> bytes:
    """At most MAX_JOB_BYTES + 1 bytes of `fh`, in reads of READ_CHUNK.
    Never one read of the whole bound: CPython allocates the buffer it
    reads into (32 MiB of this guest's memory, counted against the tool's
    memory limit), and wasmtime's WASI copies each read through a zeroed
    host buffer as large as the one asked for (32 MiB zeroed per call)."""
    chunks: list[bytes] = []
    total = 0
    while total <= MAX_JOB_BYTES:
        chunk = fh.read(min(READ_CHUNK, MAX_JOB_BYTES + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _read_job() -> dict[str, Any]:
    # A pre-warmed instance gets its job as a file in its /job folder; a
    # fresh one on stdin.
    try:
        with open(JOB_FILE, "rb") as fh:
            data = _read_bounded(fh)
    except OSError:
        data = _read_bounded(sys.stdin.buffer)
    if len(data) > MAX_JOB_BYTES:
        raise ValueError("job too large")
    job = json.loads(data)
    if not isinstance(job, dict):
        raise ValueError("job is not an object")
    return job


def _load_packages() -> None:
    """A lock's site folder on the path, its packages imported (as the lock
    zygote and the Docker runtime image do); a package that fails to import
    here fails the same way in the tool, where the error reaches the caller."""
    if os.path.isdir(SITE):
        sys.path.append(SITE)
    try:
        with open(PRELOAD, encoding="utf-8") as fh:
            names = json.load(fh).get("imports") or []
        from . import preload

        preload.preload([str(name) for name in names])
    except Exception:  # noqa: BLE001 - see the docstring
        pass


def _fresh_random() -> None:
    """The `random` module reseeded from the guest's entropy when it was
    imported before this call (in the harness image, made once for every
    instance): a tool never replays another call's sequence. A forked
    zygote child does the same for the restricted policy's generator."""
    module = sys.modules.get("random")
    if module is not None:
        module.seed()


def _write(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(1, view) :]


def main() -> None:
    """Serve exactly one job from stdin; the reply goes to stdout."""
    from . import execute

    _load_packages()
    # Not `execute.warm()` here, which the restricted backend's zygote runs
    # so that its forked children, which cannot read files, import nothing:
    # this guest reads the standard library (read-only) at any time, and
    # running a job of each kind cost every instance about 35 ms of CPU.
    # The harness image (sandbox/wasm_snapshot.py) runs it once, when the
    # image is made, so every instance of that image starts warm for free.
    # Warm now: the host holds this first wait until the job is in stdin
    # (a pre-warmed instance; a fresh one is answered at once).
    import select

    select.select([], [], [], WAIT_FOR_JOB)
    try:
        job = _read_job()
    except Exception as exc:  # noqa: BLE001 - report, never a traceback on stdout
        sys.stderr.write(f"bad job: {type(exc).__name__}: {exc}"[:500])
        sys.exit(2)
    _fresh_random()
    reply = execute.run_job(job, restricted=job.get("policy") != "plain")
    sys.stdout.flush()
    _write(reply)
    # The instance is dropped: no interpreter shutdown to pay for.
    os._exit(0)
