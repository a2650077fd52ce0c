"""The backends by name: one table, name -> factory.

Adding a backend is one module in `sandbox/` (a class that keeps the
`contract.Backend` promise) and one line in `FACTORIES`; the shared contract
suite (tests/sandbox/test_contract.py) then runs against it, as the `backend` fixture
takes its names from this table. Nothing else asks a backend's name: callers
ask the backend itself (`default_policy`, `prepare`, `start`, `health`).

Two ways to run on something else than the shared backends, in the manner of
httpx's ``transport=``:

- injection: ``Registry(path, backends={"restricted": FakeBackend()})``
  (an instance, which its owner closes, or a factory, called once and closed
  with the registry); `Backends` is what the registry holds;
- the table itself, for a test of a whole door (the CLI, the MCP server):
  ``with backends.registered("restricted", FakeBackend()): ...`` puts an
  entry in place for the block and restores the table after.

The fake (`sandbox/fake.py`) is not in the production table: the CLI's
``--backend`` choices are `BACKEND_NAMES`, the names this table has at import.

Factories import their backend on first use, so importing this module (the
call path does) costs nothing but the standard library.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    from .contract import Backend, Lock

__all__ = [
    "BACKEND_NAMES",
    "FACTORIES",
    "BackendFactory",
    "Backends",
    "ExtraMissing",
    "Injected",
    "LockUnsupported",
    "close_shared",
    "lock_problem",
    "register",
    "registered",
    "shared",
    "unregister",
]

BackendFactory = Callable[..., "Backend"]


class LockUnsupported(RuntimeError):
    """A backend cannot run a version's packages: raised by its `prepare`
    (before any case or call runs), with the one-line reason of
    `lock_problem`, which names the backends that can."""


class ExtraMissing(RuntimeError):
    """A backend's optional part is not installed (``ray``, ``wasmtime``):
    raised by its factory or its `start`, with the pip command in the
    message; the registry turns it into its `ExtraMissing` (exit 7)."""


# What a registry may be given per name: a backend, or a factory of one.
Injected = Union["Backend", BackendFactory]


# Set to 1, this user's warm sandbox service runs the restricted backend's
# calls (sandbox/service.py, imported only then: the call path stays short).
SERVICE_ENV = "TOOLCRIB_SANDBOX_SERVICE"


def _restricted(**options: Any) -> Backend:
    if os.environ.get(SERVICE_ENV, "") == "1":
        from . import service

        return service.ServiceBackend(**options)
    from .restricted import RestrictedBackend

    return RestrictedBackend(**options)


def _docker(**options: Any) -> Backend:
    from .docker import DockerBackend

    return DockerBackend(**options)


def _ray(**options: Any) -> Backend:
    from .ray_backend import RayBackend

    return RayBackend(**options)


def _wasm(**options: Any) -> Backend:
    from .wasm import WasmBackend

    return WasmBackend(**options)


FACTORIES: dict[str, BackendFactory] = {
    "restricted": _restricted,
    "docker": _docker,
    "ray": _ray,
    "wasm": _wasm,
}


def _wasm_lock_problem(lock: Lock) -> str | None:
    from .wasm import lock_problem as wasm_lock_problem

    return wasm_lock_problem(lock)


# What a backend knows of a lock without being started (the guest's
# built-in packages, the wheels' platform tags): name -> why it cannot run
# it. A name without an entry finds out at the call (or in `prepare`).
LOCK_CHECKS: dict[str, Callable[[Lock], str | None]] = {"wasm": _wasm_lock_problem}


def lock_problem(name: str, lock: Lock) -> str | None:
    """Why backend `name` cannot run `lock`, one line naming the backends
    that can; None when it can, or cannot tell before the call."""
    check = LOCK_CHECKS.get(name)
    return None if check is None else check(lock)


# The production names, fixed at import: what the CLI and `toolcrib serve`
# offer. A name registered later (a test's) is callable through the Python
# API and injection only.
BACKEND_NAMES: tuple[str, ...] = tuple(FACTORIES)

_shared: dict[str, Backend] = {}
_lock = threading.Lock()


def _unknown(name: str) -> ValueError:
    return ValueError(f"unknown backend {name!r} (choose from {', '.join(FACTORIES)})")


def shared(name: str = "restricted", **options: Any) -> Backend:
    """The shared backend of that name, built by its factory on first use.

    Options are passed to the factory the first time only. Raises ValueError
    for a name the table does not have.
    """
    with _lock:
        backend = _shared.get(name)
        if backend is None:
            factory = FACTORIES.get(name)
            if factory is None:
                raise _unknown(name)
            backend = factory(**options)
            _shared[name] = backend
        return backend


def close_shared() -> None:
    """Stop every shared backend (zygotes, warm pools); a later `shared` builds anew."""
    with _lock:
        backends = list(_shared.values())
        _shared.clear()
    for backend in backends:
        backend.close()


def register(name: str, factory: BackendFactory) -> None:
    """Put `factory` in the table under `name` (replacing an entry of that
    name, whose shared backend, if built, is closed)."""
    if not name or not isinstance(name, str):
        raise ValueError("a backend's name is a non-empty string")
    with _lock:
        FACTORIES[name] = factory
        old = _shared.pop(name, None)
    if old is not None:
        old.close()


def unregister(name: str) -> None:
    """Take `name` out of the table (closing its shared backend, if built)."""
    with _lock:
        FACTORIES.pop(name, None)
        old = _shared.pop(name, None)
    if old is not None:
        old.close()


def _factory_of(entry: Injected) -> tuple[BackendFactory, bool]:
    """(a factory, whether what it builds is ours to close). A class or a
    plain function is a factory; an object with `run` is a backend, its
    owner's to close."""
    if isinstance(entry, type) or not hasattr(entry, "run"):
        return entry, True
    backend: Backend = entry  # type: ignore[assignment]  # checked by hasattr above
    return (lambda **_options: backend), False


@contextmanager
def registered(name: str, entry: Injected) -> Iterator[None]:
    """For tests of a whole door: `name` is served by `entry` (a backend or a
    factory) while the block runs; the table and the shared backend of that
    name are restored after (one the factory built is closed)."""
    factory, owned = _factory_of(entry)
    with _lock:
        old_factory = FACTORIES.get(name)
        old_shared = _shared.pop(name, None)
        FACTORIES[name] = factory
    try:
        yield
    finally:
        with _lock:
            built = _shared.pop(name, None)
            if old_factory is None:
                FACTORIES.pop(name, None)
            else:
                FACTORIES[name] = old_factory
            if old_shared is not None:
                _shared[name] = old_shared
        if built is not None and owned:
            built.close()


class Backends:
    """Where a registry gets its backends: the injected ones first (a
    backend, used as given; a factory, called once on first use), else the
    shared ones of the table. ``Backends()`` is the default: the table only.
    """

    def __init__(self, injected: Mapping[str, Injected] | None = None) -> None:
        self._injected: dict[str, tuple[BackendFactory, bool]] = {
            name: _factory_of(entry) for name, entry in (injected or {}).items()
        }
        self._built: dict[str, Backend] = {}
        self._owned: list[Backend] = []
        self._lock = threading.Lock()

    def get(self, name: str) -> Backend:
        """The backend called `name`; ValueError if neither the injected
        ones nor the table has it."""
        if name not in self._injected:
            return shared(name)
        with self._lock:
            backend = self._built.get(name)
            if backend is None:
                factory, owned = self._injected[name]
                backend = factory()
                self._built[name] = backend
                if owned:
                    self._owned.append(backend)
            return backend

    def close(self) -> None:
        """Close the backends this object built from injected factories (not
        the shared ones, nor instances given to it: those have other owners)."""
        with self._lock:
            owned, self._owned = self._owned, []
            self._built.clear()
        for backend in owned:
            backend.close()
