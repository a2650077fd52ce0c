"""The jail itself (`sandbox/jail.py`), against the real kernel: a forked
child enters it and tries what it must refuse; and the backend fails closed
when a layer is missing (made missing for real, by a seccomp filter around
the whole backend that hides the Landlock or seccomp system calls)."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import resource  # noqa: F401 - loaded before the fork: a jailed child can import nothing new
import signal
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from hidden_syscalls import hiding
from toolcrib.sandbox.inside import jail as jail_module
from toolcrib.sandbox.inside.jail import Jail, landlock_abi

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64", reason="syscall numbers below are x86_64's")

# x86_64 numbers, for raw syscalls the standard library has no wrapper for.
NR = {
    "openat": 257,
    "socket": 41,
    "socketpair": 53,
    "clone": 56,
    "fork": 57,
    "execve": 59,
    "kill": 62,
    "tgkill": 234,
    "ptrace": 101,
    "unshare": 272,
    "mount": 165,
    "bpf": 321,
    "io_uring_setup": 425,
    "keyctl": 250,
    "userfaultfd": 323,
    "perf_event_open": 298,
    "memfd_create": 319,
    "pipe2": 293,
    "shmget": 29,
    "msgget": 68,
    "chmod": 90,
    "chown": 92,
    "newfstatat": 262,
    "access": 21,
    "readlink": 89,
    "setxattr": 188,
    "process_vm_readv": 310,
    "pidfd_open": 434,
    "setns": 308,
    "chdir": 80,
    "mknod": 133,
    "rename": 82,
    "prctl": 157,
    "personality": 135,
    "add_key": 248,
    "getpid": 39,
    "clone3": 435,
    "prlimit64": 302,
}


def _in_jailed_child(body: str) -> dict[str, Any]:
    """Fork; the child enters a fresh jail, runs `body` (which fills
    `out`), writes `out` as JSON to a pipe; the parent returns it with the
    child's wait status."""
    read_fd, write_fd = os.pipe()
    jail = Jail()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            libc = ctypes.CDLL(None, use_errno=True)
            libc.syscall.restype = ctypes.c_long
            libc.prctl(38, 1, 0, 0, 0)  # no_new_privs, as the zygote's children have it
            entered = jail.enter()
            out: dict[str, Any] = {"entered": entered}

            def raw(name: str, *args: int) -> int:
                rc = libc.syscall(NR[name], *[ctypes.c_long(a) for a in args])
                return -ctypes.get_errno() if rc == -1 else int(rc)

            try:
                exec(textwrap.dedent(body), {"out": out, "raw": raw, "os": os, "errno": errno, "ctypes": ctypes})
            except BaseException as exc:  # noqa: BLE001 - reported to the test
                out["exception"] = f"{type(exc).__name__}: {exc}"
            os.write(write_fd, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    data = b""
    while chunk := os.read(read_fd, 65536):
        data += chunk
    os.close(read_fd)
    _pid, status = os.waitpid(pid, 0)
    result = json.loads(data) if data else {}
    result["status"] = status
    return result


def test_landlock_and_seccomp_are_available_here() -> None:
    # The machines this project runs on (and CI) have both; a kernel without
    # them is covered by the fail-closed tests below.
    assert landlock_abi() >= 4
    out = _in_jailed_child("pass")
    assert out["entered"] == ["landlock", "seccomp"]


def test_every_refused_syscall_fails_with_eperm() -> None:
    refused = [name for name in NR if name not in ("getpid", "clone3", "prlimit64")]
    out = _in_jailed_child(f"""
        for name in {refused!r}:
            out[name] = raw(name, 0, 0, 0, 0, 0, 0)
    """)
    assert {name: out[name] for name in refused} == {name: -errno.EPERM for name in refused}


def test_threads_fall_back_from_clone3_and_are_refused() -> None:
    out = _in_jailed_child("""
        out["clone3"] = raw("clone3", 0, 0)
        import _thread
        try:
            _thread.start_new_thread(print, ())
            out["thread"] = "started"
        except RuntimeError as exc:
            out["thread"] = str(exc)
    """)
    assert out["clone3"] == -errno.ENOSYS
    assert out["thread"] == "can't start new thread"


def test_what_cpython_needs_still_works() -> None:
    out = _in_jailed_child("""
        import time, json, random
        out["pid"] = raw("getpid") == os.getpid()
        out["clock"] = time.monotonic() > 0
        out["memory"] = len(bytearray(64 * 2 ** 20))
        out["random"] = len(os.urandom(16))
        out["json"] = json.loads(json.dumps({"a": [1, 2]}))
        time.sleep(0.001)
        import resource
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        out["rlimit"] = resource.getrlimit(resource.RLIMIT_CORE)
        # Limits of another process (the parent, same uid here) are out of reach.
        limit = (ctypes.c_uint64 * 2)()
        out["prlimit_parent"] = raw("prlimit64", os.getppid(), 4, 0, ctypes.addressof(limit))
    """)
    assert out["pid"] and out["clock"] and out["random"] == 16
    assert out["memory"] == 64 * 2**20
    assert out["json"] == {"a": [1, 2]}
    assert out["rlimit"] == [0, 0]
    assert out["prlimit_parent"] == -errno.EPERM


def test_files_and_directories_stay_out_of_reach(tmp_path: Any) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2")
    out = _in_jailed_child(f"""
        for name, attempt in [
            ("read", lambda: open({str(secret)!r}).read()),
            ("list", lambda: os.listdir({str(tmp_path)!r})),
            ("stat", lambda: os.stat({str(secret)!r}).st_size),
            ("create", lambda: open({str(tmp_path / "new.txt")!r}, "w")),
            ("proc", lambda: open("/proc/self/status").read()),
            ("exec", lambda: os.execv("/bin/true", ["true"])),
        ]:
            try:
                out[name] = repr(attempt())
            except OSError as exc:
                out[name] = exc.errno
    """)
    for name in ("read", "list", "stat", "create", "proc", "exec"):
        assert out[name] in (errno.EPERM, errno.EACCES), (name, out[name])
    assert not (tmp_path / "new.txt").exists()


def test_a_foreign_syscall_abi_kills_the_process() -> None:
    # x32 numbers (bit 30 set) would dodge a filter written for x86_64 only.
    out = _in_jailed_child("""
        out["x32"] = raw("getpid") and ctypes.CDLL(None).syscall(0x40000000 | 39)
    """)
    assert os.WIFSIGNALED(out["status"]) and os.WTERMSIG(out["status"]) == signal.SIGSYS, out


def test_the_allowlist_names_only_real_system_calls() -> None:
    lib = ctypes.CDLL("libseccomp.so.2")
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    unknown = [n for n in jail_module.SECCOMP_ALLOWED if lib.seccomp_syscall_resolve_name(n.encode()) < 0]
    assert unknown == []


# --------------------------------------------------------------------------- fail closed

# Runs the backend under an outer seccomp filter (allow everything, but the
# named system calls answer ENOSYS): the way an older kernel or a container
# without Landlock/seccomp looks to the jail.
_HIDDEN = {
    "landlock": (["landlock_create_ruleset", "landlock_restrict_self"], False),
    "seccomp": (["seccomp"], True),  # and the old way in: prctl(PR_SET_SECCOMP)
    "landlock+mount": (["landlock_create_ruleset", "landlock_restrict_self", "mount"], False),
}
_WITHOUT = """
import json
from toolcrib.sandbox import Job
from toolcrib.sandbox.restricted import RestrictedBackend
SNOOP = "import os\\ndef f():\\n    try:\\n        return os.listdir('/')\\n    except OSError as exc:\\n        return exc.errno\\n"
out = {}
for weak in (False, True):
    backend = RestrictedBackend(allow_weak=weak)
    try:
        out[f"weak={weak}"] = {
            "restricted": backend.run(Job(source="def f():\\n    return 7\\n", entrypoint="f")).to_json(),
            "plain": backend.run(Job(source="def f():\\n    return 7\\n", entrypoint="f", policy="plain")).to_json(),
            "layers": {l["layer"]: l["in_force"] for l in backend.info()["layers"]},
            "snoop": backend.run(Job(source=SNOOP, entrypoint="f", policy="plain")).to_json(),
        }
    finally:
        backend.close()
print(json.dumps(out))
"""


def _run_without(hide: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "TOOLCRIB_ALLOW_WEAK_JAIL"}
    names, prctl = _HIDDEN[hide]
    script = hiding(names, prctl_set_seccomp=prctl) + _WITHOUT
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_without_landlock_an_empty_root_stands_in() -> None:
    strict = _run_without("landlock")["weak=False"]
    assert strict["layers"]["landlock"] is False
    assert strict["layers"]["empty_root"] is True
    assert (strict["restricted"]["status"], strict["restricted"]["result"]) == ("ok", 7)
    assert "empty_root" in strict["restricted"]["layers"] and "landlock" not in strict["restricted"]["layers"]
    # Plain runs too (the whole jail is there), and sees nothing of the disk.
    assert (strict["plain"]["status"], strict["plain"]["result"]) == ("ok", 7)
    assert strict["snoop"]["result"] in (errno.EPERM, errno.EACCES, []), strict["snoop"]


@pytest.mark.parametrize("hide, layer", [("landlock+mount", "landlock"), ("seccomp", "seccomp")])
def test_a_missing_layer_fails_closed_and_weak_is_explicit(hide: str, layer: str) -> None:
    out = _run_without(hide)
    strict, weak = out["weak=False"], out["weak=True"]
    # Without the opt-in nothing runs, and the refusal names the layer.
    assert strict["restricted"]["status"] == "unavailable"
    assert layer in strict["restricted"]["error"]["message"]
    assert "TOOLCRIB_ALLOW_WEAK_JAIL" in strict["restricted"]["error"]["message"]
    assert strict["layers"][layer] is False
    # With it, restricted-policy calls run and say what they lacked...
    assert (weak["restricted"]["status"], weak["restricted"]["result"]) == ("ok", 7)
    assert layer not in weak["restricted"]["layers"]
    # ...and plain never runs without the whole jail.
    assert weak["plain"]["status"] == "unavailable"
    assert layer in weak["plain"]["error"]["message"]


def test_nothing_about_other_processes_can_be_asked() -> None:
    out = _in_jailed_child("""
        import socket, fcntl
        libc = ctypes.CDLL(None, use_errno=True)
        ts = (ctypes.c_long * 2)()
        def clock(clock_id):
            rc = libc.clock_gettime(ctypes.c_int(clock_id), ts)
            return -ctypes.get_errno() if rc else 0
        out["own_cpu_clock"] = clock(2)                  # CLOCK_PROCESS_CPUTIME_ID
        out["init_cpu_clock"] = clock(((~1) << 3) | 2)   # pid 1's CPU clock
        for name, call in [("getsid_1", lambda: os.getsid(1)), ("getpgid_1", lambda: os.getpgid(1)),
                           ("affinity_1", lambda: os.sched_getaffinity(1)), ("own_sid", lambda: os.getsid(0))]:
            try:
                call()
                out[name] = 0
            except OSError as exc:
                out[name] = -exc.errno
        socket.socketpair()  # no new socket of any kind inside the jail
    """)
    assert out["own_cpu_clock"] == 0
    assert out["init_cpu_clock"] == -errno.EPERM
    assert (out["getsid_1"], out["getpgid_1"], out["affinity_1"]) == (-errno.EPERM,) * 3
    assert out["own_sid"] == 0
    assert "PermissionError" in out.get("exception", "")  # the socketpair at the end


def test_inherited_sockets_do_not_tell_who_is_on_the_other_end() -> None:
    import socket

    ours, theirs = socket.socketpair()
    try:
        out = _in_jailed_child(f"""
            import socket, fcntl, struct
            s = socket.socket(fileno={theirs.fileno()})
            out["type"] = s.type == socket.SOCK_STREAM
            try:
                s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
                out["peercred"] = 0
            except OSError as exc:
                out["peercred"] = -exc.errno
            for name, cmd, arg in [("getfl", fcntl.F_GETFL, 0), ("setown", 8, 1), ("setsig", 10, 9)]:
                try:
                    fcntl.fcntl({theirs.fileno()}, cmd, arg)
                    out[name] = 0
                except OSError as exc:
                    out[name] = -exc.errno
            s.detach()
        """)
    finally:
        ours.close()
        theirs.close()
    assert out["type"] is True and out["getfl"] == 0
    assert (out["peercred"], out["setown"], out["setsig"]) == (-errno.EPERM,) * 3


def test_the_sandbox_has_a_host_name_of_its_own() -> None:
    from toolcrib.sandbox import Job
    from toolcrib.sandbox.restricted import RestrictedBackend

    backend = RestrictedBackend()
    try:
        result = backend.run(
            Job(source="import os\ndef f():\n    return os.uname().nodename\n", entrypoint="f", policy="plain")
        )
    finally:
        backend.close()
    assert (result.status, result.result) == ("ok", jail_module.SANDBOX_HOSTNAME), result
    assert result.result != platform.node()
