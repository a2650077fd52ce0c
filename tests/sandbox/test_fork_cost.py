"""What an isolated call costs per fork, cut without dropping a layer
(issue 19, bench/profile_call.py):

- the zygote runs the standard library's after-fork hooks itself before it
  forks (`zygote._warm_fork_hooks`), so children inherit them warmed; each
  child still runs them, and so still reseeds `random`;
- the standard library's zygote starts with every symbol bound
  (`restricted.ZYGOTE_ENV`), and no tool sees the variable that asked for it;
- the children's seccomp filter is laid out as a binary tree of system call
  numbers (cheaper for the kernel to attach, once per call), deciding every
  call as the chain did (`tests/attacks` keep checking what it refuses).
"""

from __future__ import annotations

import ctypes
import subprocess
import sys
import textwrap

import pytest
from toolcrib.sandbox import Job, Limits, restricted
from toolcrib.sandbox.inside import jail
from toolcrib.sandbox.restricted import RestrictedBackend

QUICK = Limits(cpu=2, wall=10, memory=128, output=64)


def _plain(source: str) -> Job:
    return Job(source=textwrap.dedent(source), entrypoint="f", policy="plain", limits=QUICK)


def _in_fresh_python(code: str) -> str:
    """Run ``code`` in a new interpreter (the hooks reset this process's
    threading state, which a test process with threads must not do)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_zygote_runs_each_after_fork_hook_as_often_as_it_warms_a_call() -> None:
    out = _in_fresh_python(
        """
        import random, threading
        from toolcrib.sandbox.inside import zygote
        calls = {"threading": 0, "random": 0}
        real_after_fork, real_seed = threading._after_fork, random.seed
        def after_fork():
            calls["threading"] += 1
            real_after_fork()
        def seed(*args):
            calls["random"] += 1
            real_seed(*args)
        threading._after_fork, random.seed = after_fork, seed
        ran = zygote._warm_fork_hooks()
        print(ran, calls["threading"], calls["random"], zygote._SPECIALISING_RUNS)
        """
    )
    ran, threading_runs, random_runs, wanted = out.split()
    assert ran == "True"
    assert int(threading_runs) == int(random_runs) == int(wanted) > 0


def test_the_hooks_are_left_alone_while_another_thread_lives() -> None:
    """`threading._after_fork` marks every other thread stopped: only a
    process with one thread (a child just forked, the zygote) may run it."""
    out = _in_fresh_python(
        """
        import threading
        from toolcrib.sandbox.inside import zygote
        calls = []
        threading._after_fork = lambda: calls.append(1)
        stop = threading.Event()
        other = threading.Thread(target=stop.wait)
        other.start()
        try:
            print(zygote._warm_fork_hooks(), len(calls), other.is_alive())
        finally:
            stop.set()
            other.join()
        """
    )
    assert out == "False 0 True"


@pytest.fixture(scope="module")
def plain_backend():
    backend = RestrictedBackend(allow_plain=True)
    try:
        yield backend
    finally:
        backend.close()


def test_every_child_still_reseeds_random(plain_backend: RestrictedBackend) -> None:
    job = _plain(
        """
        import random
        def f():
            return [random.getrandbits(64) for _ in range(4)]
        """
    )
    draws = [plain_backend.run(job) for _ in range(4)]
    assert all(r.status == "ok" for r in draws), draws
    assert len({tuple(r.result) for r in draws}) == 4, [r.result for r in draws]


def test_the_zygote_binds_its_symbols_at_start_and_no_tool_sees_how(plain_backend: RestrictedBackend) -> None:
    result = plain_backend.run(
        _plain(
            """
            import os
            def f():
                return sorted(os.environ)
            """
        )
    )
    assert result.status == "ok", result
    assert "LD_BIND_NOW" not in result.result
    zygote_process = plain_backend._zygote
    assert zygote_process is not None
    with open(f"/proc/{zygote_process.proc.pid}/environ", "rb") as fh:
        started_with = fh.read().split(b"\0")
    assert b"LD_BIND_NOW=1" in started_with
    assert restricted.ZYGOTE_ENV == {"LD_BIND_NOW": "1"}


def test_the_childrens_filter_is_a_binary_tree_of_system_call_numbers() -> None:
    lib = ctypes.CDLL(jail._LIBSECCOMP)
    lib.seccomp_attr_get.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_uint32)]
    for built in (jail._Seccomp(), jail._ZygoteSeccomp()):
        value = ctypes.c_uint32(0)
        assert lib.seccomp_attr_get(built._ctx, jail._SCMP_FLTATR_CTL_OPTIMIZE, ctypes.byref(value)) == 0
        assert value.value == jail._SCMP_OPTIMIZE_BINARY_TREE, type(built).__name__


def test_the_standard_librarys_zygote_does_not_load_threading(plain_backend: RestrictedBackend) -> None:
    """Loaded, `threading` registers an after-fork hook that every child
    runs (0.1-0.2 ms a call); no thread can start in the jail, and the
    modules a plain tool may import are the facades' and PLAIN_PRELOAD."""
    result = plain_backend.run(
        _plain(
            """
            import sys
            def f():
                try:
                    import threading
                except ModuleNotFoundError as exc:
                    return ["threading" in sys.modules, str(exc)]
                return ["threading" in sys.modules, "imported"]
            """
        )
    )
    assert result.status == "ok", result
    loaded, how = result.result
    assert loaded is False
    assert "not available in the sandbox" in how
