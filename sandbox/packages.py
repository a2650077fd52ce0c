"""Packages a version needs: requirements resolved once to exact wheels (a
`Lock`), and a lock turned into a site directory that holds exactly those
wheels, built offline from a local wheel cache.

pip does the resolving, downloading, hash checking and installing; this
module runs it as a subprocess (``sys.executable -m pip``), keeps the cache,
and checks what pip does not: each wheel's members against its own RECORD
(`check_wheel`), the lock's imports against the wheels' modules, and, after
the install, a site directory without ``.pth`` files or scripts, read-only.
Downloads use the machine's own pip configuration (the package index it
reaches); installs never touch the network (``--no-index``, ``--isolated``,
exact wheel files with ``--require-hashes``). No package code runs here:
wheels only, nothing built, nothing imported.

Cache layout (``$TOOLCRIB_CACHE``, else ``~/.cache/toolcrib``)::

    wheels/<wheel filename>     every wheel any lock named (flat: pip's --find-links form)
    sites/<lock digest>/        a materialized lock (complete, or absent: built aside, renamed)

Standard library and the contract types only: the registry, the Docker
image builder and the restricted backend's per-lock zygotes all call it.
"""

from __future__ import annotations

import base64
import csv
import email.parser
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

from .contract import Lock, LockedPackage, canonical_version, is_requirement, lock_import_problem, normalized_name

__all__ = [
    "LOCK_TTL_ENV",
    "PackagesError",
    "cache_root",
    "check_requirement",
    "check_wheel",
    "materialize",
    "resolve",
    "site_dir",
    "wheel_cache",
    "wheel_imports",
]

Progress = Callable[[str], None]

# pip's own subprocesses: long enough for a large wheel on a slow link, short
# enough that a hung index is an error rather than a hung `add`.
_PIP_TIMEOUT = 1800.0


# What zipfile raises for a wheel it cannot read: corrupt streams, bad
# headers, unsupported or encrypted members.
_UNREADABLE = (zipfile.BadZipFile, OSError, RuntimeError, EOFError, NotImplementedError, ValueError, zlib.error)


class PackagesError(Exception):
    """Requirements could not be resolved, downloaded or installed. The
    message is one line, fit to show a user."""


def cache_root() -> Path:
    """``$TOOLCRIB_CACHE``, else ``~/.cache/toolcrib``."""
    env = os.environ.get("TOOLCRIB_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "toolcrib"


def wheel_cache() -> Path:
    """The flat directory of downloaded wheels (created on first use)."""
    path = cache_root() / "wheels"
    path.mkdir(parents=True, exist_ok=True)
    return path


def site_dir(lock: Lock) -> Path:
    """Where `materialize` puts this lock's site directory (it may not exist yet)."""
    return cache_root() / "sites" / lock.digest()


def check_requirement(requirement: str) -> str:
    """The requirement stripped, or PackagesError when it is not a plain
    PEP 508 requirement (no URL, path or pip option)."""
    text = requirement.strip()
    if not is_requirement(text):
        raise PackagesError(
            f"not a requirement: {requirement!r} (expected a package name with optional "
            "extras, versions and marker, e.g. 'sympy>=1.12'; no URLs, paths or options)"
        )
    return text


def _say(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)


def _pip(args: Sequence[str], *, what: str, env: dict[str, str] | None = None) -> None:
    """Run pip; on failure, PackagesError naming its most telling line."""
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=_PIP_TIMEOUT, env=env, check=False)
    except subprocess.TimeoutExpired:
        raise PackagesError(f"{what}: pip did not finish within {_PIP_TIMEOUT:.0f} s") from None
    except OSError as exc:
        raise PackagesError(f"{what}: cannot run pip: {exc}") from None
    if done.returncode != 0:
        raise PackagesError(f"{what}: {_pip_reason(done.stderr or done.stdout)}")


def _pip_reason(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    # pip's first ERROR line says what went wrong ("No matching distribution
    # found for ...", "THESE PACKAGES DO NOT MATCH THE HASHES ..."); the last
    # one is often a generic footer.
    chosen = errors[0] if errors else (lines[-1] if lines else "pip failed")
    chosen = chosen.removeprefix("ERROR:").strip()
    return chosen[:400]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _wheel_metadata(path: Path) -> tuple[str, str, list[str]]:
    """(name, version, member names) of a wheel, from its METADATA."""
    try:
        with zipfile.ZipFile(path) as whl:
            names = whl.namelist()
            meta = next((n for n in names if n.count("/") == 1 and n.endswith(".dist-info/METADATA")), None)
            if meta is None:
                raise PackagesError(f"{path.name}: not a wheel (no .dist-info/METADATA)")
            headers = email.parser.HeaderParser().parsestr(whl.read(meta).decode("utf-8", "replace"))
    except _UNREADABLE as exc:
        raise PackagesError(f"{path.name}: not a readable wheel: {' '.join(str(exc).split())[:200]}") from None
    name, version = headers.get("Name"), headers.get("Version")
    if not name or not version:
        raise PackagesError(f"{path.name}: METADATA has no Name or Version")
    return str(name), str(version), names


def wheel_imports(members: Sequence[str]) -> list[str]:
    """Top-level import names a wheel provides, from its member list (what
    its RECORD lists): top-level modules, extension modules and package
    directories, without metadata, data and byte-code folders. More exact
    than ``top_level.txt``, which setuptools writes and many wheels lack."""
    found: set[str] = set()
    for member in members:
        head, sep, _rest = member.partition("/")
        if sep:
            if head.endswith((".dist-info", ".data")) or head == "__pycache__":
                continue
            if member.endswith((".py", ".so", ".pyd", ".pyi")) or "/" in _rest:
                found.add(head)
        elif head.endswith((".py", ".so", ".pyd")):
            found.add(head.split(".", 1)[0])
    return sorted(name for name in found if name.isidentifier())


def _locked(wheel: Path) -> LockedPackage:
    """The lock entry of a downloaded wheel: its METADATA name and normalized
    version, file name and hash (the contract refuses anything malformed,
    e.g. a file name that names another distribution)."""
    name, version, _members = _wheel_metadata(wheel)
    canonical = canonical_version(version)
    if canonical is None:
        raise PackagesError(f"{wheel.name}: METADATA version is not a PEP 440 version: {version[:80]!r}")
    try:
        return LockedPackage(name=name, version=canonical, filename=wheel.name, sha256=_sha256(wheel))
    except ValueError as exc:
        raise PackagesError(f"{wheel.name}: {exc}") from None


def _lock_imports(members: Sequence[str]) -> list[str]:
    """The import names a lock may record for a wheel with these members: its
    top-level modules, less any a lock cannot name (a wheel that ships a
    module named like the standard library's shadows nothing, since the site
    directory comes after the standard library on the path, and is never
    preloaded)."""
    return [name for name in wheel_imports(members) if not lock_import_problem(name)]


# How long a resolution is reused for the same requirement set (seconds):
# $TOOLCRIB_LOCK_TTL, default a day; 0 resolves every time.
LOCK_TTL_ENV = "TOOLCRIB_LOCK_TTL"
_DEFAULT_LOCK_TTL = 86400.0
_MAX_CACHED_LOCK_BYTES = 1 << 20


def _lock_ttl() -> float:
    try:
        return max(0.0, float(os.environ.get(LOCK_TTL_ENV, _DEFAULT_LOCK_TTL)))
    except ValueError:
        return _DEFAULT_LOCK_TTL


def _resolution_path(wanted: Sequence[str], python: str) -> Path:
    key = hashlib.sha256("\n".join([python, *wanted]).encode()).hexdigest()
    return cache_root() / "resolutions" / f"{key}.json"


def _cached_resolution(wanted: Sequence[str], python: str) -> Lock | None:
    """The lock this requirement set resolved to within the TTL, for this
    interpreter; None when there is none, it is stale, or it does not read
    back as the same lock (the file is parsed like any input)."""
    ttl = _lock_ttl()
    path = _resolution_path(wanted, python)
    if not ttl:
        return None
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_CACHED_LOCK_BYTES:
            return None
        if time.time() - info.st_mtime > ttl:
            return None
        lock = Lock.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if list(lock.requirements) != list(wanted) or lock.python != python:
        return None
    return lock


def _remember_resolution(lock: Lock) -> None:
    path = _resolution_path(lock.requirements, lock.python)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.partial")
        tmp.write_text(json.dumps(lock.to_json(), sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a cache: resolving again next time is the cost


def resolve(requirements: Sequence[str], *, progress: Progress | None = None) -> Lock:
    """Resolve requirements to exact wheels for this interpreter with pip
    (``pip download --only-binary=:all:`` from the index the machine reaches),
    keep the wheels in the cache and return the lock: every wheel's name,
    version, filename and sha256, and the import names they provide.

    The same requirement set resolved within ``$TOOLCRIB_LOCK_TTL`` seconds
    (default a day; 0: never) gives the same lock without pip (a bulk `add`
    of a library resolves its shared requirements once, in any process);
    its wheels are fetched by exact hash if the cache lost them."""
    wanted = sorted({check_requirement(r) for r in requirements})
    if not wanted:
        raise PackagesError("no requirements to resolve")
    python = f"cp{sys.version_info.major}{sys.version_info.minor}"
    known = _cached_resolution(wanted, python)
    if known is not None:
        _say(progress, f"{', '.join(wanted)}: resolved before, reusing its lock ({len(known.packages)} wheel(s))")
        return known
    lock = _resolve(wanted, python, progress)
    _remember_resolution(lock)
    return lock


def _resolve(wanted: Sequence[str], python: str, progress: Progress | None) -> Lock:
    cache = wheel_cache()
    _say(progress, f"resolving {', '.join(wanted)}")
    # A fresh directory holds exactly the resolved set (pip download saves
    # every wheel of the resolution, dependencies included); it sits inside the
    # cache so moving its wheels in is a rename.
    with tempfile.TemporaryDirectory(prefix=".resolve-", dir=cache) as tmp:
        _pip(
            ["download", "--only-binary=:all:", "--dest", tmp, "--", *wanted],
            what=f"cannot resolve {', '.join(wanted)}",
        )
        packages: list[LockedPackage] = []
        imports: set[str] = set()
        for wheel in sorted(Path(tmp).glob("*.whl")):
            package = _locked(wheel)
            # Checked here too, not only at install: a wheel that is not what
            # its RECORD says is refused at `add`, before anything is stored.
            members = check_wheel(wheel, package)
            packages.append(package)
            imports.update(_lock_imports(members))
            os.replace(wheel, cache / wheel.name)
        stray = [p.name for p in Path(tmp).iterdir() if not p.name.endswith(".whl")]
        if stray:
            raise PackagesError(f"pip saved files that are not wheels: {', '.join(sorted(stray))}")
    if not packages:
        raise PackagesError(f"pip resolved {', '.join(wanted)} to no wheels")
    packages.sort(key=lambda p: (p.name.lower(), p.filename))
    _say(progress, f"locked {len(packages)} wheel(s): " + ", ".join(f"{p.name}=={p.version}" for p in packages))
    try:
        return Lock(requirements=tuple(wanted), packages=tuple(packages), imports=tuple(sorted(imports)), python=python)
    except ValueError as exc:
        raise PackagesError(str(exc)) from None


def _fetch_missing(lock: Lock, cache: Path, progress: Progress | None) -> None:
    """Download, by exact version and hash, every locked wheel the cache lacks;
    refuse a cached wheel whose bytes are not the locked ones."""
    missing: list[LockedPackage] = []
    for pkg in lock.packages:
        path = cache / pkg.filename
        if not path.exists():
            missing.append(pkg)
            continue
        actual = _sha256(path)
        if actual != pkg.sha256:
            raise PackagesError(
                f"cached wheel {pkg.filename} does not match the lock (sha256 {actual[:12]}…, "
                f"locked {pkg.sha256[:12]}…): remove {path} to download it again"
            )
    if not missing:
        return
    _say(progress, "downloading " + ", ".join(p.filename for p in missing))
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=cache) as tmp:
        reqs = Path(tmp) / "requirements.txt"
        reqs.write_text("".join(f"{p.name}=={p.version} --hash=sha256:{p.sha256}\n" for p in missing))
        dest = Path(tmp) / "dl"
        _pip(
            ["download", "--only-binary=:all:", "--no-deps", "--require-hashes", "--dest", str(dest), "-r", str(reqs)],
            what="cannot download the locked wheels",
        )
        for pkg in missing:
            got = dest / pkg.filename
            if not got.exists():
                raise PackagesError(f"the index no longer serves {pkg.filename} (the lock's exact wheel)")
            os.replace(got, cache / pkg.filename)


def materialize(lock: Lock, *, progress: Progress | None = None) -> Path:
    """A site directory with exactly the locked wheels installed, keyed by
    ``lock.digest()`` and reused once built. The install is offline (only the
    cached wheel files, each checked against its locked hash); a wheel missing
    from the cache is downloaded first by exact version and hash. Before
    installing, every wheel is checked against its own RECORD and every
    ``lock.imports`` name against the wheels' modules (`check_wheel`); after,
    ``.pth`` files and console scripts are removed and the directory is made
    read-only. Built in a temporary directory inside the cache and renamed,
    so the directory either is complete or does not exist."""
    final = site_dir(lock)
    if final.is_dir():
        _check_site_imports(lock, final)
        return final
    cache = wheel_cache()
    _fetch_missing(lock, cache, progress)
    _check_wheels(lock, cache)
    final.parent.mkdir(parents=True, exist_ok=True)
    _say(progress, f"installing {len(lock.packages)} wheel(s) into {final}")
    work = Path(tempfile.mkdtemp(prefix=f".build-{lock.digest()[:12]}-", dir=final.parent))
    try:
        reqs = work / "requirements.txt"
        reqs.write_text("".join(f"{cache / p.filename} --hash=sha256:{p.sha256}\n" for p in lock.packages))
        target = work / "site"
        # --isolated: no pip configuration or PIP_* variable can add an index
        # or a find-links location; --no-index: nothing is fetched.
        _pip(
            [
                "--isolated",
                "install",
                "--no-index",
                "--no-deps",
                "--require-hashes",
                "--no-warn-script-location",
                "--target",
                str(target),
                "-r",
                str(reqs),
            ],
            what=f"cannot install lock {lock.digest()[:12]}",
        )
        _strip_site(target, lock)
        _read_only(target, top=False)
        try:
            os.rename(target, final)
        except OSError:
            # Another process finished the same lock first: theirs is as good.
            if not final.is_dir():
                raise
        else:
            _read_only(final, top=True)
    finally:
        if work.exists():
            _writable(work)
            shutil.rmtree(work, ignore_errors=True)
    return final


# -- the checks and clean-up around an install -------------------------------------

# Members of a wheel that RECORD does not hash (the wheel spec): RECORD itself
# and its signatures.
_UNHASHED = ("RECORD", "RECORD.jws", "RECORD.p7s")
# RECORD hashes a checker accepts: the wheel spec's "sha256 or better".
_MAX_RECORD = 64 << 20
_RECORD_HASHES = frozenset({"sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512", "blake2b", "blake2s"})


def _check_wheels(lock: Lock, cache: Path) -> None:
    """Every locked wheel agrees with its own RECORD (`check_wheel`), and
    every name in ``lock.imports`` is a module one of them provides: the
    lock zygote imports those names, and nothing else may answer to them."""
    provided: set[str] = set()
    for pkg in lock.packages:
        provided.update(wheel_imports(check_wheel(cache / pkg.filename, pkg)))
    for name in lock.imports:
        if name not in provided:
            raise PackagesError(f"lock imports {name!r}, which none of its wheels provides")


def check_wheel(path: Path, pkg: LockedPackage) -> list[str]:
    """The member names of a wheel, after checking it is what it says: member
    paths relative and inside the archive (no "..", no absolute path, no
    backslash, no symlink, no name twice), one ``.dist-info`` of this
    package, and every member listed in its RECORD with a matching hash and
    size (RECORD and its signatures excepted, as the wheel spec says), and
    nothing listed that the archive lacks. PackagesError names the first
    problem. pip installs a wheel without this check; this is what makes the
    installed files exactly the ones the wheel's author recorded."""
    label = pkg.filename
    try:
        with zipfile.ZipFile(path) as whl:
            for info in whl.infolist():
                _check_member(label, info)
            infos = [i for i in whl.infolist() if not i.filename.endswith("/")]
            names = [i.filename for i in infos]
            if len(set(names)) != len(names):
                raise PackagesError(f"{label}: a member appears twice in the archive")
            record_name = _record_name(label, names, pkg)
            with whl.open(record_name) as record:
                # Read capped: a RECORD is some KiB to a few MiB (torch's);
                # a compressed one of gigabytes is a bomb, not a manifest.
                raw = record.read(_MAX_RECORD + 1)
            if len(raw) > _MAX_RECORD:
                raise PackagesError(f"{label}: RECORD is larger than {_MAX_RECORD >> 20} MiB")
            recorded = _read_record(label, raw.decode("utf-8", "replace"))
            unhashed = {f"{record_name.rpartition('/')[0]}/{n}" for n in _UNHASHED}
            for info in infos:
                if info.filename not in unhashed:
                    _check_recorded(label, whl, info, recorded.pop(info.filename, None))
    except _UNREADABLE as exc:
        raise PackagesError(f"{label}: not a readable wheel: {' '.join(str(exc).split())[:200]}") from None
    leftover = sorted(set(recorded) - unhashed)
    if leftover:
        raise PackagesError(f"{label}: RECORD lists {leftover[0][:120]!r}, which the wheel does not contain")
    return names


def _check_member(label: str, info: zipfile.ZipInfo) -> None:
    name = info.filename
    parts = name.removesuffix("/").split("/")
    if (
        name.startswith("/")
        or "\\" in name
        or "\0" in name
        or ".." in parts
        or "" in parts
        or (len(name) > 1 and name[1] == ":")
    ):
        raise PackagesError(f"{label}: member {name[:120]!r} is not a plain relative path")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise PackagesError(f"{label}: member {name[:120]!r} is a symbolic link")


def _record_name(label: str, names: Sequence[str], pkg: LockedPackage) -> str:
    """The path of the wheel's RECORD: in its one top-level ``.dist-info``
    directory, which names this package."""
    dist_infos = {n.partition("/")[0] for n in names if n.partition("/")[0].endswith(".dist-info")}
    if len(dist_infos) != 1:
        raise PackagesError(f"{label}: a wheel has exactly one .dist-info directory, this one has {len(dist_infos)}")
    dist_info = dist_infos.pop()
    if not _names_package(dist_info[: -len(".dist-info")], pkg):
        raise PackagesError(f"{label}: its metadata directory {dist_info[:120]!r} is not {pkg.name} {pkg.version}")
    record = f"{dist_info}/RECORD"
    if record not in names:
        raise PackagesError(f"{label}: no {record}")
    return record


def _names_package(stem: str, pkg: LockedPackage) -> bool:
    """Whether ``{name}-{version}`` (a .dist-info directory's stem) is this
    package. The spec escapes "-" in both parts as "_"; some wheels do not,
    so every "-" is tried as the separator (normalized forms compared; the
    length cap keeps that linear in practice)."""
    if len(stem) > 400:
        return False
    for index, char in enumerate(stem):
        if char == "-" and normalized_name(stem[:index]) == normalized_name(pkg.name):
            if canonical_version(stem[index + 1 :].replace("_", "-")) == pkg.version:
                return True
    return False


def _read_record(label: str, text: str) -> dict[str, tuple[str, str]]:
    """RECORD's rows: path -> (hash, size)."""
    recorded: dict[str, tuple[str, str]] = {}
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise PackagesError(f"{label}: RECORD is not CSV: {exc}") from None
    for row in rows:
        if not row:
            continue
        if len(row) != 3:
            raise PackagesError(f"{label}: RECORD row {row[0][:120]!r} does not have 3 fields")
        if row[0] in recorded:
            raise PackagesError(f"{label}: RECORD lists {row[0][:120]!r} twice")
        recorded[row[0]] = (row[1], row[2])
    return recorded


def _check_recorded(label: str, whl: zipfile.ZipFile, info: zipfile.ZipInfo, entry: tuple[str, str] | None) -> None:
    """One member against its RECORD row: hashed with sha256 or better, the
    same digest and the same size."""
    name = info.filename[:120]
    if entry is None:
        raise PackagesError(f"{label}: member {name!r} is not listed in RECORD")
    algorithm, _sep, expected = entry[0].partition("=")
    if algorithm not in _RECORD_HASHES or not expected:
        raise PackagesError(f"{label}: RECORD has no sha256 (or better) hash for {name!r}")
    digest = hashlib.new(algorithm)
    size = 0
    with whl.open(info) as member:
        for chunk in iter(lambda: member.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    # The spec's encoding is urlsafe base64 without padding; a few wheels
    # (gmsh's) write the hex digest instead: the same digest, so accepted.
    actual = {base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode(), digest.hexdigest()}
    if expected.rstrip("=") not in actual:
        raise PackagesError(f"{label}: member {name!r} does not match the hash RECORD gives for it")
    if entry[1] and entry[1] != str(size):
        raise PackagesError(f"{label}: member {name!r} has {size} bytes, RECORD says {entry[1][:20]!r}")


def _check_site_imports(lock: Lock, site: Path) -> None:
    """A site directory built earlier still provides every import the lock
    names (a directory, a module or an extension module of that name)."""
    for name in lock.imports:
        if not (
            (site / name).is_dir()
            or (site / f"{name}.py").is_file()
            or any(p.suffix in (".so", ".pyd") for p in site.glob(f"{name}.*"))
        ):
            raise PackagesError(f"lock imports {name!r}, which its site directory does not provide")


def _strip_site(target: Path, lock: Lock) -> None:
    """Remove what an installed site never needs and could run outside a
    jail if another interpreter ever took the directory for a site: ``.pth``
    files (run by ``site`` at start-up; the zygote runs ``-I -S`` and adds the
    directory with ``sys.path``, so they would be inert there anyway) and the
    console scripts pip writes to ``bin/`` (entry points: nothing runs them)."""
    for pth in target.glob("*.pth"):
        pth.unlink()
    scripts = target / "bin"
    if "bin" not in lock.imports and scripts.is_dir() and not (scripts / "__init__.py").exists():
        shutil.rmtree(scripts)


def _read_only(root: Path, *, top: bool) -> None:
    """chmod a-w every file and directory under `root` (and `root` itself
    when `top`): a built site is never changed by any later process. The top
    directory is done last, after its rename (moving a directory to another
    parent rewrites its ``..``, which needs write access to it)."""
    for path in root.rglob("*"):
        _chmod(path, lambda mode: mode & ~0o222)
    if top:
        _chmod(root, lambda mode: mode & ~0o222)


def _writable(root: Path) -> None:
    """chmod u+w a tree again (a failed build is removed)."""
    _chmod(root, lambda mode: mode | stat.S_IWUSR)
    for path in root.rglob("*"):
        _chmod(path, lambda mode: mode | stat.S_IWUSR)


def _chmod(path: Path, change: Callable[[int], int]) -> None:
    info = path.lstat()
    if not stat.S_ISLNK(info.st_mode):
        path.chmod(stat.S_IMODE(change(info.st_mode)))
