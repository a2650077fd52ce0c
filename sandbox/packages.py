"""Packages a version needs: requirements resolved once to exact wheels (a
`Lock`), and a lock turned into a site directory that holds exactly those
wheels, built offline from a local wheel cache.

pip does the resolving, downloading, hash checking and installing; this
module only runs it as a subprocess (``sys.executable -m pip``) and keeps the
cache. Downloads use the machine's own pip configuration (the package index it
reaches); installs never touch the network (``--no-index``, ``--isolated``,
exact wheel files with ``--require-hashes``).

Cache layout (``$TOOLCRIB_CACHE``, else ``~/.cache/toolcrib``)::

    wheels/<wheel filename>     every wheel any lock named (flat: pip's --find-links form)
    sites/<lock digest>/        a materialized lock (complete, or absent: built aside, renamed)

Standard library and the contract types only: the registry, the Docker
image builder and the restricted backend's per-lock zygotes all call it.
"""

from __future__ import annotations

import email.parser
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

from .contract import Lock, LockedPackage

__all__ = [
    "PackagesError",
    "cache_root",
    "check_requirement",
    "materialize",
    "resolve",
    "site_dir",
    "wheel_cache",
    "wheel_imports",
]

Progress = Callable[[str], None]

# A PEP 508 requirement without a direct reference: a name, optional extras,
# optional version specifiers, optional environment marker. No URLs, paths or
# pip options: a requirement names a package on the index the machine reaches
# and nothing else (a leading "-" would be an option to pip).
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_SPEC = r"(?:~=|===|==|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+"
_REQUIREMENT = re.compile(
    rf"^{_NAME}\s*(?:\[\s*{_NAME}(?:\s*,\s*{_NAME})*\s*\])?\s*"
    rf"(?:\(?\s*{_SPEC}(?:\s*,\s*{_SPEC})*\s*\)?)?\s*"
    r"(?:;\s*[A-Za-z0-9_ .'\"<>=!~(),-]+)?$"
)
# pip's own subprocesses: long enough for a large wheel on a slow link, short
# enough that a hung index is an error rather than a hung `add`.
_PIP_TIMEOUT = 1800.0


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
    if not text or not _REQUIREMENT.match(text):
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
    except (zipfile.BadZipFile, OSError) as exc:
        raise PackagesError(f"{path.name}: not a readable wheel: {exc}") from None
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


def resolve(requirements: Sequence[str], *, progress: Progress | None = None) -> Lock:
    """Resolve requirements to exact wheels for this interpreter with pip
    (``pip download --only-binary=:all:`` from the index the machine reaches),
    keep the wheels in the cache and return the lock: every wheel's name,
    version, filename and sha256, and the import names they provide."""
    wanted = sorted({check_requirement(r) for r in requirements})
    if not wanted:
        raise PackagesError("no requirements to resolve")
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
            name, version, members = _wheel_metadata(wheel)
            packages.append(LockedPackage(name=name, version=version, filename=wheel.name, sha256=_sha256(wheel)))
            imports.update(wheel_imports(members))
            os.replace(wheel, cache / wheel.name)
        stray = [p.name for p in Path(tmp).iterdir() if not p.name.endswith(".whl")]
        if stray:
            raise PackagesError(f"pip saved files that are not wheels: {', '.join(sorted(stray))}")
    if not packages:
        raise PackagesError(f"pip resolved {', '.join(wanted)} to no wheels")
    packages.sort(key=lambda p: (p.name.lower(), p.filename))
    _say(progress, f"locked {len(packages)} wheel(s): " + ", ".join(f"{p.name}=={p.version}" for p in packages))
    python = f"cp{sys.version_info.major}{sys.version_info.minor}"
    return Lock(requirements=tuple(wanted), packages=tuple(packages), imports=tuple(sorted(imports)), python=python)


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
    from the cache is downloaded first by exact version and hash. Built in a
    temporary directory inside the cache and renamed, so the directory either
    is complete or does not exist."""
    final = site_dir(lock)
    if final.is_dir():
        return final
    cache = wheel_cache()
    _fetch_missing(lock, cache, progress)
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
                "--isolated", "install", "--no-index", "--no-deps", "--require-hashes",
                "--no-warn-script-location", "--target", str(target), "-r", str(reqs),
            ],
            what=f"cannot install lock {lock.digest()[:12]}",
        )
        try:
            os.rename(target, final)
        except OSError:
            # Another process finished the same lock first: theirs is as good.
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final
