"""Where one isolated call's CPU goes, phase by phase (issue 19).

    .venv/bin/python bench/profile_call.py [--calls 400] [--threads 2] [--zygotes 2]

Runs the real restricted backend with its zygotes started through
`_profiled_zygote` (below): the same `zygote.main`, with timers around the
phases of a child's life (thread CPU time and minor page faults read with
getrusage/clock_gettime, which the jail allows, written to a file the
zygote opened before its jail) and around the zygote's fork and reap
(wait4's rusage of each child: its whole CPU, exit included). Prints a
table of medians per call (ms, faults). Whole-machine CPU from /proc/stat
over the same interval gives what the kernel spends outside the processes
(kworkers, softirq) by difference.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

WRAPPER = r"""
import importlib.util, os, resource, sys, time
out = os.open(os.environ.get("PROFILE_OUT") or sys.argv.pop(1), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
ZPATH = sys.argv[1]
spec = importlib.util.spec_from_file_location("__zygote__", ZPATH)
z = importlib.util.module_from_spec(spec)
spec.loader.exec_module(z)
z.ZYGOTE_PATH = ZPATH
_rus = resource.getrusage
_S = resource.RUSAGE_SELF
_clk = time.clock_gettime
_CPU = time.CLOCK_PROCESS_CPUTIME_ID

def mark(marks, name):
    r = _rus(_S)
    marks.append((name, _clk(_CPU), r.ru_minflt))

orig_close = z._close_fds_except
z._close_fds_except = lambda keep: orig_close(tuple(keep) + (out,))

orig_lock_down = z._lock_down
orig_vm = z._vm_bytes

def spare_main(control_fd, link_fd, zygote_pid, slot, run_job, jail, warm=True):
    marks = []
    mark(marks, "start")
    socket = z.socket; struct = z.struct; json = z.json
    try:
        orig_lock_down((control_fd, link_fd), zygote_pid, slot)
        mark(marks, "lock_down")
        if warm:
            run_job(z._WARM_JOB, restricted=True)
        mark(marks, "warm")
        vm_base = orig_vm()
        mark(marks, "vm_probe")
        if jail.abi > 0:
            z._jail_mod._enter_landlock(jail.abi)
        mark(marks, "landlock")
        jail._seccomp.load()
        mark(marks, "seccomp")
        control = socket.socket(fileno=control_fd)
        data, fds = z._receive(control, z.HEADER_MAX)
        mark(marks, "wait_call")
        control.close()
        if not data and not fds:
            os._exit(0)
        link = socket.socket(fileno=link_fd)
        call = socket.socket(fileno=fds[0])
        header = z._parse_header(data)
        link.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fds[1]))])
        os.close(fds[1])
        link.close()
        mark(marks, "hand_status")
        z._apply_limits(header, vm_base)
        mark(marks, "limits")
        call.settimeout(header["wall"])
        (size,) = z._LEN.unpack(z._recv_exact(call, z._LEN.size))
        job = json.loads(z._recv_exact(call, size))
        call.settimeout(None)
        mark(marks, "read_job")
    except BaseException:
        os._exit(z.EXIT_SETUP_FAILED)
    code = 0
    try:
        del SUB[:]
        reply = run_job(job, restricted=header["restricted"])
        marks.append(("sub", list(SUB), 0))
        mark(marks, "run_job")
        call.sendall(reply)
        call.close()
        mark(marks, "reply")
    except BaseException:
        code = 1
    os.write(out, (json.dumps({"pid": os.getpid(), "marks": marks}) + "\n").encode())
    os._exit(code)

z._spare_main = spare_main

# the zygote side: fork and reap
orig_fork_spare = z._Zygote._fork_spare
def fork_spare(self):
    t0 = _clk(_CPU); f0 = _rus(_S).ru_minflt
    orig_fork_spare(self)
    t1 = _clk(_CPU); f1 = _rus(_S).ru_minflt
    os.write(out, (z.json.dumps({"zygote": "fork", "cpu": t1 - t0, "faults": f1 - f0}) + "\n").encode())
z._Zygote._fork_spare = fork_spare

def _zygote_timed(name):
    orig = getattr(z._Zygote, name)
    def inner(self, *a):
        t0 = _clk(_CPU); f0 = _rus(_S).ru_minflt
        try:
            return orig(self, *a)
        finally:
            t1 = _clk(_CPU); f1 = _rus(_S).ru_minflt
            os.write(out, (z.json.dumps({"zygote": name, "cpu": t1 - t0, "faults": f1 - f0}) + "\n").encode())
    setattr(z._Zygote, name, inner)
for _name in ("_taken", "_reap"):
    _zygote_timed(_name)

orig_wait4 = os.wait4
def wait4(pid, options):
    got = orig_wait4(pid, options)
    u = got[2]
    os.write(out, (z.json.dumps({"reaped": pid, "utime": u.ru_utime, "stime": u.ru_stime, "minflt": u.ru_minflt}) + "\n").encode())
    return got
os.wait4 = wait4

orig_serve = z._Zygote.serve
# the zygote's own loop per call: its CPU between forks is total - fork - reap (from /proc)
SUB = []
def _load_run_job():
    run_job, jail_module = orig_load()
    z._jail_mod = jail_module
    ex = sys.modules[z._PKG + ".execute"]
    def timed(name, fn):
        def inner(*a, **k):
            t0 = _clk(_CPU); f0 = _rus(_S).ru_minflt
            try:
                return fn(*a, **k)
            finally:
                SUB.append((name, _clk(_CPU) - t0, _rus(_S).ru_minflt - f0))
        return inner
    ex._compile = timed("compile", ex._compile)
    ex._tool_finished = timed("gc after tool", ex._tool_finished)
    ex._decided = timed("decided", ex._decided)
    ex._encode = timed("encode", ex._encode)
    ex.to_json = timed("to_json", ex.to_json)
    import gc as _gc
    ex.gc = type("G", (), {"collect": staticmethod(timed("gc.collect", _gc.collect)), "disable": staticmethod(_gc.disable), "enable": staticmethod(_gc.enable), "isenabled": staticmethod(_gc.isenabled), "freeze": staticmethod(_gc.freeze), "unfreeze": staticmethod(_gc.unfreeze), "get_freeze_count": staticmethod(_gc.get_freeze_count)})
    return run_job, jail_module
orig_load = z._load_run_job
z._load_run_job = _load_run_job
sys.exit(z.main(sys.argv[1:]))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--zygotes", type=int, default=2)
    parser.add_argument("--source", default="def add(a, b):\n    return a + b\n")
    opts = parser.parse_args()
    from toolcrib.sandbox.contract import Job
    from toolcrib.sandbox.restricted import RestrictedBackend

    tmp = Path(tempfile.mkdtemp(prefix="profile_call."))
    os.chmod(tmp, 0o777)
    outfile = tmp / "marks.jsonl"
    wrapper = tmp / "wrapper.py"
    wrapper.write_text(WRAPPER)
    python = tmp / "python"
    # The backend runs [python, -I, -S, ZYGOTE_PATH, ...]: run the wrapper instead, same flags.
    python.write_text(f'#!/bin/sh\nshift 2\nexec {sys.executable} -I -S {wrapper} {outfile} "$@"\n')
    python.chmod(0o755)
    job = Job(source=opts.source, entrypoint="add", args={"a": 1, "b": 2})
    backend = RestrictedBackend(zygotes=opts.zygotes, python=str(python))
    try:
        with ThreadPoolExecutor(opts.threads) as pool:
            list(pool.map(lambda _: backend.run(job), range(40)))
        outfile.write_text("")
        zpids = [z.proc.pid for z in [backend._zygote, *backend._others] if z is not None]
        z0 = _zygote_cpu(zpids)
        _ZFLT[0] = -_ZFLT[0]
        stat0 = _proc_stat()
        host0 = os.times()
        started = time.perf_counter()
        with ThreadPoolExecutor(opts.threads) as pool:
            results = list(pool.map(lambda _: backend.run(job), range(opts.calls)))
        wall = time.perf_counter() - started
        host1 = os.times()
        stat1 = _proc_stat()
        z1 = _zygote_cpu(zpids)
        assert all(r.status == "ok" for r in results), results[:2]
    finally:
        backend.close()
    time.sleep(0.5)
    report(outfile, opts.calls, wall, host0, host1, stat0, stat1, (z1 - z0) / opts.calls * 1000)


def _zygote_cpu(pids) -> float:
    """The zygotes' own CPU seconds (not their children's)."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
        _ZFLT[0] += int(fields[7])
    return total / os.sysconf("SC_CLK_TCK")


_ZFLT = [0]


def _proc_stat() -> list[int]:
    with open("/proc/stat") as fh:
        return [int(x) for x in fh.readline().split()[1:]]


def report(outfile, calls, wall, host0, host1, stat0, stat1, zygote_ms) -> None:
    children, forks, reaped = {}, [], {}
    zsteps = defaultdict(list)
    for line in outfile.read_text().splitlines():
        rec = json.loads(line)
        if "pid" in rec:
            children[rec["pid"]] = rec["marks"]
        elif rec.get("zygote") == "fork":
            forks.append(rec)
        elif "zygote" in rec:
            zsteps[rec["zygote"]].append(rec)
        elif "reaped" in rec:
            reaped[rec["reaped"]] = rec
    phases = defaultdict(list)
    faults = defaultdict(list)
    exit_cpu, exit_faults, total_cpu, total_faults = [], [], [], []
    before_cpu, before_faults = [], []
    subs = defaultdict(list)
    for pid, marks in children.items():
        for _name, items, _ in [m for m in marks if m[0] == "sub"]:
            agg = defaultdict(lambda: [0.0, 0])
            for n, c, f in items:
                agg[n][0] += c * 1000
                agg[n][1] += f
            for n, (c, f) in agg.items():
                subs[n].append((c, f))
        marks = [m for m in marks if m[0] != "sub"]
        for (_n0, t0, f0), (n1, t1, f1) in zip(marks, marks[1:]):
            if n1 == "wait_call":
                continue  # blocked, not CPU (the recv's own few µs are in it)
            phases[n1].append((t1 - t0) * 1000)
            faults[n1].append(f1 - f0)
        before_cpu.append(marks[0][1] * 1000)
        before_faults.append(marks[0][2])
        r = reaped.get(pid)
        if r:
            whole = (r["utime"] + r["stime"]) * 1000
            total_cpu.append(whole)
            total_faults.append(r["minflt"])
            exit_cpu.append(whole - marks[-1][1] * 1000)
            exit_faults.append(r["minflt"] - marks[-1][2])
    rows = [
        (
            "after fork, before _spare_main's first line",
            statistics.mean(before_cpu),
            statistics.median(before_cpu),
            statistics.mean(before_faults),
        )
    ]
    for name in phases:
        rows.append(
            (name, statistics.mean(phases[name]), statistics.median(phases[name]), statistics.mean(faults[name]))
        )
    rows.append(
        (
            "exit (whole child by wait4 - last mark)",
            statistics.mean(exit_cpu),
            statistics.median(exit_cpu),
            statistics.mean(exit_faults),
        )
    )
    rows.append(
        (
            "child, in all (wait4)",
            statistics.mean(total_cpu),
            statistics.median(total_cpu),
            statistics.mean(total_faults),
        )
    )
    rows.append(
        (
            "zygote: fork (os.fork + pidfd + socketpair)",
            statistics.mean(f["cpu"] * 1000 for f in forks),
            statistics.median(f["cpu"] * 1000 for f in forks),
            statistics.mean(f["faults"] for f in forks),
        )
    )
    for name, recs in zsteps.items():
        rows.append(
            (
                f"zygote: {name}",
                statistics.mean(r["cpu"] * 1000 for r in recs),
                statistics.median(r["cpu"] * 1000 for r in recs),
                statistics.mean(r["faults"] for r in recs),
            )
        )
    print(f"children measured: {len(children)}, reaped: {len(reaped)}, forks: {len(forks)}")
    print(f"{'phase':50s} {'mean ms':>8s} {'median':>8s} {'minflt':>7s}")
    for name, mean, med, flt in rows:
        print(f"{name:50s} {mean:8.3f} {med:8.3f} {flt:7.1f}")
    host = (host1.user - host0.user + host1.system - host0.system) / calls * 1000
    tick = os.sysconf("SC_CLK_TCK")
    diff = [b - a for a, b in zip(stat0, stat1)]
    busy = (sum(diff) - diff[3] - diff[4]) / tick / calls * 1000  # minus idle, iowait
    for n, vals in subs.items():
        print(
            f"  in run_job: {n:38s} {statistics.mean(v[0] for v in vals):8.3f} {statistics.median(v[0] for v in vals):8.3f} {statistics.mean(v[1] for v in vals):7.1f}"
        )
    print(f"zygote's own CPU per call (/proc): {zygote_ms:.3f} ms, minor faults per call {_ZFLT[0] / calls:.1f}")
    print(
        f"host per call: {host:.3f} ms; machine busy per call (/proc/stat): {busy:.3f} ms "
        f"(user {diff[0] / tick / calls * 1000:.3f}, sys {diff[2] / tick / calls * 1000:.3f}, softirq {diff[6] / tick / calls * 1000:.3f}); "
        f"calls/s {calls / wall:.1f}; load {os.getloadavg()}"
    )


if __name__ == "__main__":
    main()
