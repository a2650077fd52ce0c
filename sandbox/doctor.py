"""`toolcrib doctor`: is each sandbox really there, and really locked down?

Reads the engine's own report, checks the image, runs one tiny container that
reads its limits back from the inside, runs one trivial restricted call and
lists each layer of the restricted backend's jail and whether it is in force.
A check reports; it never raises.
"""

from __future__ import annotations

import json
from typing import Any

from .docker import run_once
from .image import ImageBuildError, _one_line, connect, image_status
from .inside import uids

__all__ = ["doctor"]


_PROBE = r"""
import json, os, resource
out = {}
st = open("/proc/self/status").read()
out["uid"] = os.getuid()
out["no_new_privs"] = "NoNewPrivs:\t1" in st
out["seccomp_filter"] = "Seccomp:\t2" in st
out["cap_eff_zero"] = any(l.startswith("CapEff:") and int(l.split()[1], 16) == 0 for l in st.splitlines())
try:
    open("/etc/toolcrib-probe", "w")
    out["root_read_only"] = False
except OSError:
    out["root_read_only"] = True
mounts = {l.split()[1]: l.split()[3].split(",") for l in open("/proc/mounts")}
out["tmp_options"] = mounts.get("/tmp")
def first(*paths):
    for p in paths:
        try:
            return open(p).read().split()[0:2]
        except OSError:
            pass
    return None
out["memory_limit"] = first("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max")
out["memsw_limit"] = first("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes", "/sys/fs/cgroup/memory.swap.max")
out["pids_max"] = first("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max")
out["cpu_quota"] = first("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu.max")
out["interfaces"] = sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:])
out["rlimit_cpu"] = resource.getrlimit(resource.RLIMIT_CPU)
out["rlimit_fsize"] = resource.getrlimit(resource.RLIMIT_FSIZE)
out["env"] = sorted(os.environ)
out["docker_sock"] = os.path.exists("/var/run/docker.sock") or os.path.exists("/run/docker.sock")
print(json.dumps(out))
"""


def _check(name: str, ok: bool, detail: str) -> dict[str, Any]:
    return {"name": name, "ok": bool(ok), "detail": detail}


def _probe_checks(client: Any, tag: str) -> list[dict[str, Any]]:
    from .contract import Limits

    limits = Limits()
    code, out = run_once(client, tag, limits, ["python3", "-I", "-S", "-c", _PROBE], timeout=30.0)
    try:
        p = json.loads(out.decode("utf-8", "replace").strip().splitlines()[-1])
    except (ValueError, IndexError):
        return [_check("probe container", False, f"exit {code}, no probe output: {out[:200]!r}")]
    mem = str(limits.memory * 2**20)
    cpu_s = int(-(-limits.cpu // 1))
    tmp = p.get("tmp_options") or []
    checks = [
        _check("probe container", code == 0, f"ran {tag} and exited {code}"),
        # The image's own nobody, or (as root) a machine-wide call uid of its own (uids.py).
        _check(
            "non-root user",
            p["uid"] == 65534 or uids.BASE <= p["uid"] < uids.BASE + uids.BLOCKS * uids.BLOCK_SIZE,
            f"uid {p['uid']}",
        ),
        _check("no-new-privileges", p["no_new_privs"], "NoNewPrivs in /proc/self/status"),
        _check("capabilities dropped", p["cap_eff_zero"], "CapEff is 0"),
        _check(
            "seccomp filter active",
            p["seccomp_filter"],
            "Seccomp: 2 (toolcrib's profile: the engine's default, futexes private only) in /proc/self/status",
        ),
        _check("read-only root", p["root_read_only"], "writing /etc fails"),
        _check(
            "tmpfs /tmp noexec,nosuid,nodev",
            all(f in tmp for f in ("noexec", "nosuid", "nodev")),
            ",".join(tmp) or "no /tmp mount",
        ),
        _check(
            "memory limit", bool(p["memory_limit"]) and p["memory_limit"][0] == mem, f"{p['memory_limit']} (want {mem})"
        ),
        _check(
            "no swap beyond memory",
            p["memsw_limit"] is None or p["memsw_limit"][0] in (mem, "0"),
            f"memory+swap {p['memsw_limit']}",
        ),
        _check("pids limit", bool(p["pids_max"]) and p["pids_max"][0] != "max", f"pids.max {p['pids_max']}"),
        _check("cpu quota", bool(p["cpu_quota"]) and p["cpu_quota"][0] not in ("-1", "max"), f"{p['cpu_quota']}"),
        _check("cpu rlimit", p["rlimit_cpu"][0] == cpu_s, f"RLIMIT_CPU {p['rlimit_cpu']}"),
        _check("file size rlimit", p["rlimit_fsize"][0] == limits.disk * 2**20, f"RLIMIT_FSIZE {p['rlimit_fsize']}"),
        _check("no network", p["interfaces"] == ["lo"], f"interfaces {p['interfaces']}"),
        _check("no Docker socket", not p["docker_sock"], "no docker.sock inside"),
        _check(
            "empty environment",
            set(p["env"])
            <= {"PATH", "HOSTNAME", "HOME", "LANG", "LC_CTYPE", "GPG_KEY", "PYTHON_VERSION", "PYTHON_SHA256"},
            f"{p['env']}",
        ),
    ]
    return checks


def _layers(info: dict[str, Any]) -> list[dict[str, Any]]:
    """The backend's layer report, each entry checked for shape (a backend
    that reports none, as before the jail, gives an empty list)."""
    layers: list[dict[str, Any]] = []
    for entry in info.get("layers") or []:
        if isinstance(entry, dict) and isinstance(entry.get("layer"), str):
            layers.append(
                {
                    "layer": entry["layer"],
                    "in_force": bool(entry.get("in_force")),
                    "required": bool(entry.get("required")),
                    "detail": str(entry.get("detail") or ""),
                }
            )
    return layers


def _restricted_checks() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The restricted backend: one trivial call, then each jail layer from
    `health()` (in force or not), whether weak isolation is allowed, and one
    check that every required layer is in force (else calls fail closed)."""
    section: dict[str, Any] = {"layers": [], "weak_allowed": None}
    try:
        from . import get_backend
        from .contract import Job

        backend = get_backend("restricted")
        result = backend.run(Job(source="def f():\n    return 42\n", entrypoint="f"))
        info = backend.health()
    except Exception as exc:  # noqa: BLE001 - a check reports, never raises
        return [_check("restricted backend", False, _one_line(exc))], section
    layers = _layers(info)
    section.update(
        layers=layers,
        weak_allowed=info.get("weak_allowed"),
        plain_policy=info.get("plain_policy"),
        available=info.get("available"),
        call_layers=list(result.layers),
    )
    why = f" ({result.error.message})" if result.error is not None else ""
    detail = (
        f"trivial call: {result.status}{why}; layers in force for it: {', '.join(result.layers) or 'none reported'}"
    )
    checks = [_check("restricted backend", result.status == "ok" and result.result == 42, detail)]
    if not layers:
        return checks, section
    missing = [entry["layer"] for entry in layers if entry["required"] and not entry["in_force"]]
    weak = bool(info.get("weak_allowed"))
    if not missing:
        jail = "every required layer is in force"
    elif weak:
        jail = f"missing {', '.join(missing)}; weak isolation allowed, so restricted-policy calls run without"
    else:
        jail = f"missing {', '.join(missing)}: calls are refused as unavailable (exit 6)"
    checks.append(_check("restricted jail", not missing, jail))
    return checks, section


def _engine_checks(client: Any, report: dict[str, Any], *, probe: bool) -> None:
    """The engine's version and security options, the image, and (with
    `probe`) the limits read back from inside a container; appended to
    ``report["checks"]``, never raised."""
    checks: list[dict[str, Any]] = report["checks"]
    try:
        version = client.version()
        info = client.info()
        security = [str(s) for s in info.get("SecurityOptions") or []]
        report["engine"] = {
            "version": version.get("Version"),
            "api_version": version.get("ApiVersion"),
            "cgroup_version": info.get("CgroupVersion"),
            "cgroup_driver": info.get("CgroupDriver"),
            "security_options": security,
            "kernel": info.get("KernelVersion"),
        }
        checks.append(
            _check("engine reachable", True, f"Docker {version.get('Version')} (API {version.get('ApiVersion')})")
        )
        checks.append(_check("seccomp", any("seccomp" in s for s in security), ", ".join(security) or "none reported"))
        status = image_status(client)
        report["image"] = status
        checks.append(
            _check(
                "image present",
                status["present"],
                f"{status['tag']} {status.get('id')}"
                if status["present"]
                else f"{status['tag']} missing: run `toolcrib image build --offline`",
            )
        )
        if probe and status["present"]:
            checks.extend(_probe_checks(client, status["tag"]))
    except Exception as exc:  # noqa: BLE001 - a check reports, never raises
        checks.append(_check("engine checks", False, _one_line(exc)))


def _docker_section(client: Any | None, probe: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The Docker backend: the engine's report, the image and (with `probe`)
    the limits read back inside a container. Its facts go at the report's
    top level (``engine``, ``image``), as they always have."""
    report: dict[str, Any] = {"checks": []}
    if client is not None:
        _engine_checks(client, report, probe=probe)  # the caller's client stays open
    else:
        try:
            own = connect(timeout=10)
        except ImageBuildError as exc:
            report["checks"].append(_check("engine reachable", False, str(exc)))
        else:
            try:
                _engine_checks(own, report, probe=probe)
            finally:
                own.close()  # connected here, so closed here: no socket left to the collector
    checks = report.pop("checks")
    return checks, report


def _generic_section(name: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Any other backend of the table, through the `contract.Backend`
    promise alone: its `health()` and one trivial call. A new backend shows
    in `doctor` without a line here; a section of its own (in `SECTIONS`)
    can say more."""
    from .backends import ExtraMissing

    section: dict[str, Any] = {}
    try:
        from . import get_backend
        from .contract import Job

        backend = get_backend(name)
        info = backend.health()
        section.update(info)
        if info.get("configured") is False:
            # An optional backend nobody set up (no cluster named, say) is
            # reported, not failed: doctor checks what is in use.
            return [_check(f"{name} backend", True, f"not in use: {info.get('error') or 'not configured'}")], {
                name: section
            }
        if not info.get("available"):
            return [_check(f"{name} backend", False, str(info.get("error") or "unavailable"))], {name: section}
        result = backend.run(Job(source="def f():\n    return 42\n", entrypoint="f"))
    except ExtraMissing as exc:
        # An optional backend whose extra is not installed (wasm): reported
        # with the pip command, not failed.
        section.update({"backend": name, "available": False, "installed": False, "error": _one_line(exc)})
        return [_check(f"{name} backend", True, f"not installed: {_one_line(exc)}")], {name: section}
    except Exception as exc:  # noqa: BLE001 - a check reports, never raises
        return [_check(f"{name} backend", False, _one_line(exc))], {name: section}
    section["layers"] = _layers(info)
    section["call_layers"] = list(result.layers)
    why = f" ({result.error.message})" if result.error is not None else ""
    detail = f"trivial call: {result.status}{why}; layers reported: {', '.join(result.layers) or 'none'}"
    if info.get("image"):
        detail += f"; image: {info['image']}" + (f" ({info['image_note']})" if info.get("image_note") else "")
    return [_check(f"{name} backend", result.status == "ok" and result.result == 42, detail)], {name: section}


def _sections(client: Any | None, probe: bool, restricted: bool) -> list[tuple[list[dict[str, Any]], dict[str, Any]]]:
    """One section per backend of the table (`backends.FACTORIES`: a
    registered one too), Docker first: the backends with checks of their own,
    then every other one through `_generic_section`."""
    from .backends import FACTORIES

    sections = []
    for name in sorted(FACTORIES, key=lambda n: (n != "docker", n != "restricted", n)):
        if name == "docker":
            sections.append(_docker_section(client, probe))
        elif name == "restricted":
            if restricted:
                checks, section = _restricted_checks()
                sections.append((checks, {"restricted": section}))
        else:
            sections.append(_generic_section(name))
    return sections


def _service_check() -> tuple[dict[str, Any], dict[str, Any]]:
    """The warm sandbox service (sandbox/service.py): in use or not, running
    or not; a socket or directory that is not this user's own fails."""
    from . import service

    info = service.status()
    if "error" in info:
        return _check("sandbox service", False, info["error"]), info
    use = "in use" if info["enabled"] else f"not in use ({service.SERVICE_ENV}=1 shares warm zygotes between commands)"
    if info["running"]:
        state = f"running (pid {info.get('pid')}, {info.get('calls')} call(s)) at {info['socket']}"
    else:
        state = f"not running (started on first use at {info['socket']})"
    return _check("sandbox service", True, f"{use}; {state}"), info


def doctor(client: Any | None = None, *, probe: bool = True, restricted: bool = True) -> dict[str, Any]:
    """Health report: a section per backend of the table.

    ``{"ok": bool, "checks": [{"name", "ok", "detail"}...], "engine": {...},
    "image": {...}, "restricted": {"layers": [{"layer", "in_force",
    "required", "detail"}...], "weak_allowed": bool, ...}, <other backend>:
    {...}, "default_backend": name}``. `probe` runs one tiny locked-down container to read back the
    limits from inside; ``restricted=False`` leaves out the restricted
    backend (it starts a zygote); never raises.
    """
    checks: list[dict[str, Any]] = []
    report: dict[str, Any] = {"checks": checks}
    for section_checks, facts in _sections(client, probe, restricted):
        checks.extend(section_checks)
        report.update(facts)
    service_check, report["service"] = _service_check()
    checks.append(service_check)
    report["ok"] = all(c["ok"] for c in checks)
    from .default_backend import default_backend  # restricted where the Linux jail exists, else wasm

    report["default_backend"] = default_backend()
    return report
