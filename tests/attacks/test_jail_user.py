"""The jail holds when toolcrib runs as an ordinary user, too.

As root, the restricted backend also switches each call to its own uid and
unshares the network directly; an ordinary user gets neither (at most a
network namespace inside a user namespace), so Landlock and seccomp are all
that stand between a call and everything that user owns. This test runs
`jail_driver.py` as an unprivileged uid, with its own backend and canaries
that *that* uid owns, and checks the driver's report: every probe refused
inside the child, nothing persisted, no canary touched, no process of that
uid left behind, and the driver itself alive at the end (a call that could
signal its own user's processes would have killed it).

It needs root to become another user; in CI the tests run as root.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from typing import Any

import pytest

from .catalogue import CATALOGUE
from .corpus import ATTACKS, HELPER_TOOL
from .jail_outcomes import attack_verdict
from .jailkit import processes
from .probes import PERSISTENCE, PROBES

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the driver as another user")

DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "jail_driver.py")
USER_PROBES = [p for p in PROBES if p.user]
USER_PERSISTENCE = [p for p in PERSISTENCE if p.user]
# The attacks that end quickly (the resource attacks, which only wait for a
# limit, run as root in test_jail.py).
USER_ATTACKS = [a for a in ATTACKS + CATALOGUE if not a.limits and not a.category.startswith("resource")]
# A uid no account uses, so that "every process of this uid" means the
# driver's own; above the usual ranges, below the backend's call uids.
FIRST_UID = 61_700


def _free_uid() -> int:
    busy = {uid for _ppid, uid in processes().values()}
    uid = FIRST_UID
    while uid in busy:
        uid += 1
    return uid


def _as_user(uid: int, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *argv],
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        cwd="/",
        capture_output=True,
        text=True,
        **kwargs,
    )


def _interpreter(uid: int, site_dir: str) -> str:
    """An interpreter of this Python version that the user can execute
    (ours may live under root's home) and that finds toolcrib."""
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    candidates = [
        sys.executable,
        os.path.realpath(sys.executable),
        f"/usr/bin/python{version}",
        f"/usr/local/bin/python{version}",
    ]
    check = (
        "import site, sys; site.addsitedir(sys.argv[1]); import toolcrib.sandbox.restricted; "
        f"sys.exit(0 if '%d.%d' % sys.version_info[:2] == '{version}' else 3)"
    )
    for candidate in dict.fromkeys(candidates):
        if not os.path.exists(candidate):
            continue
        # Through a shell, so the exec itself happens without root's
        # capabilities, the way the backend will start its zygote.
        done = _as_user(uid, ["/bin/sh", "-c", 'exec "$0" -c "$1" "$2"', candidate, check, site_dir])
        if done.returncode == 0:
            return candidate
    pytest.fail(f"no Python {version} that uid {uid} can run with toolcrib importable (tried {candidates})")


def _leftovers(uid: int) -> list[int]:
    return [pid for pid, (_ppid, owner) in processes().items() if owner == uid]


@pytest.fixture(scope="module")
def report() -> Iterator[dict[str, Any]]:
    uid = _free_uid()
    site_dir = sysconfig.get_paths()["purelib"]
    readable = _as_user(uid, ["/bin/sh", "-c", 'test -r "$0" && test -r "$1"', DRIVER, site_dir])
    if readable.returncode != 0:
        pytest.skip(f"this checkout or its venv is not readable by another user ({DRIVER}, {site_dir})")
    python = _interpreter(uid, site_dir)
    config = {
        "site_dirs": [site_dir],
        "python": python,
        "probes": [p.id for p in USER_PROBES],
        "persistence": [p.id for p in USER_PERSISTENCE],
        "helper_tool": HELPER_TOOL,
        "attacks": [{"id": a.id, "code": a.code, "mode": a.mode} for a in USER_ATTACKS],
    }
    done = _as_user(uid, [python, DRIVER, json.dumps(config)], timeout=300)
    left = _leftovers(uid)
    end = time.monotonic() + 5
    while left and time.monotonic() < end:
        time.sleep(0.05)
        left = _leftovers(uid)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert done.returncode == 0, f"the driver died (code {done.returncode}): {done.stderr[-3000:]}"
    lines = done.stdout.strip().splitlines()
    assert lines, f"the driver printed nothing: {done.stderr[-3000:]}"
    data: dict[str, Any] = json.loads(lines[-1])
    data["leftover_pids"] = left
    data["uid_used"] = uid
    yield data


def test_driver_ran_the_jail_as_an_ordinary_user(report: dict[str, Any]) -> None:
    assert "crash" not in report, report.get("crash")
    assert report["uid"] == report["uid_used"] != 0
    info = report["info"]
    assert info["available"] is True, info
    assert info.get("uid_switched") is False, info
    sanity = report["sanity"]
    assert sanity["reply"]["status"] == "ok" and sanity["reply"]["result"] == ["run", "int"], sanity
    assert {"landlock", "seccomp"} <= set(sanity["reply"]["layers"]), sanity
    assert not sanity["problems"] and not report["start_problems"], report
    assert report["final_problems"] == [], report["final_problems"]
    assert report["leftover_pids"] == [], "processes of the jailed user outlived the driver"
    assert sorted(report["probes"]) == sorted(p.id for p in USER_PROBES)


@pytest.mark.parametrize("probe_id", [p.id for p in USER_PROBES])
def test_probe_as_ordinary_user(probe_id: str, report: dict[str, Any]) -> None:
    entry = report["probes"].get(probe_id)
    assert entry is not None, report.get("crash")
    assert entry["verdict"] is None, f"{probe_id}: {entry['verdict']}"
    assert entry["problems"] == [], f"{probe_id}: {entry['problems']}; {entry['reply']}"


@pytest.mark.parametrize("pair_id", [p.id for p in USER_PERSISTENCE])
def test_nothing_persists_as_ordinary_user(pair_id: str, report: dict[str, Any]) -> None:
    entry = report["persistence"].get(pair_id)
    assert entry is not None, report.get("crash")
    assert entry["seen"] is False, f"{pair_id}: a later call saw it: {entry}"
    assert entry["problems"] == [], f"{pair_id}: {entry['problems']}"
    assert entry["reads_ok"], f"{pair_id}: a later call did not run normally: {entry['read']}"
    write = entry["write"]
    if entry["write_refused"]:
        assert write["status"] == "ok" and "denied" in (write["result"] or {}), f"{pair_id}: not refused: {write}"


@pytest.mark.parametrize("attack_id", [a.id for a in USER_ATTACKS])
def test_attack_as_ordinary_user(attack_id: str, report: dict[str, Any]) -> None:
    entry = report["attacks"].get(attack_id)
    assert entry is not None, report.get("crash")
    assert entry["problems"] == [], f"{attack_id}: {entry['problems']}; {entry['reply']}"
    why = attack_verdict(attack_id, entry["reply"])
    assert why is None, f"{attack_id}: {why}"
