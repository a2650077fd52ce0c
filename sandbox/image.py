"""The Docker sandbox image: its content-hash tag, both build paths, status
and the `doctor` checks.

The image is the recipe in ``sandbox-images/Dockerfile`` (installed as
``toolcrib.images``) over a tar context toolcrib assembles: the in-container
harness and ``execute`` from ``sandbox/inside/`` with every sibling they import
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

A version that needs packages runs in a *runtime image*: one layer on top of
the sandbox image holding the lock's site directory (installed on the host
from the cached, hash-checked wheels by `packages.materialize`, copied in: no
pip and no network in the build, which runs with ``network_mode="none"``),
tagged ``toolcrib-runtime:<lock digest>-<sandbox image hash>``, so every
version with the same lock on the same harness shares it.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.metadata
import inspect
import io
import json
import os
import re
import socket
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

if TYPE_CHECKING:
    from .contract import Lock

__all__ = [
    "BASE_REPOSITORY",
    "IMAGE_REPOSITORY",
    "ImageBuildError",
    "ONLINE_BASE",
    "RUNTIME_PRELOAD",
    "RUNTIME_REPOSITORY",
    "RUNTIME_SITE",
    "RuntimeImageMissing",
    "apt_mirror",
    "base_tag",
    "build_context",
    "build_image",
    "build_runtime_image",
    "connect",
    "context_files",
    "find_image",
    "image_status",
    "image_tag",
    "prune_images",
    "runtime_build_command",
    "runtime_tag",
]

IMAGE_REPOSITORY = "toolcrib-sandbox"
BASE_REPOSITORY = "toolcrib-sandbox-base"
ONLINE_BASE = "python:3.11-slim"
# Bumped by hand when the way the context is laid out changes.
_RECIPE_VERSION = "toolcrib-sandbox-image/1"
_BASE_RECIPE = "debootstrap --variant=minbase --include=python3 bookworm"
_SANDBOX_DIR = Path(__file__).resolve().parent
# What the image holds of toolcrib: the inside of the sandbox (stdlib and
# RestrictedPython only), never the host side beside this file.
_INSIDE_DIR = _SANDBOX_DIR / "inside"
_IN_IMAGE_PACKAGE = "opt/toolcrib/tcbox"
_IN_IMAGE_LIB = "opt/toolcrib/lib"
RUNTIME_REPOSITORY = "toolcrib-runtime"
# Where a runtime image keeps the lock's site directory and the list of its
# import names (the harness reads both at start: `harness.main`).
RUNTIME_SITE = "/opt/toolcrib/site"
RUNTIME_PRELOAD = "/opt/toolcrib/preload.json"
# The runtime layer. Root only for the copy's permissions; the container runs
# as the same unprivileged user as the sandbox image. The thread caps keep
# OpenBLAS/OpenMP from starting a thread per core at import (the container's
# pids limit counts threads). compileall only fills in what pip's own
# byte-compilation left (the root file system is read-only at run time);
# a file that does not compile (a package's Python 2 test data) is left as is.
# Owners and modes are set in the context's tar (`_runtime_context`): a
# chmod here would copy the whole site into one more layer.
_RUNTIME_DOCKERFILE = b"""\
ARG BASE
FROM ${BASE}
USER 0:0
COPY site /opt/toolcrib/site
COPY preload.json /opt/toolcrib/preload.json
RUN python3 -m compileall -q -j 0 /opt/toolcrib/site > /dev/null 2>&1 || true
ENV OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
USER 65534:65534
"""

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
        path = _INSIDE_DIR / f"{name}.py"
        if not path.is_file():
            raise ImageBuildError(f"sandbox module {path} is missing")
        seen.append(name)
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    todo.append(node.module.split(".")[0])
                else:
                    todo.extend(a.name for a in node.names if (_INSIDE_DIR / f"{a.name}.py").is_file())
            elif isinstance(node, ast.ImportFrom) and node.level > 1:
                raise ImageBuildError(f"{path.name} imports from outside sandbox/inside")
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
        files[f"{_IN_IMAGE_PACKAGE}/{name}.py"] = (_INSIDE_DIR / f"{name}.py").read_bytes()
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


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _closes_its_own_client(timeout: int) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """For a function that takes ``client=None``: when no client is given,
    connect, pass that one, and close it (its connection pool to the
    engine) when the function returns; a caller's client stays open."""

    def wrap(fn: Callable[_P, _R]) -> Callable[_P, _R]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            bound = signature.bind(*args, **kwargs)
            if bound.arguments.get("client") is not None:
                return fn(*args, **kwargs)
            own = connect(timeout=timeout)
            bound.arguments["client"] = own
            try:
                return fn(*bound.args, **bound.kwargs)
            finally:
                own.close()

        return run

    return wrap


def check_engine_socket(timeout: float = 10.0) -> None:
    """Raise OSError unless the engine's Unix socket (``DOCKER_HOST``, else
    docker-py's default) accepts a connection; other hosts pass unchecked.

    docker-py's Unix connection does not close its socket when the connect
    fails, so asking it about a missing engine leaves a socket to the
    collector (a ResourceWarning). Checked here first, on a socket closed
    either way, docker-py is only asked once an engine listens."""
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if not host.startswith("unix://"):
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout)
        probe.connect(host.removeprefix("unix://"))


def connect(timeout: int = 60) -> Any:
    """A docker-py client; raises `ImageBuildError` when no engine answers."""
    try:
        import docker

        check_engine_socket(timeout)
        client = docker.from_env(timeout=timeout)
    except Exception as exc:  # any failure means "no engine"
        raise ImageBuildError(f"no Docker engine answers: {_one_line(exc)}") from exc
    try:
        client.ping()
        return client
    except Exception as exc:  # any failure means "no engine"
        client.close()  # its connection pool: nobody else will close it
        raise ImageBuildError(f"no Docker engine answers: {_one_line(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def find_image(client: Any, tag: str) -> dict[str, Any] | None:
    """The engine's inspect record of the image, or None if absent."""
    import docker.errors

    try:
        record: dict[str, Any] = client.api.inspect_image(tag)
    except docker.errors.ImageNotFound:
        return None
    return record


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
        uris: list[str] = re.findall(r"^URIs:\s*(\S+)", text, re.M)
        uris += re.findall(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", text, re.M)
        for uri in uris:
            if "security" not in uri and "debian" in uri:
                return uri
    return "http://deb.debian.org/debian"


def _stream_build(
    client: Any, context: bytes | io.BufferedReader, tag: str, base: str, labels: dict[str, str], progress: Progress
) -> None:
    import docker.errors

    try:
        stream = client.api.build(
            fileobj=io.BytesIO(context) if isinstance(context, bytes) else context,
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
        except Exception as exc:  # engine errors become one line
            raise ImageBuildError(f"importing the offline base failed: {_one_line(exc)}") from exc
    if find_image(client, tag) is None:
        raise ImageBuildError(f"the engine did not record {tag} after the import")
    return tag


@_closes_its_own_client(timeout=600)
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
    assert client is not None  # given, or connected by the decorator
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


class RuntimeImageMissing(ImageBuildError):
    """A version's runtime image is not built and building was not allowed
    (``--no-build``); the message names the command that builds it."""

    def __init__(self, tag: str, command: str) -> None:
        super().__init__(f"the runtime image {tag} for this version's packages is missing: run `{command}`")
        self.tag = tag
        self.command = command


def runtime_tag(lock: Lock, base: str) -> str:
    """``toolcrib-runtime:<lock digest, 16>-<sandbox image hash>``: the image
    that runs versions with this lock on this harness."""
    return f"{RUNTIME_REPOSITORY}:{lock.digest()[:16]}-{base.partition(':')[2] or 'latest'}"


def runtime_build_command(lock: Lock) -> str:
    """The CLI command that builds the runtime image for this lock's requirements."""
    import shlex

    return "toolcrib image build " + " ".join(f"--requires {shlex.quote(r)}" for r in lock.requirements)


def _runtime_context(site: Path, lock: Lock, archive: Path) -> None:
    """The runtime layer's build context as a tar file on disk (a site
    directory with numpy and pandas is some hundreds of MiB)."""

    def normal(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        # Regular files, directories and symlinks inside the site only;
        # owner root, readable by all, writable by none but root, no set-id
        # bits. Timestamps are kept: pip's .pyc files are checked against
        # their sources' mtimes.
        if not (info.isfile() or info.isdir() or info.issym()):
            return None
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mode = 0o755 if info.isdir() or info.mode & 0o111 else 0o644
        return info

    preload = json.dumps({"imports": list(lock.imports), "lock": lock.digest()}).encode()
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("Dockerfile", _RUNTIME_DOCKERFILE), ("preload.json", preload)):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
        tar.add(site, arcname="site", filter=normal)


@_closes_its_own_client(timeout=600)
def build_runtime_image(
    lock: Lock,
    client: Any | None = None,
    *,
    base: str | None = None,
    site: Path | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Build (unless present) the runtime image for `lock` on top of the
    sandbox image `base` (default: this install's tag, which must exist);
    returns its status. The site directory is `packages.materialize(lock)`
    unless given. The build has no network. Raises `ImageBuildError`."""
    say = progress or (lambda _line: None)
    assert client is not None  # given, or connected by the decorator
    base = base or image_tag()
    if find_image(client, base) is None:
        raise ImageBuildError(f"the sandbox image {base} is missing: run `toolcrib image build --offline` first")
    tag = runtime_tag(lock, base)
    if not force and find_image(client, tag) is not None:
        say(f"{tag} is present")
        return image_status(client, tag)
    if site is None:
        from .packages import PackagesError, materialize

        try:
            site = materialize(lock, progress=say)
        except PackagesError as exc:
            raise ImageBuildError(str(exc)) from exc
    say(f"building {tag} on {base} ({', '.join(lock.requirements) or 'no requirements'})")
    labels = {
        "toolcrib.sandbox.image": "1",
        "toolcrib.runtime.lock": lock.digest(),
        "toolcrib.runtime.requirements": " ".join(lock.requirements),
        "toolcrib.image.base": base,
    }
    with tempfile.TemporaryDirectory(prefix="toolcrib-runtime-") as tmp:
        archive = Path(tmp) / "context.tar"
        _runtime_context(Path(site), lock, archive)
        with archive.open("rb") as context:
            _stream_build(client, context, tag, base, labels, say)
    if find_image(client, tag) is None:
        raise ImageBuildError(f"the engine did not record {tag} after the build")
    return image_status(client, tag)


@_closes_its_own_client(timeout=60)
def prune_images(client: Any | None = None, keep: str | None = None, *, runtime: bool = False) -> list[str]:
    """Untag sandbox images other than `keep` (default: this install's tag)
    and the runtime images (`build_runtime_image`) built on them; with
    ``runtime``, every runtime image (they are rebuilt from the wheel cache,
    offline, by the next call that needs one).

    Images any container still uses (e.g. another process's warm pool) are
    left alone; the cached offline base is kept. Returns the tags removed. Raises
    `ImageBuildError` when no engine answers.
    """
    import docker.errors

    assert client is not None  # given, or connected by the decorator
    keep = keep or image_tag()
    removed = []
    # A live backend (another process, an older install) keeps warm
    # containers created by tag: leave the tags in use alone.
    # (An image a container uses by id keeps its last tag anyway: the engine
    # refuses to remove it without force, and that refusal is skipped below.
    # Its other tags, such as an old alias of the current image, can go.)
    in_use = {c.get("Image") for c in client.api.containers(all=True)}
    images = client.api.images(name=IMAGE_REPOSITORY) + client.api.images(name=RUNTIME_REPOSITORY)
    for info in images:
        labels = info.get("Labels") or {}
        if "toolcrib.runtime.lock" in labels and labels.get("toolcrib.image.base") == keep and not runtime:
            continue
        for tag in info.get("RepoTags") or []:
            if tag == keep or tag in in_use:
                continue
            if not tag.startswith((f"{IMAGE_REPOSITORY}:", f"{RUNTIME_REPOSITORY}:")):
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
    if client is None:
        try:
            own = connect(timeout=10)
        except ImageBuildError as exc:
            status["error"] = str(exc)
            return status
        try:
            return image_status(own, tag)
        finally:
            own.close()
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
