"""toolcrib: a registry and sandbox for LLM-written tools.

    from toolcrib import Registry
    with Registry("tools.db") as reg:
        reg.add(open("tool.py").read(), tests=[...])
        reg.verify("my_tool")
        print(reg.call("my_tool", {"x": 1}).result)

The public names are re-exported lazily (PEP 562): importing `toolcrib` (which
every `toolcrib.*` import does first) costs nothing, and `toolcrib --help`
starts without pydantic, sqlite-utils or jsonschema.
"""

from __future__ import annotations

import importlib
import os
import sys

# Not typing's: every `toolcrib` process imports this package first, and
# typing costs a one-shot `toolcrib call` (toolcrib/console.py) 2 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:  # what type checkers and IDEs see; at run time, __getattr__ below
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType
    from typing import Any

    from toolcrib.registry import *  # noqa: F403
    from toolcrib.sandbox import Job as Job
    from toolcrib.sandbox import Limits as Limits
    from toolcrib.sandbox import Result as Result

__version__ = "0.1.0"

# The registry's public names, listed here (not read from toolcrib.registry)
# so that building __all__ imports nothing; tests/cli/test_startup.py checks the
# two lists agree.
_REGISTRY_NAMES = [
    "AddResult",
    "AdmissionError",
    "ArgumentsError",
    "AuditEntry",
    "AuditReport",
    "BundleError",
    "CallOutcome",
    "CaseEvidence",
    "ConflictError",
    "DEFAULT_MAX_LIMITS",
    "ExtraMissing",
    "InvalidInput",
    "NotFound",
    "PolicyRefused",
    "Provenance",
    "ProvenanceInput",
    "Registry",
    "RegistryUnusable",
    "SandboxUnavailable",
    "SearchHit",
    "Signature",
    "TestCase",
    "TestsFormatError",
    "ToolDiff",
    "ToolVersion",
    "ToolcribError",
    "UsageStats",
    "Verification",
    "default_registry_path",
]
_SANDBOX_NAMES = ["Job", "Limits", "Result"]

__all__ = [*_REGISTRY_NAMES, *_SANDBOX_NAMES, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _REGISTRY_NAMES:
        home = "toolcrib.registry"
    elif name in _SANDBOX_NAMES:
        home = "toolcrib.sandbox"
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # looked up once; later accesses skip this hook
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


# Run from a source checkout, this folder is found before any installed copy
# (the current directory comes first on sys.path), but its subpackages live
# beside it: pyproject.toml maps toolcrib.registry to registry/, and so on,
# which only an installed copy (a wheel, or an editable install's own finder)
# knows. So that `import toolcrib.registry` works from the checkout root
# whatever is installed, a checkout maps them itself, exactly as the wheel
# does; tests/test_wheel.py checks this table against pyproject's package-dir.
_CHECKOUT_PACKAGES = {
    "toolcrib.registry": "registry",
    "toolcrib.sandbox": "sandbox",
    "toolcrib.sandbox.inside": "sandbox/inside",
    "toolcrib.cli": "cli",
    "toolcrib.images": "sandbox-images",
}


class _CheckoutFinder:
    """A meta path finder for the subpackages of a source checkout, and nothing
    else. (Plain os.path and no importlib.abc: this runs on every start.)"""

    def __init__(self, root: str) -> None:
        self.root = root

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        folder = _CHECKOUT_PACKAGES.get(fullname)
        if folder is None:
            return None
        import importlib.util

        where = os.path.join(self.root, folder)
        init = os.path.join(where, "__init__.py")
        return importlib.util.spec_from_file_location(fullname, init, submodule_search_locations=[where])


def _map_checkout() -> None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # Installed, this file's parent is site-packages: no pyproject.toml there.
    if not os.path.isfile(os.path.join(root, "pyproject.toml")) or not os.path.isfile(
        os.path.join(root, "registry", "__init__.py")
    ):
        return
    if not any(isinstance(finder, _CheckoutFinder) for finder in sys.meta_path):
        # Last: an editable install's own finder, equivalent, stays first.
        sys.meta_path.append(_CheckoutFinder(root))


_map_checkout()
