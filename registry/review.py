"""Human review as a lifecycle step (issue 18).

The registry setting ``review`` says which versions need a reviewer's
approval before they may be called or served:

- ``none``: none (what every registry made before review keeps);
- ``models``: those made by a model: made by ``toolcrib make`` (metadata
  ``latm.task``), added over MCP (registered by an ``mcp:`` actor), or whose
  provenance names a generator other than ``human`` (a generator is taken as
  a model unless it says ``human``: a safe reading of free text);
- ``all``: every version.

A decision is a row of ``reviews`` plus a ``review`` audit entry, and carries
the DSSE envelope signing it (registry/attest.py). An approval counts only
while its key is one the registry trusts; a rejection always counts. The
standing decision is the newest one that counts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .attest import (
    REVIEW_PREDICATE,
    TEST_RESULT_PREDICATE,
    ReviewKey,
    Verified,
    evidence_statement,
    review_statement,
    sign_statement,
    verify_envelope,
)
from .audit import append_row
from .errors import InvalidInput, NotFound, PolicyRefused, VerificationFailed
from .review_rule import MODES, allows, gate, needs_review
from .store import utc_now
from .store_review import (
    delete_key,
    held_back_rows,
    insert_key,
    insert_review,
    key_rows,
    maker_rows,
    review_rows,
    signed_decision_rows,
)
from .store_review import task_rejection as find_task_rejection
from .store_settings import put_setting, read_setting

if TYPE_CHECKING:
    import sqlite3

    from securesystemslib.signer import CryptoSigner  # type: ignore[attr-defined]  # re-exported without __all__

    from .store_versions import VersionRow

__all__ = [
    "MODES",
    "allows",
    "Decision",
    "QueueItem",
    "decide",
    "decisions",
    "gate",
    "needs_review",
    "queue",
    "review_mode",
    "set_mode",
    "trust",
    "trusted_keys",
    "untrust",
]

MAX_NOTE = 4096


@dataclass(frozen=True)
class QueueItem:
    """A version waiting for a reviewer, and why it needs one."""

    ref: str
    sha256: str
    status: str
    created_at: str
    why: str

    def as_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "sha256": self.sha256,
            "status": self.status,
            "created_at": self.created_at,
            "why": self.why,
        }


@dataclass(frozen=True)
class Decision:
    """One reviewer's decision on one version, as stored."""

    id: int
    ref: str
    sha256: str
    decision: str
    reviewer: str
    note: str | None
    keyid: str | None
    decided_at: str
    origin: str
    envelope: dict[str, Any] | None = field(default=None, repr=False)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ref": self.ref,
            "sha256": self.sha256,
            "decision": self.decision,
            "reviewer": self.reviewer,
            "note": self.note,
            "keyid": self.keyid,
            "decided_at": self.decided_at,
            "origin": self.origin,
            "envelope": self.envelope,
        }


def review_mode(conn: sqlite3.Connection) -> str:
    """The registry's review setting (``none`` for a file from before review)."""
    try:
        value = read_setting(conn, "review")
    except Exception:  # noqa: BLE001 - a file without the settings table
        return "none"
    return value if value in MODES else "none"


def set_mode(conn: sqlite3.Connection, mode: str, *, actor: str) -> bool:
    """Change the review setting, with its ``setting`` audit entry; False
    (nothing written) if it is that already. Inside a write transaction."""
    if mode not in MODES:
        raise InvalidInput(f"review must be one of {', '.join(MODES)}, not {mode!r}")
    if review_mode(conn) == mode:
        return False
    before = review_mode(conn)
    put_setting(conn, "review", mode, actor=actor)
    append_row(conn, actor=actor, event="setting", details={"key": "review", "value": mode, "was": before})
    return True


def held_back_ids(conn: sqlite3.Connection) -> set[int]:
    """Ids of the versions the review rule keeps from running (those that
    need approval and have none): one SQL pass (`store_review.held_back_rows`,
    the rule of `needs_review` in SQL), so a door's listing every second
    stays cheap at any size. Empty under review ``none``."""
    mode = review_mode(conn)
    if mode == "none":
        return set()
    return held_back_rows(conn, every=mode == "all")


def queue(conn: sqlite3.Connection) -> list[QueueItem]:
    """Versions that need approval and have no standing decision, not
    yanked, oldest first."""
    mode = review_mode(conn)
    out = []
    for (
        _vid,
        name,
        version,
        sha256,
        status,
        yanked,
        _dep,
        created_at,
        generator,
        registered_by,
        task,
        standing,
    ) in maker_rows(conn):
        if yanked is not None or standing is not None:
            continue
        why = needs_review(mode, generator, registered_by, task)
        if why is not None:
            out.append(QueueItem(ref=f"{name}@{version}", sha256=sha256, status=status, created_at=created_at, why=why))
    return out


def trusted_keys(conn: sqlite3.Connection) -> list[ReviewKey]:
    return [ReviewKey(keyid=k, name=n, public=p, expires=e) for k, n, p, _by, _at, e in key_rows(conn)]


def trust(conn: sqlite3.Connection, key: ReviewKey, *, actor: str) -> bool:
    """Trust a reviewer key, or change its expiry (audited ``key-trust``);
    False if it was trusted already as it is."""
    added = insert_key(
        conn, keyid=key.keyid, name=key.name, public=key.public, actor=actor, at=utc_now(), expires=key.expires
    )
    if added:
        details = {"keyid": key.keyid, "name": key.name, "public": key.public, "expires": key.expires}
        append_row(conn, actor=actor, event="key-trust", details=details)
    return added


def untrust(conn: sqlite3.Connection, keyid: str, *, actor: str) -> None:
    """Stop trusting a key (audited ``key-untrust``): its approvals stop counting."""
    matches = [k for k in trusted_keys(conn) if k.keyid.startswith(keyid)] if len(keyid) >= 8 else []
    if len(matches) != 1:
        raise NotFound(f"no trusted key {keyid!r} (toolcrib key list; give at least 8 digits of its id)")
    delete_key(conn, matches[0].keyid)
    append_row(conn, actor=actor, event="key-untrust", details={"keyid": matches[0].keyid, "name": matches[0].name})


def decisions(conn: sqlite3.Connection, row: VersionRow) -> list[Decision]:
    """Every decision on one version, oldest first."""
    out = []
    for rid, _vid, sha256, decision, reviewer, note, keyid, envelope, origin, at in review_rows(conn, row.id):
        out.append(
            Decision(
                id=rid,
                ref=row.ref,
                sha256=sha256,
                decision=decision,
                reviewer=reviewer,
                note=note,
                keyid=keyid,
                decided_at=at,
                origin=origin,
                envelope=json.loads(envelope) if envelope else None,
            )
        )
    return out


def decide(
    conn: sqlite3.Connection,
    row: VersionRow,
    *,
    decision: str,
    actor: str,
    note: str | None,
    signer: tuple[CryptoSigner, ReviewKey] | None,
    status: str,
) -> Decision:
    """Record one decision (inside the caller's write transaction): the
    version must be in the queue; an approval must be verified, not
    yanked, and signed by a trusted key. PolicyRefused (exit 4) otherwise."""
    if decision not in ("approved", "rejected"):
        raise InvalidInput("a decision is approved or rejected")
    if note is not None and len(note) > MAX_NOTE:
        raise InvalidInput(f"the note is longer than {MAX_NOTE} characters")
    if decision == "rejected" and not (note or "").strip():
        raise InvalidInput("a rejection needs a reason (--reason TEXT): it goes back to whoever makes the next version")
    if row.yanked is not None:
        raise PolicyRefused(f"{row.ref} is yanked ({row.yanked}): nothing to review")
    waiting = {item.ref for item in queue(conn)}
    if row.ref not in waiting:
        mode = review_mode(conn)
        already = [d for d in decisions(conn, row)]
        if already:
            raise PolicyRefused(f"{row.ref} is not in the review queue: it was {already[-1].decision} already")
        raise PolicyRefused(f"{row.ref} is not in the review queue (review is {mode!r}: it needs no approval)")
    if decision == "approved" and status != "verified":
        raise PolicyRefused(f"{row.ref} is {status}: run 'toolcrib verify {row.ref}' before approving it")
    trusted = {k.keyid for k in trusted_keys(conn)}
    if decision == "approved" and signer is None:
        raise PolicyRefused("an approval must be signed: pass --key (make one with 'toolcrib key generate')")
    if signer is not None and signer[1].keyid not in trusted:
        raise PolicyRefused(
            f"key {signer[1].keyid[:16]} is not trusted by this registry: 'toolcrib key trust' its .pub first"
        )
    at = utc_now()
    if signer is not None:
        expires = next(k.expires for k in trusted_keys(conn) if k.keyid == signer[1].keyid)
        if expires is not None and at >= expires:
            raise PolicyRefused(f"key {signer[1].keyid[:16]} expired at {expires}: trust a current key")
    envelope = None
    keyid = None
    if signer is not None:
        statement = review_statement(
            ref=row.ref, sha256=row.sha256, decision=decision, reviewer=actor, note=note, at=at
        )
        envelope = sign_statement(statement, signer[0])
        keyid = signer[1].keyid
    record = {
        "version_id": row.id,
        "sha256": row.sha256,
        "decision": decision,
        "reviewer": actor,
        "note": note,
        "keyid": keyid,
        "envelope": json.dumps(envelope) if envelope else None,
        "origin": "local",
        "decided_at": at,
    }
    rid = insert_review(conn, record)
    append_row(
        conn,
        actor=actor,
        event="review",
        tool=row.ref,
        details={"decision": decision, "note": note, "keyid": keyid, "sha256": row.sha256},
    )
    return Decision(
        id=rid,
        ref=row.ref,
        sha256=row.sha256,
        decision=decision,
        reviewer=actor,
        note=note,
        keyid=keyid,
        decided_at=at,
        origin="local",
        envelope=envelope,
    )


def task_rejection(conn: sqlite3.Connection, task: str) -> Decision | None:
    """The newest rejection of a version made for `task` by `toolcrib make`,
    which the next `make` for that task answers."""
    found = find_task_rejection(conn, task)
    if found is None:
        return None
    rid, ref, reviewer, note, at = found
    return Decision(
        id=rid,
        ref=ref,
        sha256="",
        decision="rejected",
        reviewer=reviewer,
        note=note,
        keyid=None,
        decided_at=at,
        origin="local",
    )


def sign_evidence(conn: sqlite3.Connection, row: VersionRow, signer: tuple[CryptoSigner, ReviewKey]) -> dict[str, Any]:
    """The newest verification evidence of a version as a signed in-toto Test
    Result statement (a DSSE envelope); InvalidInput if it was never verified."""
    from .records import verification_of_row
    from .store_versions import latest_verification

    found = latest_verification(conn, row.id)
    if found is None:
        raise InvalidInput(f"{row.ref} has no verification evidence: run 'toolcrib verify {row.ref}' first")
    evidence = verification_of_row(row.ref, found).model_dump(mode="json")
    statement = evidence_statement(ref=row.ref, sha256=row.sha256, verification=evidence, signed_at=utc_now())
    return sign_statement(statement, signer[0])


def verify_any(conn: sqlite3.Connection, row: VersionRow, envelope: Any) -> Verified:
    """An envelope given by hand (a review decision or signed test evidence)
    checked against the trusted keys and this version's digest."""
    return verify_envelope(
        envelope, trusted_keys(conn), sha256=row.sha256, predicate_types=(REVIEW_PREDICATE, TEST_RESULT_PREDICATE)
    )


def check_attestations(conn: sqlite3.Connection, row: VersionRow) -> list[tuple[Decision, str | None]]:
    """Each decision on a version with None if its envelope verifies against
    a trusted key, else why not (one line)."""
    trusted = trusted_keys(conn)
    out: list[tuple[Decision, str | None]] = []
    for d in decisions(conn, row):
        if d.envelope is None:
            out.append((d, "not signed"))
            continue
        try:
            verified = verify_envelope(d.envelope, trusted, sha256=row.sha256)
        except (VerificationFailed, InvalidInput) as exc:
            out.append((d, exc.message))
            continue
        out.append((d, None if verified.decision == d.decision else "the signed decision differs from the stored one"))
    return out


MAX_IMPORTED = 10_000


def exported_attestations(
    conn: sqlite3.Connection, refs: set[str] | None = None, *, names: set[str] | None = None
) -> list[dict[str, Any]]:
    """The signed decisions on the versions `refs` names (or every version of
    `names`; neither: every version), as a bundle carries them: ``{"ref",
    "sha256", "envelope"}`` each (unsigned ones stay home)."""
    out = []
    # Only the signed decisions are read (not every version): an export
    # streams its versions and must not hold them all for this (issue 21).
    for name, version, sha256, envelope in signed_decision_rows(conn):
        ref = f"{name}@{version}"
        if (refs is not None and ref not in refs) or (names is not None and name not in names):
            continue
        out.append({"ref": ref, "sha256": sha256, "envelope": json.loads(envelope)})
    return out


def import_attestations(conn: sqlite3.Connection, carried: Any, *, actor: str) -> list[tuple[str, str | None]]:
    """Each carried decision whose version this registry holds (by sha256):
    kept when its envelope verifies against a key this registry trusts,
    else dropped with an audited ``review-dropped`` entry naming why.
    (ref, None) for kept, (ref, why) for dropped. Inside a write transaction."""
    from .store_versions import VersionRow

    if carried is None:
        return []
    if not isinstance(carried, list) or len(carried) > MAX_IMPORTED:
        raise InvalidInput(f"bundle 'attestations' must be a list of at most {MAX_IMPORTED} entries")
    out: list[tuple[str, str | None]] = []
    for index, item in enumerate(carried):
        if not isinstance(item, dict) or not isinstance(item.get("ref"), str) or "@" not in item["ref"]:
            raise InvalidInput(f"attestations[{index}]: expected an object with ref, sha256 and envelope")
        name, _, version = item["ref"].partition("@")
        row = next((r for r in VersionRow.of_name(conn, name) if r.version == version), None)
        if row is None:
            continue  # the bundle did not bring that version: nothing to attach it to
        if any(d.envelope == item.get("envelope") for d in decisions(conn, row)):
            out.append((row.ref, None))
            continue
        why = import_attestation(conn, row, item.get("envelope"), actor=actor)
        if why is not None:
            append_row(conn, actor=actor, event="review-dropped", tool=row.ref, details={"reason": why})
        out.append((row.ref, why))
    return out


def import_attestation(conn: sqlite3.Connection, row: VersionRow, envelope: Any, *, actor: str) -> str | None:
    """Keep an imported approval or rejection when its envelope verifies
    against a key this registry trusts and is about this version's content;
    None if kept, else why it was dropped. Inside a write transaction."""
    try:
        verified = verify_envelope(envelope, trusted_keys(conn), sha256=row.sha256)
    except (VerificationFailed, InvalidInput) as exc:
        return exc.message
    predicate = verified.statement.get("predicate") or {}
    reviewer = str(predicate.get("reviewer") or "unknown")[:200]
    note = predicate.get("note")
    note = str(note)[:MAX_NOTE] if note is not None else None
    at = str(predicate.get("reviewedAt") or utc_now())[:40]
    insert_review(
        conn,
        {
            "version_id": row.id,
            "sha256": row.sha256,
            "decision": verified.decision,
            "reviewer": reviewer,
            "note": note,
            "keyid": verified.keyid,
            "envelope": json.dumps(envelope),
            "origin": "import",
            "decided_at": at,
        },
    )
    append_row(
        conn,
        actor=actor,
        event="review",
        tool=row.ref,
        details={
            "decision": verified.decision,
            "note": note,
            "keyid": verified.keyid,
            "sha256": row.sha256,
            "imported": True,
            "reviewer": reviewer,
        },
    )
    return None
