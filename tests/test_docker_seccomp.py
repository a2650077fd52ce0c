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

ROOT = Path(__file__).resolve().parents[1]
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
        assert len(rules) == 1, f"{name}: {rules}"
        (rule,) = rules
        assert rule["action"] == "SCMP_ACT_ALLOW"
        assert rule["args"] == [{"index": 1, "value": 128, "valueTwo": 128, "op": "SCMP_CMP_MASKED_EQ"}]
        assert "includes" not in rule and "excludes" not in rule, "the rule holds whatever the capabilities"
    for name in SHARED_FUTEX_CALLS:
        assert _rules_naming(profile, name) == [], f"{name} must stay refused"


def test_it_is_the_engines_default_otherwise() -> None:
    profile = _profile()
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO" and profile["defaultErrnoRet"] == 1
    assert any("Apache License" in line for line in profile["comment"])
    allowed = {name for rule in profile["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW" and not rule.get("args")
               and not rule.get("includes") for name in rule["names"]}
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
