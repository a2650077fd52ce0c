"""The Docker backend's own seccomp profile (sandbox/seccomp-docker.json):
the engine's default with futexes private only, passed to every container.
The profile's effect is tested against a real engine in
tests/attacks/test_channels.py (two containers of one image); this checks
the data and that every container gets it, without an engine."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from toolcrib.sandbox.contract import Limits
from toolcrib.sandbox.docker import SECCOMP_PROFILE_PATH, host_config_options, seccomp_profile

ROOT = Path(__file__).resolve().parents[2]
SHARED_FUTEX_CALLS = {"futex_waitv", "futex_wait", "futex_wake", "futex_requeue"}


def _profile() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(SECCOMP_PROFILE_PATH).read_text(encoding="utf-8"))
    return data


def _rules_naming(profile: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [rule for rule in profile["syscalls"] if name in rule.get("names", [])]


def test_futex_only_with_the_private_flag() -> None:
    profile = _profile()
    for name in ("futex", "futex_time64"):
        rules = _rules_naming(profile, name)
        allowing = [rule for rule in rules if rule["action"] == "SCMP_ACT_ALLOW"]
        assert len(allowing) == 1, f"{name}: {allowing}"
        assert allowing[0]["args"] == [{"index": 1, "value": 128, "valueTwo": 128, "op": "SCMP_CMP_MASKED_EQ"}]
        # The others only choose the errno of a refused shared operation:
        # each matches the operation word with the private bit clear.
        for rule in rules:
            assert "includes" not in rule and "excludes" not in rule, "the rules hold whatever the capabilities"
            if rule is allowing[0]:
                continue
            assert rule["action"] == "SCMP_ACT_ERRNO", rule
            (arg,) = rule["args"]
            assert arg["index"] == 1 and arg["op"] == "SCMP_CMP_MASKED_EQ", rule
            assert arg["value"] & 128 and not arg.get("valueTwo", 0) & 128, rule
    for name in SHARED_FUTEX_CALLS:
        assert _rules_naming(profile, name) == [], f"{name} must stay refused"


def test_it_is_the_engines_default_otherwise() -> None:
    profile = _profile()
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO" and profile["defaultErrnoRet"] == 1
    assert any("Apache License" in line for line in profile["comment"])
    allowed = {
        name
        for rule in profile["syscalls"]
        if rule["action"] == "SCMP_ACT_ALLOW" and not rule.get("args") and not rule.get("includes")
        for name in rule["names"]
    }
    # A few the default allows for any container, and a few it never does.
    assert {"read", "write", "mmap", "set_robust_list", "exit_group"} <= allowed
    assert not {"ptrace", "mount", "bpf", "kexec_load", "open_by_handle_at"} & allowed


def test_every_container_gets_it() -> None:
    options = host_config_options(Limits())
    assert "no-new-privileges" in options["security_opt"]
    (seccomp,) = [opt for opt in options["security_opt"] if opt.startswith("seccomp=")]
    assert json.loads(seccomp.removeprefix("seccomp=")) == _profile()
    assert seccomp_profile() is seccomp_profile()  # read once


def test_the_profile_ships_with_the_package() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "seccomp-docker.json" in config["tool"]["setuptools"]["package-data"]["toolcrib.sandbox"]


# --------------------------------------------------------------------------- the futex rules, loaded by libseccomp

# The whole profile, loaded by libseccomp the way the engine's runtime loads
# it for a container with no capabilities (runc, libseccomp-golang):
# SCMP_CMP_MASKED_EQ is (arg & value) == valueTwo, valueTwo 0 when absent;
# SCMP_ACT_ERRNO returns errnoRet, else defaultErrnoRet; rules included only
# for capabilities are left out, those for this architecture or an older
# kernel kept. Then a Python child tries the futex operations and a
# pthread_join.
FUTEX_CHILD = r"""
import ctypes, json, os, sys

_FUTEX = {"x86_64": 202, "aarch64": 98}[os.uname().machine]
_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}[os.uname().machine]
_KERNEL = tuple(int(x) for x in os.uname().release.split("-")[0].split(".")[:2])


class ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]


_OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
        "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}


def applies(rule):
    inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
    if inc.get("caps"):
        return False
    if inc.get("arches") and _ARCH not in inc["arches"]:
        return False
    if exc.get("arches") and _ARCH in exc["arches"]:
        return False
    if inc.get("minKernel") and _KERNEL < tuple(int(x) for x in inc["minKernel"].split(".")):
        return False
    return True


def load(profile):
    lib = ctypes.CDLL("libseccomp.so.2")
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(ArgCmp)]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(0x00050000 | profile["defaultErrnoRet"])
    for rule in profile["syscalls"]:
        if not applies(rule):
            continue
        if rule["action"] == "SCMP_ACT_ALLOW":
            action = 0x7FFF0000
        elif rule["action"] == "SCMP_ACT_ERRNO":
            action = 0x00050000 | rule.get("errnoRet", profile["defaultErrnoRet"])
        else:
            continue
        args = rule.get("args") or []
        cmps = (ArgCmp * max(1, len(args)))(*[ArgCmp(a["index"], _OPS[a["op"]], a["value"], a.get("valueTwo", 0))
                                               for a in args])
        for name in rule["names"]:
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number < 0:
                continue
            rc = lib.seccomp_rule_add_array(ctx, action, number, len(args), cmps if args else None)
            assert rc == 0, (name, rule, rc)
    assert lib.seccomp_load(ctx) == 0


libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def futex(op):
    # Our own word, holding 1: a wait with 1 sleeps (1 us, then ETIMEDOUT),
    # a wake wakes nobody (returns 0).
    word = ctypes.c_uint32(1)
    timeout = (ctypes.c_long * 2)(0, 1000)
    ctypes.set_errno(0)
    rc = libc.syscall(ctypes.c_long(_FUTEX), ctypes.byref(word), ctypes.c_int(op), ctypes.c_uint(1),
                      ctypes.byref(timeout), None, ctypes.c_uint(0xFFFFFFFF))
    return ctypes.get_errno() if rc < 0 else 0


load(json.loads(sys.argv[1]))
out = {name: futex(op) for name, op in (("wait", 0), ("wait_bitset", 9), ("wake", 1), ("wake_bitset", 10),
                                        ("private_wait", 128), ("private_wake", 129))}
# pthread_join waits on the thread's tid without the private flag.
SLEEP = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)(lambda _arg: libc.usleep(200000) and None)
thread = ctypes.c_ulong()
assert libc.pthread_create(ctypes.byref(thread), None, SLEEP, None) == 0
out["join"] = libc.pthread_join(thread, None)
print(json.dumps(out))
"""


def test_the_futex_rules_do_what_they_say() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-I", "-c", FUTEX_CHILD, json.dumps(_profile())],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    # Shared waits: EAGAIN (never woken); shared wakes: EINVAL (wake no one).
    assert out["wait"] == out["wait_bitset"] == 11, out
    assert out["wake"] == out["wake_bitset"] == 22, out
    # Private ones work: the wait times out, the wake wakes nobody.
    assert out["private_wait"] == 110 and out["private_wake"] == 0, out
    # And a thread can still be joined (it would abort on EPERM).
    assert out["join"] == 0, out
