"""Provenance: what is recorded about where a version came from, and its
rendering as an in-toto Statement v1 with a SLSA-provenance-style predicate.

Every URI in the statement is a name, never fetched.
"""

from __future__ import annotations

from typing import Any

from .errors import InvalidInput
from .models import Provenance, ProvenanceInput, ToolVersion
from .versions import sha256_text

__all__ = [
    "BUILD_TYPE",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "build_provenance",
    "in_toto_statement",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://toolcrib.dev/registration/v1"

_MAX_METADATA_KEY = 128


def build_provenance(
    given: ProvenanceInput | None,
    *,
    source: str,
    registered_by: str,
    registered_at: str,
    parent: tuple[str, str] | None = None,
) -> Provenance:
    """The stored provenance for a new version.

    `parent` is the already-resolved ("name@version", sha256) of `given.parent`."""
    given = given or ProvenanceInput()
    for key in given.metadata:
        if not key or len(key) > _MAX_METADATA_KEY:
            raise InvalidInput(f"invalid metadata key {key!r}: 1 to {_MAX_METADATA_KEY} characters")
    if given.parent is not None and parent is None:
        raise ValueError("the parent reference must be resolved before building provenance")
    return Provenance(
        generator=given.generator,
        prompt=given.prompt,
        prompt_sha256=sha256_text(given.prompt) if given.prompt is not None else None,
        parent=parent[0] if parent else None,
        parent_sha256=parent[1] if parent else None,
        registered_by=registered_by,
        registered_at=registered_at,
        source_sha256=sha256_text(source),
        metadata=dict(given.metadata),
    )


def in_toto_statement(tool: ToolVersion) -> dict[str, Any]:
    """An in-toto Statement v1 whose subject is the version's content digest."""
    prov = tool.provenance
    dependencies: list[dict[str, Any]] = []
    if prov.parent is not None:
        dependencies.append(
            {
                "name": "parent",
                "uri": f"toolcrib:{prov.parent}",
                "digest": {"sha256": prov.parent_sha256},
            }
        )
    if tool.lock is not None:
        # The exact wheels the version runs with, each by its file's digest.
        dependencies += [
            {
                "name": pkg.filename,
                "uri": f"pkg:pypi/{pkg.name.lower()}@{pkg.version}",
                "digest": {"sha256": pkg.sha256},
            }
            for pkg in tool.lock.packages
        ]
    if tool.prelude is not None:
        dependencies.append({"name": "prelude", "digest": {"sha256": sha256_text(tool.prelude)}})
    if prov.prompt_sha256 is not None:
        # Digest only: the prompt itself may be long or sensitive; it stays in
        # the registry (and in bundles), the statement only commits to it.
        dependencies.append({"name": "prompt", "digest": {"sha256": prov.prompt_sha256}})
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": tool.ref, "digest": {"sha256": tool.sha256}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "generator": prov.generator,
                    "entrypoint": tool.entrypoint,
                    "policy": tool.policy,
                    **({"requires": tool.requires} if tool.lock else {}),
                    "prompt": {"sha256": prov.prompt_sha256} if prov.prompt_sha256 else None,
                    "metadata": dict(prov.metadata),
                },
                "internalParameters": {
                    "registeredBy": prov.registered_by,
                    "sourceSha256": prov.source_sha256,
                },
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {"id": prov.generator or "unknown"},
                "metadata": {
                    "invocationId": tool.ref,
                    "startedOn": prov.registered_at,
                },
            },
        },
    }
