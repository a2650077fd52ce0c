"""The registry's side of the verifiable audit log (issue 18): sign a
checkpoint of it, prove an entry's inclusion or that today's log extends an
older checkpoint, and check a checkpoint against the log itself.

Proofs travel as JSON with base64 hashes (registry/checkpoint.py checks
them offline); `verify_checkpoint` recomputes the root over the log's own
entries (not the stored tree), so a rewrite of the whole file, tree
included, is caught by anyone who kept a checkpoint from before it.
"""

from __future__ import annotations

import base64
import sqlite3
from typing import TYPE_CHECKING, Any

from .audit import verify_chain_rows
from .audit_tree import prove_consistency, prove_inclusion, recomputed_root, row_body, stored_root
from .checkpoint import Checkpoint, NoteKey, parse_checkpoint, sign_checkpoint, verifier_key
from .errors import InvalidInput, VerificationFailed
from .review import trusted_keys
from .store_audit import audit_row
from .store_settings import read_setting

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = ["checkpoint", "log_origin", "note_keys", "prove_entry", "prove_since", "verify_checkpoint"]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def log_origin(conn: sqlite3.Connection) -> str:
    origin = read_setting(conn, "audit.origin")
    if origin is None:  # pragma: no cover - every migrated file has one
        raise InvalidInput("this registry has no audit origin: open it with this version of toolcrib first")
    return origin


def note_keys(conn: sqlite3.Connection, verifiers: list[str] | None = None) -> list[NoteKey]:
    """The keys a checkpoint may be signed by: the verifier keys given, else
    every reviewer key the registry trusts (named by the log's origin)."""
    if verifiers:
        return [verifier_key(v) for v in verifiers]
    origin = log_origin(conn)
    return [NoteKey(origin, bytes.fromhex(k.public)) for k in trusted_keys(conn)]


def checkpoint(conn: sqlite3.Connection, private: Ed25519PrivateKey) -> str:
    """The signed checkpoint of the whole log as it is now."""
    size, root = stored_root(conn)
    return sign_checkpoint(log_origin(conn), size, root, private)


def prove_entry(conn: sqlite3.Connection, seq: int) -> dict[str, Any]:
    """Entry `seq` is in today's log: the entry, its audit path and the root."""
    found = prove_inclusion(conn, seq)
    row = audit_row(conn, seq)
    assert row is not None
    return {
        "type": "inclusion",
        "origin": log_origin(conn),
        "seq": seq,
        "tree_size": found["tree_size"],
        "entry": row_body(row),
        "leaf_hash": _b64(found["leaf_hash"]),
        "hashes": [_b64(h) for h in found["hashes"]],
        "root_hash": _b64(found["root_hash"]),
        "reads": found["reads"],
    }


def _read_checkpoint(conn: sqlite3.Connection, text: str) -> Checkpoint:
    cp = parse_checkpoint(text)
    origin = log_origin(conn)
    if cp.origin != origin:
        raise VerificationFailed(f"the checkpoint is of another log ({cp.origin[:80]!r}, this one is {origin!r})")
    return cp


def prove_since(conn: sqlite3.Connection, text: str) -> dict[str, Any]:
    """Today's log extends the checkpoint `text`: a consistency proof from its size."""
    cp = _read_checkpoint(conn, text)
    found = prove_consistency(conn, cp.size)
    return {
        "type": "consistency",
        "origin": cp.origin,
        "old_size": cp.size,
        "new_size": found["new_size"],
        "new_root": _b64(found["new_root"]),
        "hashes": [_b64(h) for h in found["hashes"]],
        "reads": found["reads"],
    }


def verify_checkpoint(conn: sqlite3.Connection, text: str, verifiers: list[str] | None = None) -> str:
    """Check a checkpoint against this log: signed by a trusted (or given)
    key, of this log, no larger than it, and its root the root recomputed
    over the log's first `size` entries, whose chain is intact. A line
    saying so; VerificationFailed naming the first thing that does not hold."""
    cp = _read_checkpoint(conn, text)
    signer = cp.verify(note_keys(conn, verifiers))
    size, _root = stored_root(conn)
    if cp.size > size:
        raise VerificationFailed(
            f"the log has {size} entries, fewer than the {cp.size} the checkpoint commits to: entries were removed"
        )
    report = verify_chain_rows(conn, limit=cp.size)
    if not report.ok:
        raise VerificationFailed(
            f"the log's first {cp.size} entries are broken at {report.first_bad}: {report.problem}"
        )
    if recomputed_root(conn, cp.size) != cp.root:
        raise VerificationFailed(
            f"the log's first {cp.size} entries are not the ones the checkpoint signed: the log was rewritten"
        )
    found = prove_consistency(conn, cp.size)
    if found["old_root"] != cp.root:
        raise VerificationFailed("the stored audit tree disagrees with the log's entries: the tree was altered")
    return f"checkpoint verified: signed by {signer.name} ({signer.key_hash.hex()}); the log of {size} entries extends its {cp.size}"
