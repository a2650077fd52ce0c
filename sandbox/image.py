"""The Docker sandbox image: its content-hash tag, both build paths, status
and the `doctor` checks.

The image is the recipe in ``sandbox-images/Dockerfile`` (installed as
``toolcrib.images``) over a tar context toolcrib assembles: the in-container
harness, the sandbox's own ``execute`` module and every sibling it imports
(the policy), and the host's RestrictedPython (pure Python). Its tag is
``toolcrib-sandbox:<hash>`` where the hash covers all of that, so a changed
harness or policy means a new image, and an unchanged one is never rebuilt.

Two build paths produce equivalent images (same tag, the base is recorded in
a label):

- normal: ``FROM python:3.11-slim`` (the engine pulls it).
- offline: debootstrap a minimal Debian bookworm with python3 from this
  machine's apt mirror (``build-base.sh``), import it through the Docker API
  as ``toolcrib-sandbox-base:<hash of the recipe>`` (cached: only redone when
  the base recipe changes), then build the same Dockerfile on top of it.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "BASE_REPOSITORY",
    "IMAGE_REPOSITORY",
    "ImageBuildError",
    "ONLINE_BASE",
    "apt_mirror",
    "base_tag",
    "build_context",
    "build_image",
    "connect",
    "context_files",
    "doctor",
    "find_image",
    "image_status",
    "image_tag",
    "prune_images",
]

IMAGE_REPOSITORY = "toolcrib-sandbox"
BASE_REPOSITORY = "toolcrib-sandbox-base"
ONLINE_BASE = "python:3.11-slim"
# Bumped by hand when the way the context is laid out changes.
_RECIPE_VERSION = "toolcrib-sandbox-image/1"
_BASE_RECIPE = "debootstrap --variant=minbase --include=python3 bookworm"
_SANDBOX_DIR = Path(__file__).resolve().parent
_IN_IMAGE_PACKAGE = "opt/toolcrib/tcbox"
_IN_IMAGE_LIB = "opt/toolcrib/lib"

Progress = Callable[[str], None]


class ImageBuildError(Exception):
    """The image could not be built (engine error, debootstrap failed...)."""


def _recipes_dir() -> Path:
    try:
        import toolcrib.images as images  # installed: sandbox-images/ as package data

        return Path(images.__file__).resolve().parent
    except ImportError:
        # A source checkout that was not reinstalled since the mapping landed.
        return _SANDBOX_DIR.parent / "sandbox-images"


def _recipe(name: str) -> bytes:
    path = _recipes_dir() / name
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ImageBuildError(f"image recipe {path} is missing: {exc.strerror}") from exc


def _sandbox_modules() -> list[str]:
    """harness, execute and every sibling module they import, transitively.

    Also checks they import nothing outside the standard library and
    RestrictedPython: the image has nothing else.
    """
    todo, seen = ["harness", "execute"], []
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _SANDBOX_DIR / f"{name}.py"
        if not path.is_file():
            raise ImageBuildError(f"sandbox module {path} is missing")
        seen.append(name)
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    todo.append(node.module.split(".")[0])
                else:
                    todo.extend(a.name for a in node.names if (_SANDBOX_DIR / f"{a.name}.py").is_file())
            elif isinstance(node, ast.ImportFrom) and node.level > 1:
                raise ImageBuildError(f"{path.name} imports from outside the sandbox package")
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for top in (n.split(".")[0] for n in names):
                    if top not in sys.stdlib_module_names and top != "RestrictedPython" and top != "__future__":
                        raise ImageBuildError(f"{path.name} imports {top!r}, which the sandbox image does not have")
    return sorted(seen)


def _restricted_python() -> tuple[str, dict[str, bytes]]:
    import RestrictedPython

    version = importlib.metadata.version("RestrictedPython")
    root = Path(RestrictedPython.__file__).resolve().parent
    files = {}
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" not in path.parts:
            files[f"{_IN_IMAGE_LIB}/RestrictedPython/{path.relative_to(root).as_posix()}"] = path.read_bytes()
    return version, files


def context_files() -> dict[str, bytes]:
    """Every file of the build context, by path inside the context."""
    files: dict[str, bytes] = {"Dockerfile": _recipe("Dockerfile")}
    files[f"{_IN_IMAGE_PACKAGE}/__init__.py"] = b'"""toolcrib sandbox harness (inside the container)."""\n'
    for name in _sandbox_modules():
        files[f"{_IN_IMAGE_PACKAGE}/{name}.py"] = (_SANDBOX_DIR / f"{name}.py").read_bytes()
    _, rp_files = _restricted_python()
    files.update(rp_files)
    return files


def _content_hash(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256(_RECIPE_VERSION.encode())
    version, _ = _restricted_python()
    digest.update(f"\0RestrictedPython=={version}".encode())
    for path, data in sorted(files.items()):
        digest.update(b"\0" + path.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()[:16]


def image_tag(files: dict[str, bytes] | None = None) -> str:
    """``toolcrib-sandbox:<hash>`` for the harness and policy of this install
    (or of the given context files)."""
    return f"{IMAGE_REPOSITORY}:{_content_hash(context_files() if files is None else files)}"


def base_tag() -> str:
    """``toolcrib-sandbox-base:<hash>`` of the offline base recipe."""
    digest = hashlib.sha256(_BASE_RECIPE.encode() + b"\0" + _recipe("build-base.sh")).hexdigest()[:16]
    return f"{BASE_REPOSITORY}:{digest}"


def build_context(files: dict[str, bytes] | None = None) -> bytes:
    """The build context as an uncompressed tar (deterministic metadata)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for path, data in sorted((context_files() if files is None else files).items()):
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
                    tar.addfile(info)
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def connect(timeout: int = 60) -> Any:
    """A docker-py client; raises `ImageBuildError` when no engine answers."""
    try:
        import docker

        client = docker.from_env(timeout=timeout)
        client.ping()
        return client
    except Exception as exc:  # noqa: BLE001 - any failure means "no engine"
        raise ImageBuildError(f"no Docker engine answers: {_one_line(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def find_image(client: Any, tag: str) -> dict[str, Any] | None:
    """The engine's inspect record of the image, or None if absent."""
    import docker.errors

    try:
        return client.api.inspect_image(tag)
    except docker.errors.ImageNotFound:
        return None


def apt_mirror() -> str:
    """The Debian mirror this machine's apt uses (deb822 or one-line lists)."""
    candidates = [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]
    candidates += sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    candidates += sorted(Path("/etc/apt/sources.list.d").glob("*.list"))
    for path in candidates:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for uri in re.findall(r"^URIs:\s*(\S+)", text, re.M) + re.findall(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", text, re.M):
            if "security" not in uri and "debian" in uri:
                return uri
    return "http://deb.debian.org/debian"


def _stream_build(client: Any, context: bytes, tag: str, base: str, labels: dict[str, str], progress: Progress) -> None:
    import docker.errors

    try:
        stream = client.api.build(
            fileobj=io.BytesIO(context),
            custom_context=True,
            tag=tag,
            buildargs={"BASE": base},
            rm=True,
            forcerm=True,
            pull=False,
            network_mode="none",
            labels=labels,
            decode=True,
        )
        for chunk in stream:
            if "error" in chunk:
                raise ImageBuildError(f"image build failed: {' '.join(str(chunk['error']).split())}")
            text = str(chunk.get("stream") or chunk.get("status") or "").strip()
            if text:
                progress(text)
    except docker.errors.APIError as exc:
        raise ImageBuildError(f"image build failed: {_one_line(exc)}") from exc


def _build_base(client: Any, progress: Progress) -> str:
    tag = base_tag()
    if find_image(client, tag) is not None:
        progress(f"offline base {tag} is cached")
        return tag
    if os.geteuid() != 0:
        raise ImageBuildError("the offline build runs debootstrap and needs root")
    mirror = apt_mirror()
    script = _recipes_dir() / "build-base.sh"
    progress(f"debootstrapping Debian bookworm from {mirror} (takes a minute or two)")
    with tempfile.TemporaryDirectory(prefix="toolcrib-base-") as tmp:
        root = Path(tmp) / "root"
        proc = subprocess.Popen(
            ["sh", str(script), str(root), mirror],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        tail: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            tail = (tail + [line])[-5:]
            progress(line)
        if proc.wait() != 0:
            raise ImageBuildError(f"debootstrap failed (exit {proc.returncode}): {' | '.join(tail)}")
        progress("packing the root file system")
        archive = Path(tmp) / "base.tar"

        def skip_mounts(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
            # The engine provides /dev, /proc and /sys; keep only the empty dirs.
            if re.match(r"^\./(dev|proc|sys)/.", info.name):
                return None
            return info

        with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
            tar.add(root, arcname=".", filter=skip_mounts)
        progress(f"importing {tag}")
        repository, _, version = tag.partition(":")
        try:
            client.api.import_image_from_file(
                str(archive),
                repository=repository,
                tag=version,
                changes=['CMD ["python3"]', f"LABEL toolcrib.base.recipe={version}"],
            )
        except Exception as exc:  # noqa: BLE001 - engine errors become one line
            raise ImageBuildError(f"importing the offline base failed: {_one_line(exc)}") from exc
    if find_image(client, tag) is None:
        raise ImageBuildError(f"the engine did not record {tag} after the import")
    return tag


def build_image(
    client: Any | None = None,
    *,
    offline: bool = False,
    force: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Build the sandbox image unless the tagged one exists; returns its status.

    `offline` builds from a debootstrapped base instead of pulling
    python:3.11-slim; `force` rebuilds even when the tag is present.
    Raises `ImageBuildError`.
    """
    say = progress or (lambda _line: None)
    client = client or connect(timeout=600)
    # One snapshot of the files: the tag and the context always match.
    files = context_files()
    tag = image_tag(files)
    if not force and find_image(client, tag) is not None:
        say(f"{tag} is present")
        return image_status(client, tag)
    base = _build_base(client, say) if offline else ONLINE_BASE
    say(f"building {tag} on {base}")
    labels = {"toolcrib.sandbox.image": "1", "toolcrib.image.hash": tag.partition(":")[2], "toolcrib.image.base": base}
    _stream_build(client, build_context(files), tag, base, labels, say)
    if find_image(client, tag) is None:
        raise ImageBuildError(f"the engine did not record {tag} after the build")
    return image_status(client, tag)


def prune_images(client: Any | None = None, keep: str | None = None) -> list[str]:
    """Untag sandbox images other than `keep` (default: this install's tag).

    Images any container still uses (e.g. another process's warm pool) are
    left alone; the cached offline base is kept. Returns the tags removed. Raises
    `ImageBuildError` when no engine answers.
    """
    import docker.errors

    client = client or connect(timeout=60)
    keep = keep or image_tag()
    removed = []
    # A live backend (another process, an older install) keeps warm
    # containers created by tag: leave the tags in use alone.
    in_use = {c.get("Image") for c in client.api.containers(all=True)}
    for info in client.api.images(name=IMAGE_REPOSITORY):
        for tag in info.get("RepoTags") or []:
            if tag == keep or tag in in_use or not tag.startswith(f"{IMAGE_REPOSITORY}:"):
                continue
            try:
                client.api.remove_image(tag)
                removed.append(tag)
            except docker.errors.APIError:
                continue
    return removed


def image_status(client: Any | None = None, tag: str | None = None) -> dict[str, Any]:
    """Engine and image facts as a JSON-able dict (never raises)."""
    tag = tag or image_tag()
    status: dict[str, Any] = {"engine": False, "engine_version": None, "tag": tag, "present": False, "id": None}
    try:
        client = client or connect(timeout=10)
    except ImageBuildError as exc:
        status["error"] = str(exc)
        return status
    try:
        status["engine"] = True
        status["engine_version"] = client.version().get("Version")
        info = find_image(client, tag)
    except Exception as exc:  # noqa: BLE001 - report, not raise
        status["error"] = _one_line(exc)
        return status
    if info is not None:
        labels = (info.get("Config") or {}).get("Labels") or {}
        status.update(
            present=True,
            id=info.get("Id"),
            base=labels.get("toolcrib.image.base"),
            created=info.get("Created"),
            size_mb=round(int(info.get("Size") or 0) / 2**20, 1),
        )
    return status


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
    from .docker import run_once

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
        _check("non-root user", p["uid"] == 65534, f"uid {p['uid']}"),
        _check("no-new-privileges", p["no_new_privs"], "NoNewPrivs in /proc/self/status"),
        _check("capabilities dropped", p["cap_eff_zero"], "CapEff is 0"),
        _check("seccomp filter active", p["seccomp_filter"], "Seccomp: 2 (the engine's default profile) in /proc/self/status"),
        _check("read-only root", p["root_read_only"], "writing /etc fails"),
        _check(
            "tmpfs /tmp noexec,nosuid,nodev",
            all(f in tmp for f in ("noexec", "nosuid", "nodev")),
            ",".join(tmp) or "no /tmp mount",
        ),
        _check("memory limit", bool(p["memory_limit"]) and p["memory_limit"][0] == mem, f"{p['memory_limit']} (want {mem})"),
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
        _check("empty environment", set(p["env"]) <= {"PATH", "HOSTNAME", "HOME", "LANG", "LC_CTYPE", "GPG_KEY", "PYTHON_VERSION", "PYTHON_SHA256"}, f"{p['env']}"),
    ]
    return checks


def _restricted_check() -> dict[str, Any]:
    try:
        from . import get_backend
        from .contract import Job

        result = get_backend("restricted").run(Job(source="def f():\n    return 42\n", entrypoint="f"))
        return _check("restricted backend", result.status == "ok" and result.result == 42, f"trivial call: {result.status}")
    except Exception as exc:  # noqa: BLE001 - a check reports, never raises
        return _check("restricted backend", False, _one_line(exc))


def doctor(client: Any | None = None, *, probe: bool = True, restricted: bool = True) -> dict[str, Any]:
    """Health report: engine, image, and the container limits really applied.

    ``{"ok": bool, "checks": [{"name", "ok", "detail"}...], "engine": {...},
    "image": {...}}``. `probe` runs one tiny locked-down container to read back
    the limits from inside; never raises.
    """
    checks: list[dict[str, Any]] = []
    report: dict[str, Any] = {"checks": checks}
    try:
        client = client or connect(timeout=10)
    except ImageBuildError as exc:
        checks.append(_check("engine reachable", False, str(exc)))
    else:
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
            checks.append(_check("engine reachable", True, f"Docker {version.get('Version')} (API {version.get('ApiVersion')})"))
            checks.append(_check("seccomp", any("seccomp" in s for s in security), ", ".join(security) or "none reported"))
            status = image_status(client)
            report["image"] = status
            checks.append(
                _check(
                    "image present",
                    status["present"],
                    f"{status['tag']} {status.get('id')}" if status["present"] else f"{status['tag']} missing: run `toolcrib image build --offline`",
                )
            )
            if probe and status["present"]:
                checks.extend(_probe_checks(client, status["tag"]))
        except Exception as exc:  # noqa: BLE001 - a check reports, never raises
            checks.append(_check("engine checks", False, _one_line(exc)))
    if restricted:
        checks.append(_restricted_check())
    report["ok"] = all(c["ok"] for c in checks)
    return report
