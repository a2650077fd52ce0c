"""Which backend a call gets when it names none, and whether the Linux jail exists.

The restricted backend's jail stands on Linux (Landlock, seccomp,
namespaces). Where it does not exist (macOS, Windows, a Linux kernel
without Landlock) the default backend is ``wasm``: CPython for WASI on
wasmtime, whose walls need nothing from the kernel. The order:

1. ``$TOOLCRIB_BACKEND`` or ``--backend`` (the CLI, ``toolcrib serve``,
   ``make``/``use``) or the Python API's ``backend=`` name one: that one.
2. Otherwise `default_backend()`: "restricted" where the Linux jail exists
   (or weak isolation is allowed, ``TOOLCRIB_ALLOW_WEAK_JAIL=1``), else
   "wasm". On a Linux without Landlock "wasm" only when its extra is
   installed (else "restricted", which then says which layer is missing);
   elsewhere "wasm" always, and a call without the extra exits 7 naming
   ``pip install 'toolcrib[wasm]'``.

``TOOLCRIB_NO_LINUX_JAIL=1`` reports the Linux jail unavailable, as on
macOS (`JAIL_OFF_ENV`): for testing every door through wasm on a Linux
machine. Then the default is "wasm", the wasm host runs in process (not
in the jail), and the restricted backend refuses every call as
unavailable (exit 6), so nothing can pass through it unseen.

Standard library only; the Landlock probe (`inside/jail.py`, Linux only)
is imported on Linux alone, once per process.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys

__all__ = ["JAIL_OFF_ENV", "configured_backend", "default_backend", "jail_reported_off", "linux_jail_available"]

JAIL_OFF_ENV = "TOOLCRIB_NO_LINUX_JAIL"
_WEAK_JAIL_ENV = "TOOLCRIB_ALLOW_WEAK_JAIL"  # restricted.WEAK_JAIL_ENV (not imported: the call path stays short)


def jail_reported_off() -> bool:
    """Whether ``$TOOLCRIB_NO_LINUX_JAIL=1`` reports the Linux jail unavailable."""
    return os.environ.get(JAIL_OFF_ENV, "") == "1"


@functools.lru_cache(maxsize=1)
def _landlock() -> bool:
    from .inside.jail import landlock_abi

    return landlock_abi() > 0


def linux_jail_available() -> bool:
    """Whether the Linux jail can be built here: Linux with Landlock, and not
    reported off (`JAIL_OFF_ENV`). Nothing Linux-only is imported elsewhere."""
    if jail_reported_off() or not sys.platform.startswith("linux"):
        return False
    return _landlock()


def _wasm_installed() -> bool:
    return importlib.util.find_spec("wasmtime") is not None


def default_backend() -> str:
    """The backend a call gets when it names none (see the module's docstring)."""
    if linux_jail_available():
        return "restricted"
    if jail_reported_off() or not sys.platform.startswith("linux"):
        return "wasm"
    if os.environ.get(_WEAK_JAIL_ENV, "") == "1" or not _wasm_installed():
        return "restricted"
    return "wasm"


def configured_backend() -> str:
    """The backend calls use here when they name none and nothing but the
    environment can name one: ``$TOOLCRIB_BACKEND``, else `default_backend`.
    What `add` checks a lock against (a command without ``--backend``)."""
    return os.environ.get("TOOLCRIB_BACKEND", "").strip() or default_backend()
