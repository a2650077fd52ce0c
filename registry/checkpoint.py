"""Signed checkpoints of the audit log and the checks anyone holding one can
make (issue 18).

A checkpoint is the C2SP tlog-checkpoint text (https://c2sp.org/tlog-checkpoint)
in a C2SP signed note (https://c2sp.org/signed-note)::

    toolcrib.local/audit/3f9c2a1b7d0e4c55      <- origin: this log's name
    1843                                        <- tree size (entries)
    q9VWxdC3fgLJpN4T8Kq3m2S0dX2M5oD6b1bZrX4oY1E=  <- base64 root hash (RFC 6962)

    — toolcrib.local/audit/3f9c2a1b7d0e4c55 <base64(key hash[4] || Ed25519 signature[64])>

The signature is Ed25519 over the note's text (the three lines and their
newlines); the key name is the origin; the key hash is the first four bytes
of SHA-256(name || "\\n" || 0x01 || public key), as signed-note defines for
Ed25519. A verifier key is written ``name+hex(key hash)+base64(0x01 || key)``.
Any key the registry trusts for review signs and verifies checkpoints too
(or the one given with ``--verifier``, so a CI job need not trust the file).

Parsing is bounded and strict: every failure is InvalidInput (unreadable,
exit 2) or VerificationFailed (read, and it does not hold, exit 1).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import InvalidInput, VerificationFailed
from .merkle import verify_consistency, verify_inclusion

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = [
    "MAX_CHECKPOINT_BYTES",
    "Checkpoint",
    "NoteKey",
    "check_proof",
    "parse_checkpoint",
    "sign_checkpoint",
    "verifier_key",
]

MAX_CHECKPOINT_BYTES = 8 * 1024
MAX_PROOF_BYTES = 64 * 1024
_DASH = "\u2014 "


@dataclass(frozen=True)
class NoteKey:
    """A signed-note verifier key: its name and raw Ed25519 public key."""

    name: str
    public: bytes

    @property
    def key_hash(self) -> bytes:
        return hashlib.sha256(self.name.encode() + b"\n\x01" + self.public).digest()[:4]

    @property
    def text(self) -> str:
        encoded = base64.b64encode(bytes([1]) + self.public).decode()
        return f"{self.name}+{self.key_hash.hex()}+{encoded}"


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    body: str
    signatures: tuple[tuple[str, bytes, bytes], ...]  # (key name, key hash, signature)

    def verify(self, keys: list[NoteKey]) -> NoteKey:
        """The key whose signature on this checkpoint verifies; VerificationFailed otherwise."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        known = {(k.name, k.key_hash): k for k in keys}
        for name, key_hash, signature in self.signatures:
            key = known.get((name, key_hash))
            if key is None:
                continue
            try:
                Ed25519PublicKey.from_public_bytes(key.public).verify(signature, self.body.encode("utf-8"))
            except (InvalidSignature, ValueError):
                raise VerificationFailed(
                    f"checkpoint signature by {name} (key {key_hash.hex()}) does not verify: forged or altered"
                ) from None
            return key
        hashes = ", ".join(h.hex() for _n, h, _s in self.signatures) or "none"
        raise VerificationFailed(f"checkpoint signed by an unknown key ({hashes}): none this registry trusts")


def note_keys(origin: str, publics: list[bytes]) -> list[NoteKey]:
    return [NoteKey(origin, p) for p in publics]


def sign_checkpoint(origin: str, size: int, root: bytes, private: Ed25519PrivateKey) -> str:
    """The signed note of one checkpoint."""
    from cryptography.hazmat.primitives import serialization

    body = f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key = NoteKey(origin, public)
    signature = private.sign(body.encode("utf-8"))
    return f"{body}\n{_DASH}{origin} {base64.b64encode(key.key_hash + signature).decode()}\n"


def verifier_key(text: str) -> NoteKey:
    """A verifier key ``name+hash+base64(0x01||key)``; InvalidInput otherwise."""
    parts = text.strip().split("+", 2)  # the name holds no '+'; the base64 key may
    if len(parts) != 3:
        raise InvalidInput("not a verifier key: expected NAME+HASH+KEY")
    name, key_hash, encoded = parts
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("not a verifier key: its key is not base64") from None
    if len(raw) != 33 or raw[0] != 1:
        raise InvalidInput("not a verifier key: only Ed25519 (type 0x01, 32 bytes) is supported")
    key = NoteKey(name, raw[1:])
    if key.key_hash.hex() != key_hash.lower():
        raise InvalidInput("not a verifier key: its hash does not match its name and key")
    return key


def parse_checkpoint(text: str) -> Checkpoint:
    """A checkpoint from its signed-note text; InvalidInput when malformed."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_CHECKPOINT_BYTES:
        raise InvalidInput(f"not a checkpoint: larger than {MAX_CHECKPOINT_BYTES} bytes")
    body, sep, rest = text.partition("\n\n")
    if not sep:
        raise InvalidInput("not a checkpoint: no blank line between the note and its signatures")
    body += "\n"
    lines = body.split("\n")[:-1]
    if len(lines) < 3:
        raise InvalidInput("not a checkpoint: expected origin, size and root hash lines")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not origin or any(c in origin for c in "\r\t") or not origin.isprintable():
        raise InvalidInput("not a checkpoint: its origin line is empty or holds control characters")
    if not size_text.isdigit() or (len(size_text) > 1 and size_text[0] == "0") or len(size_text) > 19:
        raise InvalidInput("not a checkpoint: its size is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("not a checkpoint: its root hash is not base64") from None
    if len(root) != 32:
        raise InvalidInput("not a checkpoint: its root hash is not 32 bytes")
    signatures = []
    for line in rest.split("\n"):
        if not line:
            continue
        if not line.startswith(_DASH):
            raise InvalidInput("not a checkpoint: a signature line must start with an em dash")
        name, _, encoded = line[len(_DASH) :].rpartition(" ")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput("not a checkpoint: a signature is not base64") from None
        if len(blob) < 5:
            raise InvalidInput("not a checkpoint: a signature is too short")
        signatures.append((name, blob[:4], blob[4:]))
    if not signatures:
        raise InvalidInput("not a checkpoint: it is not signed")
    return Checkpoint(origin, int(size_text), root, body, tuple(signatures))


def _hashes(value: Any, what: str) -> list[bytes]:
    if not isinstance(value, list) or len(value) > 128:
        raise InvalidInput(f"not a proof: {what} must be a list of at most 128 base64 hashes")
    out = []
    for item in value:
        try:
            raw = base64.b64decode(item, validate=True) if isinstance(item, str) else b""
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            raise InvalidInput(f"not a proof: an entry of {what} is not a base64 32-byte hash")
        out.append(raw)
    return out


def _count(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidInput(f"not a proof: {what} must be a whole number")
    return value


def check_proof(checkpoint: Checkpoint, proof_text: str) -> str:
    """Check a proof (`toolcrib audit prove`'s JSON) against a checkpoint
    already verified: an inclusion proof of an entry in the checkpoint's
    tree, or a consistency proof that a later tree extends it. A line saying
    what holds; VerificationFailed naming what does not."""
    from .audit_tree import entry_leaf
    from .versions import canonical_json, parse_json_text

    proof = parse_json_text(
        proof_text,
        MAX_PROOF_BYTES,
        too_large=f"not a proof: larger than {MAX_PROOF_BYTES} bytes",
        not_json="not a proof: not JSON",
    )
    if not isinstance(proof, dict) or proof.get("type") not in ("inclusion", "consistency"):
        raise InvalidInput("not a proof: expected a JSON object of type inclusion or consistency")
    if proof.get("origin") != checkpoint.origin:
        raise VerificationFailed(
            f"the proof is about another log ({str(proof.get('origin'))[:80]!r}, not {checkpoint.origin!r})"
        )
    hashes = _hashes(proof.get("hashes"), "hashes")
    if proof["type"] == "inclusion":
        size = _count(proof.get("tree_size"), "tree_size")
        seq = _count(proof.get("seq"), "seq")
        if size != checkpoint.size:
            raise VerificationFailed(f"the proof is for a tree of {size} entries, the checkpoint of {checkpoint.size}")
        entry = proof.get("entry")
        if not isinstance(entry, dict) or set(entry) != {"seq", "at", "actor", "event", "tool", "details", "prev_hash"}:
            raise InvalidInput("not a proof: 'entry' must hold the entry's seven hashed fields")
        if entry["seq"] != seq:
            raise VerificationFailed(f"the proof's entry is seq {entry['seq']}, not {seq}")
        leaf = entry_leaf(canonical_json(entry))
        if not verify_inclusion(seq - 1, size, leaf, hashes, checkpoint.root):
            raise VerificationFailed(
                f"entry {seq} is not in the checkpoint's tree: the inclusion proof does not verify"
            )
        return f"entry {seq} is in the log of {size} entries the checkpoint signs"
    old = _count(proof.get("old_size"), "old_size")
    new = _count(proof.get("new_size"), "new_size")
    if old != checkpoint.size:
        raise VerificationFailed(f"the proof starts from {old} entries, the checkpoint holds {checkpoint.size}")
    new_root = _hashes([proof.get("new_root")], "new_root")[0]
    if not verify_consistency(old, new, checkpoint.root, new_root, hashes):
        raise VerificationFailed(
            f"the log of {new} entries does not extend the checkpoint's {old}: the consistency proof does not verify"
        )
    return f"the log of {new} entries extends the checkpoint's {old} (root {base64.b64encode(new_root).decode()})"
