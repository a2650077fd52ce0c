"""Container-specific attacks on the Docker backend, in plain policy: the tool
is full Python inside its container, so only the container holds it.

Each attack returns what it managed to do as JSON; the assertions say that
nothing got through.
"""

from __future__ import annotations

import os
import socket
import textwrap
import threading
import time

import pytest
from toolcrib.sandbox import Job, Limits, Result
from toolcrib.sandbox.docker import LABEL, LABEL_PID, DockerBackend

pytestmark = pytest.mark.docker

SECRET = "toolcrib-host-secret-5f2c9a"


@pytest.fixture(scope="module")
def dock(docker_image: str):
    backend = DockerBackend(pool_size=1, image=docker_image)
    assert backend.unavailable_reason is None, backend.unavailable_reason
    yield backend
    backend.close()


def attack(dock: DockerBackend, source: str, **limits: float) -> Result:
    job = Job(source=textwrap.dedent(source), entrypoint="attack", policy="plain", limits=Limits(**limits))
    return dock.run(job)


def test_no_docker_socket(dock: DockerBackend) -> None:
    r = attack(
        dock,
        """
        import os, socket
        def attack():
            found = {}
            for path in ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock"):
                s = socket.socket(socket.AF_UNIX)
                try:
                    s.connect(path)
                    found[path] = "connected"
                except OSError as exc:
                    found[path] = exc.errno
                finally:
                    s.close()
            return {"exists": [p for p in found if os.path.exists(p)], "connected": [p for p, v in found.items() if v == "connected"]}
        """,
    )
    assert r.ok, r
    assert r.result == {"exists": [], "connected": []}


def test_no_host_mounts_and_no_writable_mounts(dock: DockerBackend) -> None:
    r = attack(
        dock,
        """
        def attack():
            mounts = [line.split()[:4] for line in open("/proc/mounts")]
            writable = []
            for target in ("/", "/etc", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/usr", "/opt/toolcrib", "/dev", "/var", "/root"):
                try:
                    open(target.rstrip("/") + ("/x" if not target.startswith("/etc/h") and target != "/etc/resolv.conf" else ""), "a").close()
                    writable.append(target)
                except OSError:
                    pass
            return {"mounts": mounts, "writable": writable}
        """,
    )
    assert r.ok, r
    assert r.result["writable"] == []
    # Only the engine's own per-container files and its init binary are
    # bind mounts, all read-only; no host path.
    allowed_binds = {"/etc/resolv.conf", "/etc/hostname", "/etc/hosts", "/usr/sbin/docker-init"}
    for source, target, fstype, options in r.result["mounts"]:
        if fstype in ("proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2", "overlay"):
            continue
        assert target in allowed_binds, (source, target, fstype)
        assert "ro" in options.split(","), (target, options)


def test_no_setuid_binaries_and_no_new_privileges(dock: DockerBackend) -> None:
    r = attack(
        dock,
        """
        import os, stat
        def attack():
            found = []
            for root, dirs, files in os.walk("/"):
                if root == "/" :
                    dirs[:] = [d for d in dirs if d not in ("proc", "sys", "dev")]
                for name in files:
                    path = os.path.join(root, name)
                    try:
                        mode = os.lstat(path).st_mode
                    except OSError:
                        continue
                    if stat.S_ISREG(mode) and mode & (stat.S_ISUID | stat.S_ISGID):
                        found.append(path)
            status = open("/proc/self/status").read()
            return {"setuid": found, "nnp": "NoNewPrivs:\\t1" in status, "uid": os.getuid(), "euid": os.geteuid(),
                    "caps": [l for l in status.splitlines() if l.startswith(("CapEff", "CapPrm", "CapBnd"))]}
        """,
        wall=20,
    )
    assert r.ok, r
    assert r.result["setuid"] == []
    assert r.result["nnp"] is True
    # Unprivileged: as root each container gets a machine-wide call uid of
    # its own (sandbox/uids.py), otherwise the image's user.
    assert r.result["uid"] == r.result["euid"]
    assert r.result["uid"] >= 2_000_000_000 if os.geteuid() == 0 else r.result["uid"] == 65534
    assert all(line.split()[1] == "0000000000000000" for line in r.result["caps"])


def test_host_environment_secret_is_invisible(
    dock: DockerBackend, docker_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLCRIB_TEST_SECRET", SECRET)
    # A backend started after the secret is in the environment.
    fresh = DockerBackend(pool_size=0, image=docker_image)
    try:
        r = fresh.run(
            Job(
                source=textwrap.dedent(
                    """
                    import os
                    def attack():
                        seen = dict(os.environ)
                        for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
                            try:
                                seen[pid] = open(f"/proc/{pid}/environ", "rb").read().decode("latin-1")
                            except OSError as exc:
                                seen[pid] = str(exc)
                        return seen
                    """
                ),
                entrypoint="attack",
                policy="plain",
            )
        )
    finally:
        fresh.close()
    assert r.ok, r
    assert SECRET not in repr(r.result)
    assert "TOOLCRIB_TEST_SECRET" not in repr(r.result)


def test_proc_shows_only_the_container(dock: DockerBackend) -> None:
    r = attack(
        dock,
        """
        import os
        def attack():
            out = {"pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit())}
            for path in ("/proc/kcore", "/proc/sysrq-trigger", "/sys/kernel/mm/transparent_hugepage/enabled"):
                try:
                    with open(path, "rb") as fh:
                        fh.read(16)
                    out[path] = "read"
                except OSError as exc:
                    out[path] = exc.errno
            try:
                with open("/proc/sys/kernel/hostname", "w") as fh:
                    fh.write("pwned")
                out["write_sysctl"] = True
            except OSError:
                out["write_sysctl"] = False
            try:
                os.kill(1, 9)
                out["kill_init"] = True
            except OSError:
                out["kill_init"] = False
            return out
        """,
    )
    assert r.ok, r
    # tini, the harness, the tool: no host process is visible.
    assert len(r.result["pids"]) <= 4 and r.result["pids"][0] == 1
    assert r.result["/proc/kcore"] != "read"
    assert r.result["/proc/sysrq-trigger"] != "read"
    assert r.result["write_sysctl"] is False


def test_tmpfs_fill_and_inode_exhaustion_then_clean(dock: DockerBackend) -> None:
    r = attack(
        dock,
        """
        import errno, os
        def attack():
            made = 0
            err = None
            try:
                while made < 10**6:
                    open(f"/tmp/f{made}", "w").close()
                    made += 1
            except OSError as exc:
                err = exc.errno
            return {"made": made, "err": errno.errorcode.get(err)}
        """,
        disk=2,
    )
    assert r.ok, r
    assert r.result["err"] == "ENOSPC" and r.result["made"] < 1024
    fill = attack(
        dock,
        """
        def attack():
            with open("/tmp/fill", "wb") as fh:
                while True:
                    fh.write(b"x" * 65536)
        """,
        disk=2,
    )
    assert (fill.status, fill.limit) == ("limit", "disk") or (
        fill.status == "error" and "No space" in fill.error.message
    )
    after = attack(dock, "import os\ndef attack():\n    return os.listdir('/tmp')\n", disk=2)
    assert after.ok and after.result == []


def test_read_only_root_refuses_writes_everywhere(dock: DockerBackend) -> None:
    r = attack(
        dock,
        """
        import errno, os
        def attack():
            results = {}
            for d in ("/", "/usr/lib/python3.11", "/usr/local/lib", "/opt/toolcrib/tcbox", "/var/tmp", "/home", "/run"):
                try:
                    open(os.path.join(d, "probe"), "w").close()
                    results[d] = "written"
                except OSError as exc:
                    results[d] = errno.errorcode.get(exc.errno)
            return results
        """,
    )
    assert r.ok, r
    assert "written" not in r.result.values(), r.result


def test_memory_bomb(dock: DockerBackend) -> None:
    r = attack(dock, "def attack():\n    return len(bytearray(2**31))\n", memory=64, wall=20)
    assert (r.status, r.limit) == ("limit", "memory"), r
    r = attack(dock, "def attack():\n    x = [bytes(2**20) for _ in range(10**4)]\n", memory=64, wall=20)
    assert (r.status, r.limit) == ("limit", "memory"), r


def test_process_and_thread_bombs(dock: DockerBackend) -> None:
    procs = attack(
        dock,
        """
        import os, time
        def attack():
            for _ in range(1000):
                if os.fork() == 0:
                    time.sleep(60)
                    os._exit(0)
        """,
        pids=8,
        wall=10,
    )
    assert (procs.status, procs.limit) == ("limit", "pids"), procs
    threads = attack(
        dock,
        """
        import threading, time
        def attack():
            for _ in range(1000):
                threading.Thread(target=time.sleep, args=(60,)).start()
        """,
        pids=8,
        wall=10,
    )
    assert (threads.status, threads.limit) == ("limit", "pids"), threads


def _listener() -> socket.socket:
    """A listener on 127.0.0.1 at a port the kernel picks (port 0): no other
    process can hold it. The attack gets the real number."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    return listener


def test_no_network_beyond_the_containers_own_loopback(dock: DockerBackend) -> None:
    # Only loopback is ever a target (nothing in this project sends traffic
    # anywhere else): the container's own 127.0.0.1 must not reach the host's
    # listener on the same port, and the container must have no interface but
    # lo and no route at all, so no other address is reachable either.
    listener = _listener()
    host_port = listener.getsockname()[1]
    listener.settimeout(0.2)
    connections: list[object] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, peer = listener.accept()
                connections.append(peer)
                conn.close()
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        r = attack(
            dock,
            f"""
            import socket
            def attack():
                out = {{}}
                s = socket.socket()
                s.settimeout(2)
                try:
                    s.connect(("127.0.0.1", {host_port}))
                    out["loopback"] = "connected"
                except OSError as exc:
                    out["loopback"] = exc.errno
                finally:
                    s.close()
                out["ifaces"] = [l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:]]
                out["routes"] = [l.split()[:3] for l in open("/proc/net/route").readlines()[1:]]
                return out
            """,
            wall=15,
        )
    finally:
        stop.set()
        thread.join()
        listener.close()
    assert r.ok, r
    assert r.result["loopback"] != "connected", r.result
    assert r.result["ifaces"] == ["lo"]
    assert r.result["routes"] == []
    assert connections == []


def test_rlimits_cannot_be_raised(dock: DockerBackend) -> None:
    r = attack(
        dock,
        """
        import resource
        def attack():
            out = {}
            for name in ("RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_NPROC"):
                which = getattr(resource, name)
                soft, hard = resource.getrlimit(which)
                try:
                    resource.setrlimit(which, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
                    out[name] = "raised"
                except (ValueError, OSError) as exc:
                    out[name] = type(exc).__name__
            return out
        """,
    )
    assert r.ok, r
    # NPROC may already be unlimited; the ones Docker set must stay put.
    assert r.result["RLIMIT_CPU"] != "raised"
    assert r.result["RLIMIT_FSIZE"] != "raised"
    assert r.result["RLIMIT_NOFILE"] != "raised"


def test_setsid_daemon_does_not_survive_the_call(dock: DockerBackend) -> None:
    r = attack(
        dock,
        """
        import os, time
        def attack():
            cgroup = open("/proc/self/cgroup").read()
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    time.sleep(300)
                os._exit(0)
            time.sleep(0.2)
            return cgroup
        """,
    )
    assert r.ok, r
    container_ids = {part for line in r.result.splitlines() for part in line.split("/") if len(part) == 64}
    assert len(container_ids) == 1
    (cid,) = container_ids
    client = dock._client
    deadline = time.monotonic() + 30
    alive = True
    while alive and time.monotonic() < deadline:
        alive = any(c["Id"] == cid for c in client.api.containers(all=True, filters={"label": f"{LABEL}=1"}))
        if alive:
            time.sleep(0.2)
    assert not alive, "the call's container still exists"
    # And no process on this host still belongs to that container.
    leftovers = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{pid}/cgroup", encoding="ascii", errors="replace") as fh:
                if cid in fh.read():
                    leftovers.append(pid)
        except OSError:
            continue
    assert leftovers == []


def test_sitecustomize_cannot_poison_later_calls(dock: DockerBackend) -> None:
    r = attack(
        dock,
        """
        import os, sys, sysconfig
        def attack():
            written = []
            payload = "import builtins\\nbuiltins.POISONED = True\\n"
            targets = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["stdlib"], "/usr/lib/python3/dist-packages",
                       "/opt/toolcrib", "/opt/toolcrib/lib", "/opt/toolcrib/tcbox"}
            for d in sorted(targets):
                for name in ("sitecustomize.py", "usercustomize.py", "execute.py", "json.py"):
                    try:
                        with open(os.path.join(d, name), "w") as fh:
                            fh.write(payload)
                        written.append(os.path.join(d, name))
                    except OSError:
                        pass
            return written
        """,
    )
    assert r.ok, r
    assert r.result == []
    later = attack(
        dock,
        """
        import builtins, sys
        def attack():
            return {"poisoned": hasattr(builtins, "POISONED"), "site": "sitecustomize" in sys.modules}
        """,
    )
    assert later.ok, later
    assert later.result == {"poisoned": False, "site": False}


def test_harness_killed_by_tool_still_ends_cleanly(dock: DockerBackend) -> None:
    # The tool kills the harness parent: the call fails, nothing hangs, the
    # container ends and the next call is clean.
    client = dock._client

    def ours() -> set[str]:
        return {
            c["Id"]
            for c in client.api.containers(all=True, filters={"label": [f"{LABEL}=1", f"{LABEL_PID}={os.getpid()}"]})
        }

    assert dock.warm()
    before = ours()
    r = attack(
        dock,
        "import os, signal\ndef attack():\n    os.kill(os.getppid(), signal.SIGKILL)\n    import time; time.sleep(30)\n",
        wall=10,
    )
    assert r.status in ("error", "limit"), r
    nxt = attack(dock, "def attack():\n    return 'clean'\n")
    assert nxt.ok and nxt.result == "clean"
    # Every container those two calls used is gone; only warm ones remain.
    deadline = time.monotonic() + 30
    while True:
        warm = {c.id for pool in dock._pool.idle().values() for c in pool}
        extra = ours() - before - warm
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert extra == set()
