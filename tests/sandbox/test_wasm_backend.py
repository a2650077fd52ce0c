"""The wasm backend (sandbox/wasm.py) beyond the shared contract suite
(tests/sandbox/test_contract.py runs that against "wasm" too): a fresh
instance per call, nothing granted, the limits as wasmtime enforces them
with the host unharmed, the guest pinned, and the packages it can run."""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from toolcrib.sandbox import Job, Limits, get_backend, wasm, wasm_snapshot
from toolcrib.sandbox.contract import Cancel, Lock, LockedPackage, Result
from toolcrib.sandbox.inside import uids
from toolcrib.sandbox.wasm_guest import BUILT_IN, GUEST

# Installed and compiled, or skipped (failed under CI): tests/conftest.py.
pytestmark = pytest.mark.usefixtures("wasm_ready")


QUICK = Limits(cpu=2, wall=10, memory=128, output=64)


def call(source: str, *, policy: str = "plain", limits: Limits = QUICK, entrypoint: str = "f", **fields):
    return get_backend("wasm").run(Job(source=source, entrypoint=entrypoint, policy=policy, limits=limits, **fields))


def still_answers() -> None:
    """The host is unharmed: the same backend answers the next call."""
    r = call("def f(a):\n    return a + 1\n", args={"a": 41}, policy="restricted")
    assert (r.status, r.result) == ("ok", 42), r


# -- a fresh interpreter for every call ------------------------------------------------

SENDER = """
import builtins, textwrap, sys, os, random
def f():
    builtins.planted = "from the sender"
    textwrap.dedent = lambda text: "poisoned"
    sys.modules["planted_module"] = sys
    sys.path.insert(0, "/nowhere")
    random.seed(1234)
    CACHE.append("sender")
    try:
        open("/tmp/planted", "w").write("x")
    except OSError:
        pass
    return "sent"
CACHE = []
"""

RECEIVER = """
import builtins, textwrap, sys, os, random
def f():
    return {
        "builtin": hasattr(builtins, "planted"),
        "module_global": textwrap.dedent("  a"),
        "module": "planted_module" in sys.modules,
        "path": "/nowhere" in sys.path,
        "file": os.path.exists("/tmp/planted"),
        "random": random.random() == __import__("random").Random(1234).random(),
        "cache": CACHE,
    }
CACHE = []
"""


def _sender_then_receiver(run: Callable[[str], Result]) -> None:
    """The receiver, run after the sender, finds none of its state."""
    sent = run(SENDER)
    assert (sent.status, sent.result) == ("ok", "sent"), sent
    received = run(RECEIVER)
    assert received.status == "ok", received
    assert received.result == {
        "builtin": False,
        "module_global": "a",
        "module": False,
        "path": False,
        "file": False,
        "random": False,
        "cache": [],
    }


def test_a_sender_call_and_a_receiver_call_find_no_state_of_each_other() -> None:
    _sender_then_receiver(call)


# -- nothing granted -----------------------------------------------------------------


def test_the_guest_sees_no_host_files_no_environment_and_cannot_write() -> None:
    r = call(
        "import os\n"
        "def f():\n"
        "    out = {'env': dict(os.environ)}\n"
        "    for path in ('/', '/etc', '/proc/self', '/root', os.getcwd() if hasattr(os, 'getcwd') else '/'):\n"
        "        try:\n"
        "            out[path] = os.listdir(path)\n"
        "        except OSError as exc:\n"
        "            out[path] = type(exc).__name__\n"
        "    try:\n"
        "        open('/opt/toolcrib/tcbox/planted.py', 'w')\n"
        "        out['write'] = 'written'\n"
        "    except OSError as exc:\n"
        "        out['write'] = type(exc).__name__\n"
        "    return out\n"
    )
    assert r.status == "ok", r
    assert r.result["env"] == {"PYTHONDONTWRITEBYTECODE": "1"}
    for path in ("/", "/etc", "/proc/self", "/root"):
        assert r.result[path] in ("FileNotFoundError", "PermissionError"), r.result
    assert r.result["write"] in ("PermissionError", "OSError", "FileNotFoundError"), r.result


def test_no_socket_process_or_thread_exists_in_the_guest() -> None:
    r = call(
        "def f():\n"
        "    out = []\n"
        '    for attempt in (\'__import__("socket").create_connection(("127.0.0.1", 9))\',\n'
        '                    \'__import__("subprocess").run(["id"])\',\n'
        "                    '__import__(\"os\").fork()',\n"
        "                    '__import__(\"threading\").Thread(target=print).start()'):\n"
        "        try:\n"
        "            eval(attempt)\n"
        "            out.append('ran')\n"
        "        except BaseException as exc:\n"
        "            out.append(type(exc).__name__)\n"
        "    return out\n"
    )
    assert r.status == "ok", r
    assert "ran" not in r.result, r.result


# -- limits end as `limit`, the host unharmed -------------------------------------------


@pytest.mark.parametrize("policy", ["restricted", "plain"])
def test_a_loop_inside_c_ends_at_the_cpu_limit(policy: str) -> None:
    r = call("def f():\n    return sum(range(10 ** 12))\n", policy=policy, limits=Limits(cpu=1, wall=30))
    assert (r.status, r.limit) == ("limit", "cpu"), r
    still_answers()


@pytest.mark.parametrize("policy", ["restricted", "plain"])
def test_a_memory_bomb_ends_at_the_memory_limit(policy: str) -> None:
    source = "def f():\n    chunks = []\n    while True:\n        chunks.append('y' * (1 << 20))\n"
    r = call(source, policy=policy, limits=Limits(cpu=10, wall=20, memory=64))
    assert (r.status, r.limit) == ("limit", "memory"), r
    still_answers()


@pytest.mark.parametrize("jail", [False, True])
def test_a_call_under_a_small_memory_limit_reads_its_job_and_runs(jail: bool) -> None:
    # The guest reads its job in small reads (wasm_main._read_bounded). One
    # read of the whole 32 MiB bound made the guest's CPython allocate that
    # buffer, counted against the tool's memory: every call with a limit of
    # 32 MiB or less ended "bad job: MemoryError" before the tool ran.
    if jail and not wasm.jail_available():
        pytest.skip("the host jail needs Linux with Landlock")
    backend = wasm.WasmBackend(jail=jail)
    try:
        for policy in ("restricted", "plain"):
            limits = Limits(cpu=2, wall=10, memory=16)
            job = Job(
                source="def f(a):\n    return a * 2\n", entrypoint="f", args={"a": 21}, policy=policy, limits=limits
            )
            r = backend.run(job)
            assert (r.status, r.result) == ("ok", 42), r
    finally:
        backend.close()


class _CountedReads(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.asked: list[int] = []

    def read(self, size: int | None = -1) -> bytes:
        self.asked.append(-1 if size is None else size)
        return super().read(size)


def test_the_guest_reads_its_job_in_bounded_reads_up_to_one_byte_past_the_cap() -> None:
    # wasmtime's WASI copies each read through a zeroed host buffer as large
    # as the read asked for: one read of the 32 MiB bound zeroed 32 MiB of
    # the host per call (8,400 page faults in process).
    from toolcrib.sandbox.inside import wasm_main

    small = _CountedReads(b'{"a": 1}')
    assert wasm_main._read_bounded(small) == b'{"a": 1}'
    assert max(small.asked) <= wasm_main.READ_CHUNK and min(small.asked) > 0
    big = _CountedReads(b"x" * (wasm_main.MAX_JOB_BYTES + 5 * wasm_main.READ_CHUNK))
    assert len(wasm_main._read_bounded(big)) == wasm_main.MAX_JOB_BYTES + 1
    assert max(big.asked) <= wasm_main.READ_CHUNK and min(big.asked) > 0


def test_an_output_flood_on_the_real_stdout_ends_at_the_output_limit() -> None:
    # Plain Python can write to the guest's stdout itself, past the
    # harness's capped buffer: the host's stream cap ends it.
    r = call("import os\ndef f():\n    while True:\n        os.write(1, b'y' * 65536)\n", limits=QUICK)
    assert (r.status, r.limit) == ("limit", "output"), r
    still_answers()


def test_a_print_flood_ends_at_the_output_limit() -> None:
    r = call("def f():\n    while True:\n        print('y' * 1000)\n", policy="restricted")
    assert (r.status, r.limit) == ("limit", "output"), r


def test_deep_recursion_in_c_traps_the_guest_and_ends_as_a_limit() -> None:
    # A C recursion (repr of a list nested 100 000 deep) exhausts the wasm
    # stack: wasmtime traps the guest; the host reports the limit.
    r = call("def f():\n    x = []\n    for _ in range(100000):\n        x = [x]\n    return len(repr(x))\n")
    assert (r.status, r.limit) == ("limit", "memory"), r
    still_answers()


def test_deep_recursion_in_python_is_the_tools_recursion_error() -> None:
    r = call("def f(n=0):\n    return f(n + 1)\n", policy="restricted")
    assert (r.status, r.error and r.error.type) == ("error", "RecursionError"), r


def test_a_sleep_ends_at_the_wall_limit() -> None:
    # WASI's poll_oneoff is the host's own: a sleeping guest still meets the wall clock.
    started = time.monotonic()
    r = call("import time\ndef f():\n    time.sleep(60)\n", limits=Limits(cpu=5, wall=1))
    assert (r.status, r.limit) == ("limit", "wall"), r
    assert time.monotonic() - started < 30  # a hang guard, not a timing claim


def test_a_short_sleep_returns() -> None:
    r = call("import time\ndef f():\n    time.sleep(0.05)\n    return 'slept'\n")
    assert (r.status, r.result) == ("ok", "slept"), r


def test_a_cancelled_call_ends_unavailable() -> None:
    cancel = Cancel()
    timer = threading.Timer(0.5, cancel.cancel)
    timer.start()
    try:
        r = get_backend("wasm").run(
            Job(source="def f():\n    while True:\n        pass\n", entrypoint="f", limits=Limits(cpu=30, wall=30)),
            cancel,
        )
    finally:
        timer.cancel()
    assert r.status == "unavailable" and r.error is not None and "cancelled" in r.error.message, r
    still_answers()


def test_calls_from_several_threads_run_at_once() -> None:
    results: list = [None] * 4

    def one(i: int) -> None:
        results[i] = call("def f(i):\n    return i * i\n", args={"i": i}, policy="restricted")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [(r.status, r.result) for r in results] == [("ok", i * i) for i in range(4)]


def test_the_result_says_which_guest_ran_it() -> None:
    r = call("def f():\n    return 1\n")
    assert r.environment["guest_sha256"] == GUEST.module_sha256
    assert "wasm" in r.layers


# -- the guest is pinned ---------------------------------------------------------------


def test_a_guest_file_that_does_not_match_its_pin_is_refused(tmp_path: Path) -> None:
    forged = tmp_path / "python-snapshot.wasm"
    forged.write_bytes(b"\0asm not the pinned guest")
    assert not wasm._verified(tmp_path, forged, GUEST.module_sha256)
    # ...and the stamp of a good check does not outlive a change of the file.
    good = tmp_path / "good"
    good.write_bytes(b"data")
    import hashlib

    digest = hashlib.sha256(b"data").hexdigest()
    assert wasm._verified(tmp_path, good, digest)
    good.write_bytes(b"dat2")
    assert not wasm._verified(tmp_path, good, digest)


def test_install_is_idempotent() -> None:
    again = wasm.install()
    assert again["compiled"] is False
    assert again["guest_sha256"] == GUEST.module_sha256


# -- packages ----------------------------------------------------------------------------


def _lock(*packages: tuple[str, str, str]) -> Lock:
    return Lock(
        requirements=[name for name, _, _ in packages],
        packages=[LockedPackage(name=n, version=v, filename=f, sha256="0" * 64) for n, v, f in packages],
    )


@pytest.mark.parametrize("policy", ["restricted", "plain"])
def test_codecs_and_strptime_load_at_call_time(policy: str) -> None:
    # The guest no longer runs execute.warm() (the zygote's preloading for
    # children that cannot read files): a codec or _strptime first needed by
    # the call is imported then, from the read-only standard library, under
    # either policy.
    source = (
        "import datetime\n"
        "def f():\n"
        "    sizes = [len('h\u00e9llo'.encode(e)) for e in ('utf-16', 'utf-32', 'cp1252', 'idna', 'latin-1')]\n"
        "    return sizes + [str(datetime.datetime.strptime('2020-01-02', '%Y-%m-%d').date())]\n"
    )
    r = call(source, policy=policy)
    assert (r.status, r.result) == ("ok", [12, 24, 5, 12, 5, "2020-01-02"]), r


def test_a_pure_python_lock_can_run() -> None:
    assert wasm.lock_problem(_lock(("humanize", "4.9.0", "humanize-4.9.0-py3-none-any.whl"))) is None


def test_a_built_in_compiled_package_at_its_version_can_run() -> None:
    numpy = BUILT_IN["numpy"]
    lock = _lock(("numpy", numpy, f"numpy-{numpy}-cp311-cp311-manylinux_2_17_x86_64.whl"))
    assert wasm.lock_problem(lock) is None


def test_a_compiled_package_the_guest_lacks_is_refused_naming_the_backends_that_can() -> None:
    lock = _lock(("ujson", "5.10.0", "ujson-5.10.0-cp311-cp311-manylinux_2_17_x86_64.whl"))
    problem = wasm.lock_problem(lock)
    assert problem is not None and "restricted or docker backend" in problem and "\n" not in problem
    other_numpy = _lock(("numpy", "1.26.4", "numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.whl"))
    problem = wasm.lock_problem(other_numpy)
    assert problem is not None and BUILT_IN["numpy"] in problem


def test_a_built_in_package_runs_in_the_guest() -> None:
    r = call(
        "import sympy\ndef f():\n    return str(sympy.factor(sympy.Symbol('x') ** 2 - 1))\n", limits=Limits(wall=30)
    )
    assert (r.status, r.result) == ("ok", "(x - 1)*(x + 1)"), r


# -- the second wall: the wasmtime host in the jail (Linux) ------------------------------


def test_the_wasmtime_host_runs_in_its_own_jail_on_linux() -> None:
    backend = get_backend("wasm")
    if not backend.jailed:
        pytest.skip("the host jail needs Linux with Landlock")
    seen: dict[str, str] = {}

    def watch() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not seen:
            for pid in list(backend._jailed_hosts().running):
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                    if "Seccomp:\t2" not in status:
                        continue  # not in the jail yet
                    seen["status"] = status
                    seen["net"] = os.readlink(f"/proc/{pid}/ns/net")
                    # Every thread of the host (wasmtime's own included) is under the filter.
                    seen["threads"] = "\n".join(
                        (task / "status").read_text() for task in Path(f"/proc/{pid}/task").iterdir()
                    )
                except OSError:
                    continue
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    r = call("def f():\n    while True:\n        pass\n", limits=Limits(cpu=3, wall=3))
    watcher.join()
    assert (r.status, r.limit) in {("limit", "cpu"), ("limit", "wall")}, r
    assert seen, "no jailed host was seen running the call"
    assert "NoNewPrivs:\t1" in seen["status"]
    threads = seen["threads"].count("Name:")
    assert seen["threads"].count("Seccomp:\t2") == threads and seen["threads"].count("NoNewPrivs:\t1") == threads
    assert seen["net"] != os.readlink("/proc/self/ns/net")
    assert {"netns", "no_new_privs", "host_landlock", "host_seccomp"} <= set(r.layers), r.layers
    if os.geteuid() == 0:
        # Root's calls run the host as a call uid of its own (uids.py's
        # blocks, as the restricted backend's children), every thread with
        # no capability and no group.
        ids = [line.split()[1:] for line in seen["threads"].splitlines() if line.startswith(("Uid:", "Gid:"))]
        assert len(ids) == 2 * threads and all(int(i) >= uids.BASE for row in ids for i in row), ids
        assert seen["threads"].count("CapEff:\t0000000000000000") == threads
        groups = [line.split()[1:] for line in seen["threads"].splitlines() if line.startswith("Groups:")]
        assert groups == [[]] * threads, groups
        assert "host_uid" in r.layers, r.layers


def test_two_jailed_calls_in_flight_run_as_two_call_uids_as_root() -> None:
    backend = get_backend("wasm")
    if not backend.jailed or os.geteuid() != 0:
        pytest.skip("the call uids are root's (the host jail on Linux)")
    seen: dict[int, int] = {}

    def watch() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(seen) < 2:
            for pid in list(backend._jailed_hosts().running):
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                if "Seccomp:\t2" in status:
                    seen[pid] = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    loop = "def f():\n    while True:\n        pass\n"
    calls = [threading.Thread(target=call, args=(loop,), kwargs={"limits": Limits(cpu=3, wall=3)}) for _ in range(2)]
    for thread in calls:
        thread.start()
    for thread in calls:
        thread.join()
    watcher.join()
    assert len(seen) == 2 and len(set(seen.values())) == 2, seen
    assert all(uid >= uids.BASE for uid in seen.values()), seen


def test_the_in_process_host_keeps_the_same_contract() -> None:
    # Where the jail cannot be built (macOS, Windows), the host runs in the
    # caller's process: the same outcomes.
    backend = wasm.WasmBackend(jail=False)
    try:
        cases = [
            ("def f():\n    return [1, 'a']\n", "restricted", QUICK, ("ok", None)),
            ("def f():\n    return sum(range(10 ** 12))\n", "plain", Limits(cpu=1, wall=20), ("limit", "cpu")),
            ("def f():\n    while True:\n        print('y' * 1000)\n", "restricted", QUICK, ("limit", "output")),
            (
                "def f():\n    c = []\n    while True:\n        c.append('y' * (1 << 20))\n",
                "plain",
                Limits(memory=64),
                ("limit", "memory"),
            ),
        ]
        for source, policy, limits, expected in cases:
            r = backend.run(Job(source=source, entrypoint="f", policy=policy, limits=limits))
            assert (r.status, r.limit) == expected, r
            assert "host_seccomp" not in r.layers
    finally:
        backend.close()


def _pure_wheel(dest: Path, name: str, version: str, files: dict[str, bytes]) -> Path:
    """A pure-Python wheel with a correct RECORD (what `packages.materialize` checks)."""
    import base64
    import csv
    import hashlib
    import io
    import zipfile

    def digest(data: bytes) -> str:
        return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

    info = f"{name}-{version}.dist-info"
    members = dict(files)
    members[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n".encode()
    members[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: toolcrib-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for path, data in members.items():
        writer.writerow([path, digest(data), str(len(data))])
    writer.writerow([f"{info}/RECORD", "", ""])
    members[f"{info}/RECORD"] = record.getvalue().encode()
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as whl:
        for path, data in members.items():
            whl.writestr(path, data)
    return wheel


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_a_pure_python_lock_runs_from_its_own_read_only_files(cache: Path, umask: int) -> None:
    # Under umask 077 too: as root, the jailed host's call uid reads a site
    # built owner-only (made readable by all before its first call).
    import hashlib

    from toolcrib.sandbox.packages import wheel_cache

    init = b"def greet(name):\n    return 'hello ' + name\n"
    wheel = _pure_wheel(wheel_cache(), "tcwasmdemo", "1.0", {"tcwasmdemo/__init__.py": init})
    lock = Lock(
        requirements=["tcwasmdemo==1.0"],
        packages=[
            LockedPackage(
                name="tcwasmdemo",
                version="1.0",
                filename=wheel.name,
                sha256=hashlib.sha256(wheel.read_bytes()).hexdigest(),
            )
        ],
        imports=["tcwasmdemo"],
    )
    source = (
        "import sys\n"
        "PRELOADED = 'tcwasmdemo' in sys.modules\n"
        "import tcwasmdemo\n"
        "def f():\n"
        "    try:\n"
        "        open(tcwasmdemo.__file__, 'a')\n"
        "        wrote = True\n"
        "    except OSError:\n"
        "        wrote = False\n"
        "    return [tcwasmdemo.greet('wasm'), tcwasmdemo.__file__, wrote, PRELOADED]\n"
    )
    before = os.umask(umask)
    try:
        r = call(source, lock=lock)
    finally:
        os.umask(before)
    assert r.status == "ok", r
    # Imported before the call (the lock's imports, while its instance warmed up).
    assert r.result == ["hello wasm", "/opt/toolcrib/site/tcwasmdemo/__init__.py", False, True]


def test_a_lock_the_guest_cannot_run_is_refused_at_the_call_naming_the_backends_that_can() -> None:
    lock = _lock(("ujson", "5.10.0", "ujson-5.10.0-cp311-cp311-manylinux_2_17_x86_64.whl"))
    r = call("import ujson\ndef f():\n    return 1\n", lock=lock)
    assert r.status == "unavailable" and r.error is not None, r
    assert "restricted or docker backend" in r.error.message and "\n" not in r.error.message


def test_the_wasm_backend_needs_nothing_linux_only(tmp_path: Path) -> None:
    # As on macOS or Windows: the modules only Linux (or Unix) has are
    # missing; the backend still imports, builds its host in process and runs
    # (jail_available() answers False off Linux before importing anything).
    import subprocess
    import sys

    code = (
        "import sys\n"
        "for name in ('resource', 'fcntl', 'termios', 'pwd', 'grp'):\n"
        "    sys.modules[name] = None\n"
        "from toolcrib.sandbox import wasm\n"
        "from toolcrib.sandbox.contract import Job\n"
        "real, sys.platform = sys.platform, 'darwin'\n"
        "assert wasm.jail_available() is False\n"
        "sys.platform = real\n"
        "backend = wasm.WasmBackend(jail=False)\n"
        "result = backend.run(Job(source='def f():\\n    return 6 * 7\\n', entrypoint='f'))\n"
        "backend.close()\n"
        "print(backend.jailed, result.status, result.result)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "ok", "42"], done


@pytest.mark.skipif(not wasm.jail_available(), reason="the jailed host needs Linux with Landlock")
def test_the_jailed_host_runs_where_the_harness_was_never_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    # A cache holding the compiled guest and its standard library but no
    # harness (a new toolcrib version's harness, before any install): the
    # backend has the harness compiled before it starts the fork server,
    # which may run no instance before it forks (an instance starts wasmtime's
    # WASI threads, which a forked child lacks: every call hung, "killed").
    import shutil
    import tempfile

    real = wasm.cache_dir()
    own = Path(tempfile.mkdtemp(dir=real.parent, prefix="test-no-harness-"))  # same filesystem: hard links
    try:
        for entry in real.iterdir():
            if entry.name.endswith(".cwasm"):
                os.link(entry, own / entry.name)
            elif entry.name.startswith("stdlib-"):
                (own / entry.name).mkdir()
                for item in entry.iterdir():
                    os.link(item, own / entry.name / item.name)
            elif entry.name == "verified.json":
                shutil.copy2(entry, own / entry.name)
        monkeypatch.setenv(wasm.CACHE_ENV, str(own))
        backend = wasm.WasmBackend(jail=True)
        try:
            results = [
                backend.run(Job(source="def f(a):\n    return a * 2\n", entrypoint="f", args={"a": i}))
                for i in range(3)
            ]
        finally:
            backend.close()
        assert [(r.status, r.result) for r in results] == [("ok", 0), ("ok", 2), ("ok", 4)], results
        # (harness-image-* files: the harness image, linked from the real cache; not used here)
        assert [(p / ".compiled").exists() for p in own.glob("harness-*") if p.is_dir()] == [True]
    finally:
        shutil.rmtree(own, ignore_errors=True)
    # The refill started as the last call ended starts no fork server once
    # the backend is closed (a server would make the cache folder again).
    time.sleep(1.0)
    assert not own.exists()


# -- the harness image (sandbox/wasm_snapshot.py) ---------------------------------------


def _image_or_skip() -> None:
    """The harness image built here (tests/run.sh installs wasmtime's Wizer
    and builds it): skipped without it, except in CI, where it fails."""
    facts = wasm.status()
    if facts.get("image") == wasm_snapshot.IMAGE_NAME:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but the harness image is not in use: {facts.get('image_note')}")
    pytest.skip(f"the harness image is not in use: {facts.get('image_note')}")


@pytest.mark.parametrize("jail", [False, True])
def test_calls_run_on_the_harness_image_where_it_is_built(jail: bool) -> None:
    _image_or_skip()
    if jail and not wasm.jail_available():
        pytest.skip("the host jail needs Linux with Landlock")
    backend = wasm.WasmBackend(jail=jail)
    try:
        source = "import sys\ndef f():\n    return getattr(sys.modules['tcbox'], '_image', None)\n"
        r = backend.run(Job(source=source, entrypoint="f", policy="plain", limits=QUICK))
        assert (r.status, r.result) == ("ok", "harness"), r
        # The sender and receiver find nothing of each other on the image too.
        _sender_then_receiver(lambda src: backend.run(Job(source=src, entrypoint="f", policy="plain", limits=QUICK)))
    finally:
        backend.close()


def test_the_guest_image_stays_available_beside_the_harness_image(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(wasm.IMAGE_ENV, "guest")
    assert wasm.status()["image"] == wasm.GUEST_IMAGE_NAME
    backend = wasm.WasmBackend(jail=False)
    try:
        source = "import sys\ndef f():\n    return getattr(sys.modules['tcbox'], '_image', None)\n"
        r = backend.run(Job(source=source, entrypoint="f", policy="plain", limits=QUICK))
        assert (r.status, r.result) == ("ok", None), r
    finally:
        backend.close()


@pytest.mark.parametrize("policy", ["restricted", "plain"])
def test_two_calls_draw_different_random_numbers(policy: str) -> None:
    # The harness image is made once for every instance, with `random`
    # imported (the harness's warm-up): each call reseeds it.
    source = "import random\ndef f():\n    return [random.random() for _ in range(3)]\n"
    first, second = call(source, policy=policy), call(source, policy=policy)
    assert first.status == second.status == "ok", (first, second)
    assert first.result != second.result


def test_the_init_hook_replaces_one_line_at_the_same_length() -> None:
    module = b"\0asm" + b"x" * 10 + wasm_snapshot.PREIMPORT + b"\0" + b"y" * 10
    out = wasm_snapshot.patched(module)
    assert len(out) == len(module) and out.count(wasm_snapshot.HOOK.rstrip()) == 1
    assert wasm_snapshot.PREIMPORT not in out
    with pytest.raises(ValueError):
        wasm_snapshot.patched(b"\0asm without the line")
    with pytest.raises(ValueError):
        wasm_snapshot.patched(module + module)


def _fake_tool(path: Path, version: str, exit_code: int = 1) -> Path:
    path.write_text(f'#!/bin/sh\nif [ "$1" = --version ]; then echo "{version}"; exit 0; fi\nexit {exit_code}\n')
    path.chmod(0o700)
    return path


def test_npm_standalone_wizer_is_named_as_unable_to_read_this_guest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(wasm_snapshot.WIZER_ENV, str(_fake_tool(tmp_path / "wizer", "wizer 10.0.0")))
    wizer, why = wasm_snapshot.find_wizer()
    assert wizer is None and "standalone Wizer 10.0.0" in why and "exceptions" in why


def test_without_a_wizer_everything_works_and_status_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(wasm_snapshot.WIZER_ENV, str(tmp_path / "nowhere"))
    image, why = wasm._image_choice(tmp_path)  # a cache where no image was built
    assert image is None and "no Wizer found" in why, why


def test_a_wizer_that_fails_leaves_the_backend_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = wasm.status()
    monkeypatch.setenv(wasm_snapshot.WIZER_ENV, str(_fake_tool(tmp_path / "wasmtime", "wasmtime 0.0.1-broken")))
    done = wasm.install()
    assert done["harness_image"]["built"] is False and "failed" in done["harness_image"]["reason"], done
    assert wasm.status().get("image") == before.get("image")
    still_answers()


def test_a_rebuilt_image_replaces_the_one_its_harness_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `build` end to end with a stand-in Wizer (it writes its -o file) and
    # stand-in compile and check: the pointer names the new image, and the
    # image it named before is removed (unless another pointer names it).
    tool = tmp_path / "wasmtime"
    tool.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = --version ]; then echo "wasmtime $VERSION"; exit 0; fi\n'
        'while [ "$1" != -o ]; do shift; done\necho image > "$2"\n'
    )
    tool.chmod(0o700)
    monkeypatch.setenv(wasm_snapshot.WIZER_ENV, str(tool))
    cache = tmp_path / "cache"
    (cache / "stdlib").mkdir(parents=True)
    (cache / "harness").mkdir()
    plain = tmp_path / "python.wasm"
    plain.write_bytes(b"\0asm" + wasm_snapshot.PREIMPORT + b"\0")

    def build(harness_digest: str) -> dict:
        return wasm_snapshot.build(
            cache,
            plain_module=plain,
            plain_sha256="0" * 64,
            stdlib_dir=cache / "stdlib",
            harness_dir=cache / "harness",
            harness_digest=harness_digest,
            wasmtime_version="1.0",
            compile_module=lambda source, target: target.write_bytes(source.read_bytes()),
            check_image=lambda path: None,
            progress=lambda text: None,
        )

    monkeypatch.setenv("VERSION", "1")
    first, other = build("a" * 64), build("b" * 64)
    assert first["built"] is True and other["built"] is True
    monkeypatch.setenv("VERSION", "2")  # a new Wizer: a new image for harness "a"
    second = build("a" * 64)
    assert second["built"] is True and second["path"] != first["path"]
    assert wasm_snapshot.image_for(cache, "a" * 64, "1.0")[0] == Path(second["path"])
    assert not Path(first["path"]).exists()  # replaced: 290 MB less
    assert wasm_snapshot.image_for(cache, "b" * 64, "1.0")[0] == Path(other["path"])  # another harness's: kept
    assert build("a" * 64)["built"] is False  # once per inputs
