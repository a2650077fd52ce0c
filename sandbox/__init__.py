"""toolcrib.sandbox: run one job of untrusted tool code and get JSON back.

Two backends honour one contract (`contract.py`):

- ``restricted`` (default): RestrictedPython in a fresh, OS-limited process
  forked per call from a warm zygote (`restricted.py`, `inside/zygote.py`).
- ``docker``: one throwaway, locked-down container per call (`docker.py`,
  its warm pool in `docker_pool.py`).

The modules here are the host side; `inside/` holds what runs in the jail or
the container (the standard library and RestrictedPython only). This package
knows nothing of the registry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, overload

if TYPE_CHECKING:  # at run time the contract's names come from __getattr__ below
    from .contract import LIMIT_NAMES, Backend, CallMode, ErrorInfo, Job, LimitName, Limits, Result, Status
    from .docker import DockerBackend
    from .restricted import RestrictedBackend

__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "CallMode",
    "ErrorInfo",
    "Job",
    "LIMIT_NAMES",
    "LimitName",
    "Limits",
    "Result",
    "Status",
    "close_backends",
    "get_backend",
    "run",
]

# The table of backends by name (name -> factory) is `backends.py`; these
# names are the production ones it holds.
from .backends import BACKEND_NAMES, close_shared, shared

# The contract (stdlib dataclasses, cheap) is still imported on first use
# (PEP 562): a CLI command that only needs BACKEND_NAMES for its --help loads nothing more.
_CONTRACT_NAMES = frozenset(
    {"LIMIT_NAMES", "Backend", "CallMode", "ErrorInfo", "Job", "LimitName", "Limits", "Result", "Status"}
)


def __getattr__(name: str) -> Any:
    if name not in _CONTRACT_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import contract

    value = getattr(contract, name)
    globals()[name] = value
    return value


@overload
def get_backend(name: Literal["restricted"], **options: Any) -> RestrictedBackend: ...
@overload
def get_backend(name: Literal["docker"], **options: Any) -> DockerBackend: ...
@overload
def get_backend(name: str | None = ..., **options: Any) -> Backend: ...


def get_backend(name: str | None = None, **options: Any) -> Backend:
    """The shared backend of that name (`backends.FACTORIES`), built on first use;
    None: this machine's default, as `run` (restricted where the Linux jail
    exists, else wasm: `default_backend`).

    Options are passed to the backend's factory the first time only.
    Raises ValueError for an unknown name.
    """
    if name is None:
        from .default_backend import default_backend

        name = default_backend()
    return shared(name, **options)


def run(job: Job, backend: str | None = None) -> Result:
    """Run one job on the named backend (None: this machine's default,
    restricted where the Linux jail exists, else wasm: `default_backend`)."""
    from .default_backend import default_backend

    return get_backend(backend or default_backend()).run(job)


def close_backends() -> None:
    """Stop every backend started by `get_backend` (zygotes, warm pools)."""
    close_shared()
