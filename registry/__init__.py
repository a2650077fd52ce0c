"""toolcrib.registry: versioned tools, their tests and provenance, and the audit log.

The public names are imported on first use (PEP 562), not with the package:
`toolcrib --help`, or any import of `toolcrib.registry.errors`, must not pay
for pydantic, sqlite-utils and jsonschema (see bench/bench_startup.py).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time, __getattr__ below
    from .core import DEFAULT_MAX_LIMITS, Registry, default_registry_path
    from .errors import (
        AdmissionError,
        ArgumentsError,
        BundleError,
        ConflictError,
        ExtraMissing,
        InvalidInput,
        NotFound,
        PolicyRefused,
        RegistryUnusable,
        SandboxUnavailable,
        TestsFormatError,
        ToolcribError,
    )
    from .models import (
        AddResult,
        AuditEntry,
        AuditReport,
        CaseEvidence,
        Provenance,
        ProvenanceInput,
        Signature,
        TestCase,
        ToolDiff,
        ToolVersion,
        Verification,
    )
    from .outcome import CallOutcome
    from .search import SearchHit
    from .stats import UsageStats

# Each public name and the submodule that defines it.
_HOMES: dict[str, str] = {
    **dict.fromkeys(["DEFAULT_MAX_LIMITS", "Registry", "default_registry_path"], "core"),
    **dict.fromkeys(
        [
            "AdmissionError",
            "ArgumentsError",
            "BundleError",
            "ConflictError",
            "ExtraMissing",
            "InvalidInput",
            "NotFound",
            "PolicyRefused",
            "RegistryUnusable",
            "SandboxUnavailable",
            "TestsFormatError",
            "ToolcribError",
        ],
        "errors",
    ),
    **dict.fromkeys(
        [
            "AddResult",
            "AuditEntry",
            "AuditReport",
            "CaseEvidence",
            "Provenance",
            "ProvenanceInput",
            "Signature",
            "TestCase",
            "ToolDiff",
            "ToolVersion",
            "Verification",
        ],
        "models",
    ),
    "CallOutcome": "outcome",
    "SearchHit": "search",
    "UsageStats": "stats",
}

__all__ = [
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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # looked up once; later accesses skip this hook
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
