"""Portable bundles: every version of some tools as one JSON object, and the
checks an import makes before trusting one.

A bundle's digests protect against corruption and mix-ups, not against a
deliberate forger (anyone can recompute a sha256); that is why imported
versions always start ``unverified`` and need ``verify`` in the new registry.
Format: docs/formats.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ..sandbox.contract import Limits, Lock, PolicyName
from .admission import admit, check_name
from .cases import parse_tests
from .errors import AdmissionError, BundleError, ToolcribError
from .models import Provenance, Signature, TestCase, ToolVersion
from .signature import declared_forms, derive_signature
from .store import utc_now
from .versions import content_sha256, parse_version, sha256_text

__all__ = ["BUNDLE_FORMAT", "BundleEntry", "build_bundle", "bundle_entry", "bundle_header", "read_bundle"]

BUNDLE_FORMAT = "toolcrib.bundle/v1"


class BundleEntry(BaseModel):
    """One version as it travels in a bundle."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: str
    sha256: str
    entrypoint: str
    source: str
    signature: Signature
    tests: list[TestCase]
    limits: Limits | None = None
    # Absent in bundles written before policies could be declared.
    policy: PolicyName = "restricted"
    # Absent (None) for versions without requirements or prelude, and in
    # bundles written before either existed.
    lock: Lock | None = None
    prelude: str | None = None
    provenance: Provenance
    deprecated: str | None = None
    yanked: str | None = None
    created_at: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


def _entry(tool: ToolVersion) -> dict[str, Any]:
    return {
        "name": tool.name,
        "version": tool.version,
        "sha256": tool.sha256,
        "entrypoint": tool.entrypoint,
        "source": tool.source,
        "signature": tool.signature.model_dump(mode="json"),
        "tests": [case.model_dump(mode="json") for case in tool.tests],
        "limits": tool.limits.to_json() if tool.limits else None,
        "policy": tool.policy,
        **({"lock": tool.lock.to_json()} if tool.lock else {}),
        **({"prelude": tool.prelude} if tool.prelude is not None else {}),
        "provenance": tool.provenance.model_dump(mode="json"),
        "deprecated": tool.deprecated,
        "yanked": tool.yanked,
        "created_at": tool.created_at,
    }


def build_bundle(tools: Iterable[ToolVersion]) -> dict[str, Any]:
    """The bundle for these versions (in the order given)."""
    return {**bundle_header(), "tools": [_entry(t) for t in tools]}


def bundle_header() -> dict[str, Any]:
    """A bundle's fields before its ``tools`` (a streamed export writes them first)."""
    return {"format": BUNDLE_FORMAT, "exported_at": utc_now()}


def bundle_entry(tool: ToolVersion) -> dict[str, Any]:
    """One version as a bundle's ``tools`` holds it."""
    return _entry(tool)


def read_bundle(bundle: Any) -> list[BundleEntry]:
    """Parse and check a whole bundle; BundleError naming the first bad entry.

    Checks: the format tag; every entry's shape; name and version syntax; the
    source passes admission unchanged; the stored input and output schemas are
    the ones the source derives (they are the contract `call` enforces); the content sha256 (which covers a
    non-default policy, the lock and the prelude, so a policy, wheel hash or prelude changed in transit
    is a mismatch: an importing registry runs the same bytes), source
    sha256 and prompt sha256 recomputed from the entry match; no (name,
    version) twice.
    """
    if not isinstance(bundle, dict):
        raise BundleError("a bundle is a JSON object")
    if bundle.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"not a toolcrib bundle: format is {bundle.get('format')!r}, expected {BUNDLE_FORMAT!r}")
    tools = bundle.get("tools")
    if not isinstance(tools, list):
        raise BundleError("bundle 'tools' must be a list")
    entries: list[BundleEntry] = []
    seen: set[tuple[str, str]] = set()
    for index, raw in enumerate(tools):
        label = f"tools[{index}]"
        if (
            isinstance(raw, dict)
            and isinstance(raw.get("name"), str)
            and isinstance(raw.get("version"), str)
            and len(raw["name"]) + len(raw["version"]) <= 200
        ):  # a label never quotes a megabyte
            label += f" ({raw['name']}@{raw['version']})"
        entries.append(_check_entry(raw, label))
        key = (entries[-1].name, entries[-1].version)
        if key in seen:
            raise BundleError(f"{label}: {key[0]}@{key[1]} appears twice in the bundle")
        seen.add(key)
    return entries


def _first_difference(stored: Any, derived: Any, where: str = "") -> str:
    """Where two JSON values first differ, and how, in a few words."""
    if isinstance(stored, dict) and isinstance(derived, dict):
        for key in sorted(set(stored) | set(derived)):
            if key not in derived:
                return f"{where}.{key} is stored but not derived"
            if key not in stored:
                return f"{where}.{key} is derived but not stored"
            if stored[key] != derived[key]:
                return _first_difference(stored[key], derived[key], f"{where}.{key}")
    if isinstance(stored, list) and isinstance(derived, list) and len(stored) == len(derived):
        for index, (a, b) in enumerate(zip(stored, derived)):
            if a != b:
                return _first_difference(a, b, f"{where}[{index}]")
    return f"{where or 'the schema'}: stored {json.dumps(stored)[:80]}, derived {json.dumps(derived)[:80]}"


def _check_signature(entry: BundleEntry, label: str) -> None:
    """The stored schemas must be the ones the source derives: they are what
    `show` and `serve` advertise and what `call` validates against, so a
    doctored one would promise a contract the tool does not have."""
    # Forms declared at add (`add --param`) are part of the stored schema:
    # derived again with them, a declaration that does not fit is refused.
    forms = declared_forms(entry.signature.input_schema)
    stored = (entry.signature.input_schema, entry.signature.output_schema)
    try:
        derived = derive_signature(entry.source, entry.entrypoint, forms=forms, prelude=entry.prelude)
    except AdmissionError as exc:
        raise BundleError(f"{label}: its declared parameter forms: {exc}") from None
    if stored != (derived.input_schema, derived.output_schema):
        # A bundle written by an older toolcrib holds an older (equally
        # honest) derivation, still the one its source gives: before types
        # were read through the prelude's imports, and before docstring
        # types were read at all.
        for older in (
            derive_signature(entry.source, entry.entrypoint, forms=forms),
            derive_signature(entry.source, entry.entrypoint, legacy_docstrings=True, forms=forms),
        ):
            if stored == (older.input_schema, older.output_schema):
                return
    for part in ("input_schema", "output_schema"):
        stored_part, derived_part = getattr(entry.signature, part), getattr(derived, part)
        if stored_part != derived_part:
            where = _first_difference(stored_part, derived_part)
            raise BundleError(
                f"{label}: the stored {part.replace('_', ' ')} differs from the one its source derives ({where})"
            )


def _check_entry(raw: Any, label: str) -> BundleEntry:
    if not isinstance(raw, dict):
        raise BundleError(f"{label}: an entry is a JSON object")
    try:
        tests = parse_tests(raw.get("tests", []))
        entry = BundleEntry.model_validate({**raw, "tests": [t.model_dump() for t in tests]})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BundleError(f"{label}: {where}: {first['msg']}") from None
    except ToolcribError as exc:
        raise BundleError(f"{label}: tests: {exc}") from None
    try:
        check_name(entry.name)
        parse_version(entry.version)
        admit(entry.source, entrypoint=entry.entrypoint, markdown=False)
    except ToolcribError as exc:
        raise BundleError(f"{label}: {exc}") from None
    _check_signature(entry, label)
    digest = content_sha256(
        entry.source, entry.entrypoint, entry.signature, entry.tests, entry.policy, entry.lock, entry.prelude
    )
    if digest != entry.sha256:
        raise BundleError(f"{label}: sha256 mismatch: the entry says {entry.sha256}, its content hashes to {digest}")
    if sha256_text(entry.source) != entry.provenance.source_sha256:
        raise BundleError(f"{label}: provenance source_sha256 does not match the source")
    prompt = entry.provenance.prompt
    expected_prompt = sha256_text(prompt) if prompt is not None else None
    if entry.provenance.prompt_sha256 != expected_prompt:
        raise BundleError(f"{label}: provenance prompt_sha256 does not match the prompt")
    return entry
