"""The restricted backend's process layer, with real processes only.

Most checks look at the OS side of the sandbox (uid, process group, rlimits,
descriptors, network namespace), which the RestrictedPython policy would hide
from tool code. They use a backend built with ``allow_plain=True`` and jobs
with ``policy="plain"``: the tool then runs as plain Python *inside the same
locked-down child*, so what it sees is exactly what the OS layer allows. The
policy itself is tested elsewhere; a few tests here check it still applies by
default.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest
from toolcrib.sandbox import Job, Limits, Result
from toolcrib.sandbox.contract import Backend
from toolcrib.sandbox.restricted import RestrictedBackend

QUICK = Limits(cpu=2, wall=10, memory=128, output=64)


def plain(source: str, entrypoint: str = "f", **fields) -> Job:
    fields.setdefault("limits", QUICK)
    return Job(source=textwrap.dedent(source), entrypoint=entrypoint, policy="plain", **fields)


def ok(result: Result):
    assert result.status == "ok", result
    return result.result


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pid: int, within: float = 10.0) -> bool:
    end = time.monotonic() + within
    while time.monotonic() < end:
        if not pid_alive(pid):
            return True
        time.sleep(0.02)
    return not pid_alive(pid)


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry))
    return found


# --------------------------------------------------------------------------- basics


def test_is_a_backend(rb: RestrictedBackend) -> None:
    assert isinstance(rb, Backend)
    assert rb.name == "restricted"


def test_info_reports_what_the_process_layer_achieves(rb: RestrictedBackend) -> None:
    info = rb.info()
    assert info["available"] is True
    assert pid_alive(info["zygote_pid"])
    assert info["own_process_group"] is True
    assert info["no_new_privs"] is True
    assert info["uid_switched"] is (os.geteuid() == 0)
    assert isinstance(info["network_namespace"], bool)
    if not info["network_namespace"]:
        assert info["network_namespace_error"]


def test_the_policy_applies_unless_the_job_asks_for_plain() -> None:
    source = "import os\ndef f():\n    return os.getpid()\n"
    backend = RestrictedBackend()
    try:
        r = backend.run(Job(source=source, entrypoint="f", limits=QUICK))
        assert r.status == "blocked", r
        assert r.error is not None and "os" in r.error.message
        # With the whole jail in force, plain is honoured by default.
        assert isinstance(ok(backend.run(Job(source=source, entrypoint="f", policy="plain", limits=QUICK))), int)
    finally:
        backend.close()


def test_plain_can_be_switched_off() -> None:
    backend = RestrictedBackend(allow_plain=False)
    try:
        r = backend.run(Job(source="def f():\n    return 1\n", entrypoint="f", policy="plain", limits=QUICK))
        assert r.status == "unavailable", r
        assert r.error is not None and "allow_plain" in r.error.message
    finally:
        backend.close()


def test_an_import_of_a_module_not_loaded_says_so(rb: RestrictedBackend) -> None:
    r = rb.run(plain("def f():\n    import hashlib\n    return 1\n"))
    assert (r.status, r.error and r.error.type) == ("error", "ModuleNotFoundError"), r
    assert r.error is not None and "not available in the sandbox" in r.error.message


def test_duration_is_measured_on_the_host(rb: RestrictedBackend) -> None:
    started = time.perf_counter()
    r = rb.run(plain("import time\ndef f():\n    time.sleep(0.3)\n    return 1\n"))
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert ok(r) == 1
    assert 300 <= r.duration_ms <= elapsed_ms


# --------------------------------------------------------------------------- isolation


def test_every_call_runs_in_a_fresh_process(rb: RestrictedBackend) -> None:
    pids = [ok(rb.run(plain("import os\ndef f():\n    return os.getpid()\n"))) for _ in range(6)]
    assert len(set(pids)) == 6
    assert os.getpid() not in pids
    assert rb.info()["zygote_pid"] not in pids


def test_state_set_by_one_call_is_not_seen_by_the_next(rb: RestrictedBackend) -> None:
    source = """
        import builtins, json
        def f():
            seen = [getattr(builtins, 'toolcrib_leak', None), getattr(json, 'toolcrib_leak', None)]
            builtins.toolcrib_leak = 'from an earlier call'
            json.toolcrib_leak = 'from an earlier call'
            return seen
    """
    assert ok(rb.run(plain(source))) == [None, None]
    assert ok(rb.run(plain(source))) == [None, None]


def test_child_is_not_root_and_has_no_groups(rb: RestrictedBackend) -> None:
    if os.geteuid() != 0:
        pytest.skip("the uid switch needs a root host")
    ids = ok(rb.run(plain("import os\ndef f():\n    return [os.getresuid(), os.getresgid(), os.getgroups()]\n")))
    uids, gids, groups = ids
    assert 0 not in uids and 0 not in gids
    assert len(set(uids)) == 1 and len(set(gids)) == 1
    assert groups == []


def test_concurrent_children_run_as_different_uids(rb: RestrictedBackend) -> None:
    if os.geteuid() != 0:
        pytest.skip("the uid switch needs a root host")
    source = "import os, time\ndef f():\n    time.sleep(0.5)\n    return os.getuid()\n"
    results: list[Result] = []
    threads = [threading.Thread(target=lambda: results.append(rb.run(plain(source)))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    uids = [ok(r) for r in results]
    assert len(set(uids)) == 3


def test_child_leads_its_own_session_and_process_group(rb: RestrictedBackend) -> None:
    pid, pgid, sid = ok(rb.run(plain("import os\ndef f():\n    return [os.getpid(), os.getpgid(0), os.getsid(0)]\n")))
    assert pgid == pid and sid == pid
    assert pgid != os.getpgid(0)


def zygote_children(rb: RestrictedBackend) -> list[int]:
    """The zygote's children (its spares: locked down and jailed, waiting)."""
    zygote = rb.info()["zygote_pid"]
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[1]) == zygote:
                        children.append(int(entry))
            except (FileNotFoundError, ProcessLookupError):
                continue
    return children


def proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        return dict(line.rstrip("\n").split(":\t", 1) for line in fh if ":\t" in line)


def test_no_new_privileges_seccomp_and_no_core_dumps(rb: RestrictedBackend) -> None:
    # Seen from the host: inside, the jail hides /proc from the tool.
    rb.run(plain("def f():\n    return 1\n"))  # the spares are forked and jailed
    jailed: dict[str, str] | None = None
    deadline = time.monotonic() + 60
    while jailed is None and time.monotonic() < deadline:
        for pid in zygote_children(rb):
            try:
                status = proc_status(pid)
            except (FileNotFoundError, ProcessLookupError):
                continue  # the spare that served the call above, gone meanwhile
            if status["Seccomp"].strip() != "0":  # not one forked a moment ago, still locking down
                jailed = status
                break
        else:
            time.sleep(0.05)
    assert jailed is not None, "no jailed spare seen"
    assert jailed["NoNewPrivs"].strip() == "1"
    assert jailed["Seccomp"].strip() == "2"  # filter mode
    core = ok(rb.run(plain("import resource\ndef f():\n    return resource.getrlimit(resource.RLIMIT_CORE)\n")))
    assert core == [0, 0]


def test_rlimits_are_set_with_soft_equal_to_hard(rb: RestrictedBackend) -> None:
    source = """
        import resource
        def f():
            names = ['RLIMIT_CPU', 'RLIMIT_AS', 'RLIMIT_FSIZE', 'RLIMIT_NOFILE', 'RLIMIT_NPROC']
            return {n: resource.getrlimit(getattr(resource, n)) for n in names}
    """
    limits = ok(rb.run(plain(source, limits=Limits(cpu=3, wall=10, memory=100, disk=2))))
    for name, (soft, hard) in limits.items():
        assert soft == hard, name
    assert limits["RLIMIT_FSIZE"][0] == 2 * 2**20
    assert limits["RLIMIT_NPROC"][0] == 0
    assert limits["RLIMIT_NOFILE"][0] <= 32
    assert 3 <= limits["RLIMIT_CPU"][0] <= 4
    # The tool's allowance sits on top of the interpreter's own mapping.
    assert 100 * 2**20 < limits["RLIMIT_AS"][0] < 400 * 2**20


def test_only_the_call_socket_is_inherited(rb: RestrictedBackend) -> None:
    # /proc is out of reach inside the jail: probe every descriptor number
    # with fcntl (allowed on what the child holds) instead.
    source = """
        import fcntl, socket
        def f():
            held = {}
            for fd in range(256):
                try:
                    fcntl.fcntl(fd, fcntl.F_GETFD)
                except OSError:
                    continue
                try:
                    s = socket.socket(fileno=fd)
                    held[str(fd)] = "socket:%d" % s.type
                    s.detach()
                except OSError:
                    held[str(fd)] = "other"
            return held
    """
    held = ok(rb.run(plain(source)))
    assert {fd: kind for fd, kind in held.items() if int(fd) < 3} == {"0": "other", "1": "other", "2": "other"}
    others = [kind for fd, kind in held.items() if int(fd) >= 3]
    assert others == [f"socket:{int(socket.SOCK_STREAM)}"], held


def test_secret_environment_never_reaches_the_sandbox() -> None:
    os.environ["TOOLCRIB_TEST_SECRET"] = "hunter2-secret-value"
    backend = RestrictedBackend(allow_plain=True)
    try:
        env = ok(backend.run(plain("import os\ndef f():\n    return dict(os.environ)\n")))
        assert "TOOLCRIB_TEST_SECRET" not in env
        assert "hunter2-secret-value" not in repr(env)
        with open(f"/proc/{backend.info()['zygote_pid']}/environ", "rb") as fh:
            assert b"hunter2-secret-value" not in fh.read()
    finally:
        del os.environ["TOOLCRIB_TEST_SECRET"]
        backend.close()


def test_working_directory_is_empty_and_unwritable(rb: RestrictedBackend) -> None:
    source = """
        import os
        def f():
            try:
                open('planted.txt', 'w').close()
                wrote = True
            except OSError as exc:
                wrote = type(exc).__name__
            try:
                listing = os.listdir('.')
            except OSError as exc:
                listing = type(exc).__name__
            return [wrote, listing]
    """
    wrote, listing = ok(rb.run(plain(source)))
    assert wrote == "PermissionError"
    assert listing in ([], "PermissionError")


def test_fork_and_threads_are_refused(rb: RestrictedBackend) -> None:
    source = """
        import os, _thread
        def f():
            out = []
            try:
                pid = os.fork()
                if pid == 0:
                    os._exit(0)
                out.append('forked')
            except OSError as exc:
                out.append(type(exc).__name__)
            try:
                _thread.start_new_thread(print, ())
                out.append('thread')
            except RuntimeError as exc:
                out.append(type(exc).__name__)
            return out
    """
    # seccomp refuses clone (EPERM) before RLIMIT_NPROC would (EAGAIN).
    assert ok(rb.run(plain(source))) == ["PermissionError", "RuntimeError"]


def test_network_namespace_has_only_loopback(rb: RestrictedBackend) -> None:
    if not rb.info()["network_namespace"]:
        pytest.skip(f"no network namespace here: {rb.info()['network_namespace_error']}")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        source = f"""
            import socket
            def f():
                try:
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    s.settimeout(2)
                    s.connect(('127.0.0.1', {port}))
                    reached = 'connected'
                except OSError as exc:
                    reached = type(exc).__name__
                return reached
        """
        # No socket at all (seccomp), and under it a namespace with only lo
        # (what the start-up probe saw before its own jail closed).
        assert ok(rb.run(plain(source))) == "PermissionError"
        assert rb._current().facts["interfaces"] == ["lo"]
        zygote = rb.info()["zygote_pid"]
        assert os.readlink(f"/proc/{zygote}/ns/net") != os.readlink("/proc/self/ns/net")
        listener.settimeout(0.2)
        with pytest.raises(TimeoutError):
            listener.accept()
    finally:
        listener.close()


# --------------------------------------------------------------------------- limits


def test_cpu_limit_busy_loop(rb: RestrictedBackend) -> None:
    r = rb.run(plain("def f():\n    while True:\n        pass\n", limits=Limits(cpu=1, wall=30)))
    assert (r.status, r.limit) == ("limit", "cpu"), r


def test_cpu_limit_c_loop(rb: RestrictedBackend) -> None:
    r = rb.run(plain("def f():\n    return sum(range(10 ** 12))\n", limits=Limits(cpu=1, wall=30)))
    assert (r.status, r.limit) == ("limit", "cpu"), r


def test_wall_limit_sleep(rb: RestrictedBackend) -> None:
    # Sleeping burns no CPU: only the zygote's wall clock ends it.
    r = rb.run(plain("import time\ndef f():\n    time.sleep(60)\n", limits=Limits(cpu=5, wall=0.5)))
    assert (r.status, r.limit) == ("limit", "wall"), r
    assert r.duration_ms < 30_000


def test_wall_limit_kills_a_process_that_ignores_signals(rb: RestrictedBackend) -> None:
    source = """
        import signal, time
        def f():
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)
            time.sleep(60)
    """
    r = rb.run(plain(source, limits=Limits(cpu=5, wall=0.5)))
    assert (r.status, r.limit) == ("limit", "wall"), r


def test_memory_limit_raises_memory_error_inside(rb: RestrictedBackend) -> None:
    # Filled step by step: the trailer's peak resident size shows the
    # allowance really was used, so the reply's claim is believed.
    source = "def f():\n    hog = []\n    while True:\n        hog.append(bytearray(2 ** 20))\n"
    r = rb.run(plain(source, limits=Limits(memory=64)))
    assert (r.status, r.limit) == ("limit", "memory"), r


def test_a_refused_request_that_used_no_memory_is_the_tools_memory_error(rb: RestrictedBackend) -> None:
    # The memory rule (sandbox/wire.py): under plain, one request the limit
    # refused before any memory was used cannot be told from a tool raising
    # MemoryError itself, so it is the tool's error, not the limit.
    r = rb.run(plain("def f():\n    return len(bytearray(300 * 2 ** 20))\n", limits=Limits(memory=64)))
    assert (r.status, r.limit, r.error and r.error.type) == ("error", None, "MemoryError"), r
    # Under the policy the in-sandbox guard's record is trusted.
    guarded = rb.run(
        Job(source="def f():\n    return len('x' * (300 * 2 ** 20))\n", entrypoint="f", limits=Limits(memory=64))
    )
    assert (guarded.status, guarded.limit) == ("limit", "memory"), guarded


def test_memory_limit_is_not_below_the_allowance(rb: RestrictedBackend) -> None:
    r = rb.run(plain("def f():\n    return len(bytearray(40 * 2 ** 20))\n", limits=Limits(memory=64)))
    assert ok(r) == 40 * 2**20


def test_memory_exhaustion_that_kills_is_reported_as_memory(rb: RestrictedBackend) -> None:
    # Fill the allowance, then die from a signal as an out-of-memory C
    # allocation would: the zygote sees the death, the host maps it.
    source = """
        import os, signal
        def f():
            hog = []
            try:
                while True:
                    hog.append(bytearray(2 ** 20))
            except MemoryError:
                pass
            import ctypes
            ctypes.string_at(0)  # a real fault: the tool cannot signal itself
    """
    r = rb.run(plain(source, limits=Limits(memory=64)))
    assert (r.status, r.limit) == ("limit", "memory"), r


def test_output_limit_from_the_reply(rb: RestrictedBackend) -> None:
    r = rb.run(plain("def f():\n    return 'x' * (300 * 1024)\n", limits=Limits(output=64)))
    assert (r.status, r.limit) == ("limit", "output"), r


def test_output_flood_past_the_cap_is_cut_off_by_the_host(rb: RestrictedBackend) -> None:
    # Bypass the reply encoder: write raw bytes into every socket the child
    # holds. The host stops reading at the cap and the child is killed.
    source = """
        import os, socket, time
        def f():
            chunk = b'z' * 65536
            for fd in range(3, 16):
                try:
                    s = socket.socket(fileno=fd)
                except OSError:
                    continue
                try:
                    while True:
                        s.sendall(chunk)
                except OSError:
                    pass
            time.sleep(60)
    """
    r = rb.run(plain(source, limits=Limits(output=64, wall=20)))
    assert (r.status, r.limit) == ("limit", "output"), r
    assert r.duration_ms < 20_000


def test_no_file_can_be_written_anywhere(rb: RestrictedBackend) -> None:
    # The disk limit has nothing left to limit here: Landlock refuses every
    # file creation, even in a directory the child's uid may write to.
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o777)
        target = Path(tmp) / "planted.bin"
        source = (
            f"def f():\n    with open({str(target)!r}, 'wb') as fh:\n        fh.write(b'x')\n    return 'written'\n"
        )
        r = rb.run(plain(source, limits=Limits(disk=1)))
        assert (r.status, r.error and r.error.type) == ("error", "PermissionError"), r
        assert not target.exists()


def test_the_host_is_untouched_by_limits(rb: RestrictedBackend) -> None:
    import resource

    before = {
        kind: resource.getrlimit(kind) for kind in (resource.RLIMIT_AS, resource.RLIMIT_CPU, resource.RLIMIT_NPROC)
    }
    rb.run(plain("def f():\n    return len(bytearray(300 * 2 ** 20))\n", limits=Limits(memory=32)))
    after = {kind: resource.getrlimit(kind) for kind in before}
    assert before == after
    assert len(bytearray(64 * 2**20)) == 64 * 2**20  # the host can still allocate


# --------------------------------------------------------------------------- robustness


@pytest.mark.parametrize(
    "reply",
    [b"\x00garbage{not json", b'{"status": "ok", "limit": "everything"}'],
    ids=["garbage", "wrong-shape"],
)
def test_a_forged_reply_is_an_error_not_a_crash(rb: RestrictedBackend, reply: bytes) -> None:
    """A tool writes its own bytes on every descriptor that could be the call
    socket and exits: not JSON, or JSON of the wrong shape. The host reports a
    protocol error and the backend keeps serving."""
    source = f"""
        import os, socket
        def f():
            for fd in range(3, 16):
                try:
                    socket.socket(fileno=fd).sendall({reply!r})
                except OSError:
                    pass
            os._exit(0)
    """
    r = rb.run(plain(source))
    assert r.status == "error", r
    assert r.error is not None and r.error.type == "SandboxProtocolError"
    assert ok(rb.run(plain("def f():\n    return 'still fine'\n"))) == "still fine"


def test_a_crashing_child_is_an_error(rb: RestrictedBackend) -> None:
    r = rb.run(plain("import ctypes\ndef f():\n    ctypes.string_at(0)\n"))
    assert r.status == "error", r
    assert r.error is not None and "SIGSEGV" in r.error.message


def test_a_child_that_exits_without_reply_is_an_error(rb: RestrictedBackend) -> None:
    r = rb.run(plain("import os\ndef f():\n    os._exit(3)\n"))
    assert r.status == "error", r
    assert r.error is not None and "code 3" in r.error.message


def test_concurrent_calls_get_their_own_results(rb: RestrictedBackend) -> None:
    source = "import os, time\ndef f(x):\n    time.sleep(0.05)\n    return [x, x * x, os.getpid()]\n"
    results: dict[int, Result] = {}

    def call(x: int) -> None:
        results[x] = rb.run(plain(source, args={"x": x}))

    threads = [threading.Thread(target=call, args=(x,)) for x in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    values = {x: ok(r) for x, r in results.items()}
    assert sorted(values) == list(range(12))
    for x, (echo, square, _pid) in values.items():
        assert (echo, square) == (x, x * x)
    assert len({pid for _x, _sq, pid in values.values()}) == 12


def test_zygote_is_restarted_after_kill_9() -> None:
    backend = RestrictedBackend(allow_plain=True)
    try:
        first = backend.info()["zygote_pid"]
        os.kill(first, signal.SIGKILL)
        assert wait_gone(first)
        r = backend.run(plain("def f():\n    return 'after restart'\n"))
        assert ok(r) == "after restart"
        second = backend.info()["zygote_pid"]
        assert second != first and pid_alive(second)
    finally:
        backend.close()


def test_killing_the_zygote_mid_call_is_unavailable_not_a_hang() -> None:
    backend = RestrictedBackend(allow_plain=True)
    try:
        zygote = backend.info()["zygote_pid"]
        killer = threading.Timer(0.5, os.kill, (zygote, signal.SIGKILL))
        killer.start()
        r = backend.run(plain("import time\ndef f():\n    time.sleep(30)\n", limits=Limits(wall=60)))
        killer.join()
        assert r.status == "unavailable", r
        assert ok(backend.run(plain("def f():\n    return 1\n"))) == 1
    finally:
        backend.close()


def test_unavailable_when_the_zygote_cannot_start(tmp_path: Path) -> None:
    missing = RestrictedBackend(python=str(tmp_path / "no-such-python"))
    r = missing.run(Job(source="def f():\n    return 1\n", entrypoint="f"))
    assert r.status == "unavailable", r
    assert r.error is not None and "no-such-python" in r.error.message
    failing = RestrictedBackend(python="/bin/false")
    r = failing.run(Job(source="def f():\n    return 1\n", entrypoint="f"))
    assert r.status == "unavailable", r
    assert r.backend == "restricted"
    assert failing.info()["available"] is False


def test_close_leaves_no_processes_behind() -> None:
    backend = RestrictedBackend(allow_plain=True)
    zygote = backend.info()["zygote_pid"]
    slow = threading.Thread(
        target=backend.run, args=(plain("import time\ndef f():\n    time.sleep(30)\n", limits=Limits(wall=60)),)
    )
    slow.start()
    # Wait until the call's child and the spares exist.
    end = time.monotonic() + 10
    while len(children_of(zygote)) < 2 and time.monotonic() < end:
        time.sleep(0.02)
    children = children_of(zygote)
    assert children
    backend.close()
    slow.join(timeout=30)
    assert not slow.is_alive()
    assert wait_gone(zygote)
    for pid in children:
        assert wait_gone(pid), pid


def test_zygote_exits_when_the_host_dies(tmp_path: Path) -> None:
    script = tmp_path / "host.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys, threading, time
            from toolcrib.sandbox import Job, Limits
            from toolcrib.sandbox.restricted import RestrictedBackend
            backend = RestrictedBackend(allow_plain=True)
            print(backend.info()["zygote_pid"], flush=True)
            job = Job(source="import time\\ndef f():\\n    time.sleep(60)\\n", entrypoint="f", policy="plain", limits=Limits(wall=120))
            threading.Thread(target=backend.run, args=(job,), daemon=True).start()
            time.sleep(120)
            """
        )
    )
    host = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert host.stdout is not None
        zygote = int(host.stdout.readline())
        end = time.monotonic() + 10
        while len(children_of(zygote)) < 2 and time.monotonic() < end:
            time.sleep(0.02)
        children = children_of(zygote)
        assert children
    finally:
        host.kill()
        host.wait()
        host.stdout.close()  # else a ResourceWarning
    assert wait_gone(zygote)
    for pid in children:
        assert wait_gone(pid), pid


def test_a_job_that_cannot_be_encoded_is_an_error_not_an_exception(rb: RestrictedBackend) -> None:
    r = rb.run(Job(source="def f(x):\n    return 1\n", entrypoint="f", args={"x": object()}))
    assert r.status == "error", r
    assert r.error is not None and r.error.type == "InvalidJob"
