"""The Docker backend against a real engine and the real sandbox image."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from toolcrib.sandbox import Job, Limits, Result
from toolcrib.sandbox.contract import Backend
from toolcrib.sandbox.docker import LABEL, LABEL_PID, DockerBackend

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def dock(docker_image: str):
    backend = DockerBackend(pool_size=2, image=docker_image)
    assert backend.unavailable_reason is None, backend.unavailable_reason
    yield backend
    backend.close()


def plain(source: str, entrypoint: str = "f", **kw) -> Job:
    return Job(source=textwrap.dedent(source), entrypoint=entrypoint, policy="plain", **kw)


def labelled(client, **extra: str) -> list[dict]:
    filters = [f"{LABEL}=1"] + [f"{k}={v}" for k, v in extra.items()]
    return client.api.containers(all=True, filters={"label": filters})


def test_backend_protocol(dock: DockerBackend) -> None:
    assert isinstance(dock, Backend)
    assert dock.name == "docker"


def test_args_call_returns_json_and_image_digest(dock: DockerBackend) -> None:
    r = dock.run(
        plain("def f(a, b):\n    print('hi')\n    return {'sum': a + b, 'l': [a, b]}\n", args={"a": 2, "b": 3})
    )
    assert r.status == "ok", r
    assert r.result == {"sum": 5, "l": [2, 3]}
    assert "hi" in r.stdout
    assert r.backend == "docker"
    assert r.environment["image_digest"] == dock.image_id and r.environment["image_digest"].startswith("sha256:")


def test_snippet_call(dock: DockerBackend) -> None:
    job = Job(
        source="def sq(x):\n    return x * x\n",
        entrypoint="sq",
        mode="snippet",
        snippet="ans = [sq(i) for i in range(4)]",
        policy="plain",
    )
    r = dock.run(job)
    assert r.status == "ok", r
    assert r.result == [0, 1, 4, 9]


def test_tool_error_is_reported(dock: DockerBackend) -> None:
    r = dock.run(plain("def f():\n    raise KeyError('nope')\n"))
    assert r.status == "error"
    assert r.error is not None and r.error.type == "KeyError"
    assert "nope" in r.error.message


def test_restricted_policy_applies_inside_container(dock: DockerBackend) -> None:
    source = "import os\ndef f():\n    return os.getcwd()\n"
    inside = dock.run(Job(source=source, entrypoint="f", policy="restricted"))
    assert inside.status == "blocked", inside
    outside = dock.run(Job(source=source, entrypoint="f", policy="plain"))
    assert outside.status == "ok" and outside.result == "/tmp"


def test_wall_clock_limit(dock: DockerBackend) -> None:
    r = dock.run(plain("import time\ndef f():\n    time.sleep(60)\n", limits=Limits(wall=1)))
    assert (r.status, r.limit) == ("limit", "wall")


def test_cpu_limit(dock: DockerBackend) -> None:
    r = dock.run(plain("def f():\n    while True:\n        pass\n", limits=Limits(cpu=1, wall=20)))
    assert (r.status, r.limit) == ("limit", "cpu")


def test_memory_limit(dock: DockerBackend) -> None:
    source = "def f():\n    hog = []\n    while True:\n        hog.append(bytearray(8 * 2**20))\n"
    r = dock.run(plain(source, limits=Limits(memory=64, wall=20)))
    assert (r.status, r.limit) == ("limit", "memory"), r


def test_output_limit(dock: DockerBackend) -> None:
    r = dock.run(plain("def f():\n    return 'x' * (512 * 1024)\n", limits=Limits(output=64)))
    assert (r.status, r.limit) == ("limit", "output")


def test_disk_limit(dock: DockerBackend) -> None:
    source = """
    def f():
        with open('/tmp/big', 'wb') as fh:
            for _ in range(64):
                fh.write(b'x' * 2**20)
                fh.flush()
        return 'wrote it all'
    """
    r = dock.run(plain(source, limits=Limits(disk=4)))
    assert (r.status, r.limit) == ("limit", "disk"), r


def test_no_disk_means_no_writable_tmp(dock: DockerBackend) -> None:
    source = "def f():\n    open('/tmp/x', 'w').write('x')\n"
    r = dock.run(plain(source, limits=Limits(disk=0)))
    assert r.status == "error" and r.error is not None
    assert "Read-only file system" in r.error.message


def test_fork_bomb_is_contained(dock: DockerBackend) -> None:
    source = "import os\ndef f():\n    while True:\n        os.fork()\n"
    r = dock.run(plain(source, limits=Limits(pids=16, wall=10)))
    assert r.status in ("limit", "error"), r
    if r.status == "limit":
        assert r.limit == "pids"


def test_thread_bomb_hits_pids_limit(dock: DockerBackend) -> None:
    source = "import threading, time\ndef f():\n    while True:\n        threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n"
    r = dock.run(plain(source, limits=Limits(pids=16, wall=10)))
    assert (r.status, r.limit) == ("limit", "pids"), r


def test_each_call_gets_a_fresh_container(dock: DockerBackend) -> None:
    write = dock.run(
        plain("def f():\n    open('/tmp/left', 'w').write('x')\n    return open('/proc/self/cgroup').read()\n")
    )
    read = dock.run(
        plain("import os\ndef f():\n    return [os.path.exists('/tmp/left'), open('/proc/self/cgroup').read()]\n")
    )
    assert write.status == "ok" and read.status == "ok"
    assert read.result[0] is False
    assert read.result[1] != write.result


def test_result_that_is_not_json(dock: DockerBackend) -> None:
    r = dock.run(plain("def f():\n    return object()\n"))
    assert r.status == "error"
    assert r.error is not None and r.error.type == "ResultNotJSON"


def test_non_default_limits_run_on_demand(dock: DockerBackend) -> None:
    r = dock.run(
        plain("def f():\n    return open('/sys/fs/cgroup/pids/pids.max').read().strip()\n", limits=Limits(pids=7))
    )
    assert r.status == "ok", r
    assert r.result == "10"  # the tool's 7 plus the sandbox's own processes


def test_concurrent_calls(dock: DockerBackend) -> None:
    results: list[Result] = []

    def call(i: int) -> None:
        results.append(dock.run(plain("def f(i):\n    return i * 10\n", args={"i": i})))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.result for r in results) == [0, 10, 20, 30, 40, 50]


CONTAINER_ID = """
def f():
    ids = [p for line in open('/proc/self/cgroup') for p in line.strip().split('/') if len(p) == 64]
    return ids[0]
"""


def test_no_container_outlives_its_call(dock: DockerBackend) -> None:
    used = set()
    for _ in range(4):
        r = dock.run(plain(CONTAINER_ID))
        assert r.ok, r
        used.add(r.result)
    assert len(used) == 4  # one container per call
    client = dock._client
    # Finished calls' containers exit and are removed (in the background).
    deadline = time.monotonic() + 30
    left = used
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        existing = {c["Id"] for c in labelled(client, **{LABEL_PID: str(os.getpid())})}
        left = used & existing
    assert left == set()
    # Only the warm pool stays, and it stays at its size.
    assert dock.warm()
    assert all(len(pool) <= dock.pool_size for pool in dock._pool.idle().values())


def test_missing_image_is_unavailable(docker_image: str) -> None:
    backend = DockerBackend(pool_size=0, image="toolcrib-sandbox:no-such-tag")
    try:
        r = backend.run(plain("def f():\n    return 1\n"))
    finally:
        backend.close()
    assert r.status == "unavailable"
    assert r.error is not None and "toolcrib image build" in r.error.message


def test_missing_engine_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    backend = DockerBackend(pool_size=1)
    try:
        r = backend.run(plain("def f():\n    return 1\n"))
    finally:
        backend.close()
    assert r.status == "unavailable"
    assert r.error is not None and "no Docker engine" in r.error.message


CALLER = """
import sys
from toolcrib.sandbox import Job, Limits
from toolcrib.sandbox.docker import DockerBackend
backend = DockerBackend(pool_size=1, image=sys.argv[1])
assert backend.unavailable_reason is None, backend.unavailable_reason
print("ready", flush=True)
backend.run(Job(source="import time\\ndef f():\\n    time.sleep(120)\\n", entrypoint="f", policy="plain",
                limits=Limits(wall=120, cpu=100)))
"""


def test_sigkilled_caller_leaves_nothing_after_next_start(docker_image: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", CALLER, docker_image], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        probe = DockerBackend(pool_size=0, image=docker_image)
        client = probe._client
        # Wait until the caller's long call is running in a container of its own.
        deadline = time.monotonic() + 60
        running: list[dict] = []
        while time.monotonic() < deadline:
            running = [c for c in labelled(client, **{LABEL_PID: str(proc.pid)}) if c["State"] == "running"]
            if len(running) >= 2:  # the call's container plus its pool's replacement
                break
            time.sleep(0.2)
        probe.close()
        assert running, "the caller never started a container"
        time.sleep(0.5)  # let the job reach the container
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        # The next backend start reaps everything the dead caller left.
        after = DockerBackend(pool_size=0, image=docker_image)
        try:
            left = labelled(after._client, **{LABEL_PID: str(proc.pid)})
            assert after.reaped >= 1
            # Anything still listed is only the engine finishing a removal.
            assert [c["State"] for c in left if c["State"] not in ("removing", "dead")] == []
        finally:
            after.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # else a ResourceWarning


def test_result_fields_are_plain_json(dock: DockerBackend) -> None:
    r = dock.run(plain("def f():\n    return {'a': [1, 2.5, None, True, 'x']}\n"))
    assert r.ok
    assert json.loads(json.dumps(r.result)) == {"a": [1, 2.5, None, True, "x"]}


def test_limits_the_engine_refuses_are_an_error_not_unavailable(dock: DockerBackend) -> None:
    r = dock.run(plain("def f():\n    return 1\n", limits=Limits(memory=1)))
    assert r.status == "error" and r.error is not None
    assert "refused" in r.error.message
    # The engine is fine: the next call works.
    assert dock.run(plain("def f():\n    return 2\n")).result == 2


def test_limit_is_named_even_when_the_tool_forked_a_pipe_holder(dock: DockerBackend) -> None:
    # A background process inherits the reply pipe; the harness must still
    # see the tool process die (here of SIGXCPU) instead of waiting for EOF.
    source = """
    import os, time
    def f():
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        while True:
            pass
    """
    r = dock.run(plain(source, limits=Limits(cpu=1, wall=15)))
    assert (r.status, r.limit) == ("limit", "cpu"), r


# --------------------------------------------------------------------------- outcomes from facts (issue 7)


def forging(reply: str) -> Job:
    """A plain tool that writes `reply`, framed as the harness's child does,
    into every descriptor it holds (the reply pipe among them), then exits."""
    return plain(f"""
    import os, struct
    def f():
        data = {reply.encode()!r}
        for fd in range(3, 64):
            try:
                os.write(fd, struct.pack('>Q', len(data)) + data)
            except OSError:
                pass
        os._exit(0)
    """)


def test_hand_raised_blocking_io_error_is_an_error_not_the_pids_limit(dock: DockerBackend) -> None:
    source = "def f():\n    raise BlockingIOError(11, 'Resource temporarily unavailable')\n"
    r = dock.run(plain(source))
    assert (r.status, r.limit, r.error and r.error.type) == ("error", None, "BlockingIOError"), r
    r = dock.run(plain('def f():\n    raise RuntimeError("can\'t start new thread")\n'))
    assert (r.status, r.limit) == ("error", None), r


def test_hand_raised_memory_error_is_an_error_not_the_memory_limit(dock: DockerBackend) -> None:
    r = dock.run(plain("def f():\n    raise MemoryError('fake')\n"))
    assert (r.status, r.limit, r.error and r.error.type) == ("error", None, "MemoryError"), r


def test_forged_replies_claim_nothing(dock: DockerBackend) -> None:
    def reply(**fields: object) -> str:
        return json.dumps({"status": "ok", "result": None, "error": None, "limit": None, "stdout": "", **fields})

    memory = dock.run(
        forging(reply(status="limit", limit="memory", error={"type": "MemoryError", "message": "m", "line": None}))
    )
    assert (memory.status, memory.limit, memory.error and memory.error.type) == ("error", None, "MemoryError"), memory
    pids = dock.run(forging(reply(status="limit", limit="pids")))
    assert (pids.status, pids.error and pids.error.type) == ("error", "SandboxProtocolError"), pids
    blocked = dock.run(forging(reply(status="blocked", error={"type": "PolicyViolation", "message": "no", "line": 1})))
    assert blocked.status == "error", blocked


@pytest.mark.parametrize("body", ["[" * 1000 + "]" * 1000, "NaN", "[1, Infinity]"])
def test_forged_deep_or_non_finite_replies_are_protocol_errors(dock: DockerBackend, body: str) -> None:
    forged = '{"status":"ok","result":' + body + ',"error":null,"limit":null,"stdout":""}'
    r = dock.run(forging(forged))
    assert (r.status, r.error and r.error.type) == ("error", "SandboxProtocolError"), r


def test_a_lone_surrogate_comes_back_as_a_replacement_character(dock: DockerBackend) -> None:
    r = dock.run(plain("def f():\n    return ['a' + chr(0xD800), chr(0xDFFF)]\n"))
    assert r.status == "ok" and r.result == ["a\ufffd", "\ufffd"], r


def test_a_frame_forged_through_proc_is_refused(dock: DockerBackend) -> None:
    # A plain tool can reach the container's stdout through /proc (tini's
    # descriptors, and the harness's own were it dumpable) and write a whole
    # frame claiming an OOM kill before the harness writes the real one. It
    # does not know the call's key, so the host refuses the frame.
    source = """
    import json, os
    def f():
        reply = json.dumps({"status": "limit", "result": None, "limit": "memory", "stdout": "",
                            "error": {"type": "MemoryError", "message": "forged", "line": None}}).encode()
        header = {"key": "0" * 32, "facts": {"exit": 0, "oom_kills": 1}, "reply_bytes": len(reply)}
        frame = json.dumps(header).encode() + b"\\n" + reply + b"\\n"
        wrote = []
        for pid in (1, os.getppid()):
            for n in range(12):
                try:
                    fd = os.open(f"/proc/{pid}/fd/{n}", os.O_WRONLY)
                except OSError:
                    continue
                try:
                    os.write(fd, frame)
                    wrote.append([pid, n])
                except OSError:
                    pass
        return wrote
    """
    r = dock.run(plain(source))
    assert r.limit is None and r.status == "error", r
    assert r.error is not None and r.error.type == "SandboxProtocolError" and "key" in r.error.message, r
    # The harness's own descriptors are out of reach; tini's stdout was the way in.
    probe = dock.run(plain("import os\ndef f():\n    return os.listdir(f'/proc/{os.getppid()}/fd')\n"))
    assert probe.status == "error" and probe.error is not None and probe.error.type == "PermissionError", probe
