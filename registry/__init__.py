"""toolcrib.registry: versioned tools, their tests and provenance, and the audit log."""

from .core import DEFAULT_MAX_LIMITS, Registry, default_registry_path
from .errors import (
    AdmissionError,
    ArgumentsError,
    BundleError,
    ConflictError,
    InvalidInput,
    NotFound,
    PolicyRefused,
    SandboxUnavailable,
    TestsFormatError,
    ToolcribError,
)
from .models import (
    AddResult,
    AuditEntry,
    AuditReport,
    CallOutcome,
    CaseEvidence,
    Provenance,
    ProvenanceInput,
    Signature,
    TestCase,
    ToolDiff,
    ToolVersion,
    Verification,
)
from .search import SearchHit
from .stats import UsageStats

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
    "InvalidInput",
    "NotFound",
    "PolicyRefused",
    "Provenance",
    "ProvenanceInput",
    "Registry",
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
