"""A version as the store keeps it and back: the `versions` row (a tuple in
`store_versions.VERSION_COLUMNS` order) to a `ToolVersion`, and a
`ToolVersion` to the record inserted. No SQL here (that is the store's); no
choices either (that is adding's and verifying's)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ..sandbox.contract import Limits
from .models import CaseEvidence, Provenance, Signature, TestCase, ToolVersion, Verification
from .pyast import stored_in_declared_order
from .search import tool_index_terms
from .store_versions import VersionFields, VersionRow
from .versions import canonical_json, stored_lock

__all__ = ["tool_of", "verification_of_row", "version_of_row", "version_record"]


def tool_of(row: VersionRow) -> ToolVersion:
    """The whole version a row names (read now, for the one row chosen)."""
    return version_of_row(row.full())


def version_of_row(row: sqlite3.Row | tuple[Any, ...]) -> ToolVersion:
    f = VersionFields._make(row)
    return ToolVersion(
        name=f.name,
        version=f.version,
        sha256=f.sha256,
        entrypoint=f.entrypoint,
        source=f.source,
        signature=_in_declared_order(Signature.model_validate(json.loads(f.signature)), f.source, f.entrypoint),
        tests=[TestCase.model_validate(t) for t in json.loads(f.tests)],
        limits=Limits.from_json(json.loads(f.limits)) if f.limits else None,
        policy=f.policy,
        lock=stored_lock(f"{f.name}@{f.version}", f.lock),
        prelude=f.prelude,
        status=f.status,
        deprecated=f.deprecated,
        yanked=f.yanked,
        provenance=Provenance(
            generator=f.generator,
            prompt=f.prompt,
            prompt_sha256=f.prompt_sha256,
            parent=f.parent,
            parent_sha256=f.parent_sha256,
            registered_by=f.registered_by,
            registered_at=f.registered_at,
            source_sha256=f.source_sha256,
            metadata=json.loads(f.metadata),
        ),
        created_at=f.created_at,
    )


def _in_declared_order(signature: Signature, source: str, entrypoint: str) -> Signature:
    """A stored signature with its parameters in declaration order (`pyast.stored_in_declared_order`)."""
    ordered = stored_in_declared_order(signature.input_schema, source, entrypoint)
    if ordered is signature.input_schema:
        return signature
    return signature.model_copy(update={"input_schema": ordered})


def version_record(tool: ToolVersion) -> dict[str, Any]:
    prov = tool.provenance
    return {
        "name": tool.name,
        "version": tool.version,
        "sha256": tool.sha256,
        "entrypoint": tool.entrypoint,
        "source": tool.source,
        # Not canonical_json: the parameters keep their declaration order
        # (presentation; the content hash is over the sorted form).
        "signature": json.dumps(
            tool.signature.model_dump(mode="json"), separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ),
        "tests": canonical_json([t.model_dump(mode="json") for t in tool.tests]),
        "limits": canonical_json(tool.limits.to_json()) if tool.limits else None,
        "policy": tool.policy,
        "requires": canonical_json(tool.requires) if tool.lock else None,
        "lock": canonical_json(tool.lock.to_json()) if tool.lock else None,
        "prelude": tool.prelude,
        "description": tool.signature.description,
        "status": tool.status,
        "deprecated": tool.deprecated,
        "yanked": tool.yanked,
        "created_at": tool.created_at,
        "generator": prov.generator,
        "prompt": prov.prompt,
        "prompt_sha256": prov.prompt_sha256,
        "parent": prov.parent,
        "parent_sha256": prov.parent_sha256,
        "registered_by": prov.registered_by,
        "registered_at": prov.registered_at,
        "source_sha256": prov.source_sha256,
        "metadata": canonical_json(prov.metadata),
        "search_terms": tool_index_terms(tool),
    }


def verification_of_row(ref: str, row: tuple[Any, ...]) -> Verification:
    """The evidence of version `ref` from its `verifications` row (in
    `store_versions.latest_verification`'s column order)."""
    sha256, status, backend, policy, layers, digest, passed, failed, cases, verified_at = row
    return Verification(
        tool=ref,
        sha256=sha256,
        status=status,
        backend=backend,
        policy=policy,
        layers=json.loads(layers),
        image_digest=digest,
        passed=passed,
        failed=failed,
        cases=[CaseEvidence.model_validate(c) for c in json.loads(cases)],
        verified_at=verified_at,
    )
