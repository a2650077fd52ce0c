"""Reviewer keys and signed review decisions (issue 18).

A reviewer's key is Ed25519: made by `toolcrib key generate` (an OpenSSH
private key file) or an existing OpenSSH Ed25519 key. A decision is an in-toto
Statement v1 about the version's sha256 with a human-review predicate, in a
DSSE envelope signed by that key. Envelopes, key ids and signatures are
`securesystemslib`'s (the in-toto/TUF project's library: its `dsse.Envelope`
computes DSSE's pre-authentication encoding and verifies against a set of
keys, its `CryptoSigner`/`SSlibKey` wrap `cryptography`'s Ed25519), so the
envelopes are the ones in-toto tooling reads.

Everything here reads untrusted input (envelopes from bundles, key files,
statements): sizes are bounded and every failure is one of two errors,
`InvalidInput` (unreadable: exit 2) or `VerificationFailed` (read, but does
not verify: exit 1), each naming what did not match.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InvalidInput, VerificationFailed
from .versions import canonical_json, parse_json_text

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from securesystemslib.signer import CryptoSigner, SSlibKey  # type: ignore[attr-defined]  # re-exported without __all__

__all__ = [
    "MAX_ENVELOPE_BYTES",
    "MAX_KEY_BYTES",
    "PAYLOAD_TYPE",
    "REVIEW_PREDICATE",
    "STATEMENT_TYPE",
    "TEST_RESULT_PREDICATE",
    "ReviewKey",
    "Verified",
    "generate_key",
    "load_private_key",
    "load_signer",
    "parse_envelope",
    "public_key",
    "review_statement",
    "sign_statement",
    "evidence_statement",
    "verify_envelope",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
REVIEW_PREDICATE = "https://toolcrib.dev/human-review/v1"
TEST_RESULT_PREDICATE = "https://in-toto.io/attestation/test-result/v0.1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
MAX_ENVELOPE_BYTES = 64 * 1024
MAX_KEY_BYTES = 16 * 1024
DECISIONS = ("approved", "rejected")


@dataclass(frozen=True)
class ReviewKey:
    """A reviewer's public key: its id (securesystemslib's key id, a sha256
    over the key's canonical form), a name, and the raw key as hex."""

    keyid: str
    name: str
    public: str
    expires: str | None = None  # UTC text; a statement made at or after it does not verify

    def sslib(self) -> SSlibKey:
        from securesystemslib.signer import SSlibKey  # type: ignore[attr-defined]  # re-exported without __all__

        return SSlibKey(self.keyid, "ed25519", "ed25519", {"public": self.public})

    @property
    def openssh(self) -> str:
        """The key as an OpenSSH public key line."""
        blob = _ssh_string(b"ssh-ed25519") + _ssh_string(bytes.fromhex(self.public))
        return f"ssh-ed25519 {base64.b64encode(blob).decode()} {self.name}"


@dataclass(frozen=True)
class Verified:
    """An envelope that verified: its statement and the key that signed it."""

    statement: dict[str, Any]
    keyid: str
    decision: str
    subject_sha256: str


def _ssh_string(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def _key_of(public_raw: bytes, name: str) -> ReviewKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from securesystemslib.signer import SSlibKey  # type: ignore[attr-defined]  # re-exported without __all__

    try:
        sslib = SSlibKey.from_crypto(Ed25519PublicKey.from_public_bytes(public_raw))
    except ValueError:
        raise InvalidInput("not an Ed25519 public key (32 bytes expected)") from None
    return ReviewKey(keyid=sslib.keyid, name=name, public=public_raw.hex())


def generate_key(path: Path, *, name: str) -> ReviewKey:
    """A new Ed25519 key: the private key at `path` (OpenSSH format, mode
    0600, never overwritten), its public line at `path`.pub."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if path.exists() or path.with_name(path.name + ".pub").exists():
        raise InvalidInput(f"{path} exists already: choose another --out, or use that key with --key")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key = _key_of(raw, name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "xb", opener=lambda p, flags: os.open(p, flags, 0o600)) as out:
            out.write(pem)
        path.with_name(path.name + ".pub").write_text(key.openssh + "\n", encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot write the key to {path}: {exc.strerror}") from None
    return key


def load_signer(path: Path, *, name: str) -> tuple[CryptoSigner, ReviewKey]:
    """The signer of a private key file (OpenSSH or PEM, Ed25519, not
    encrypted) and its public key. InvalidInput for anything else."""
    from cryptography.hazmat.primitives import serialization
    from securesystemslib.signer import CryptoSigner  # type: ignore[attr-defined]  # re-exported without __all__

    private = load_private_key(path)
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key = _key_of(raw, name)
    return CryptoSigner(private, key.sslib()), key


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from a file (OpenSSH or PEM, not encrypted)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_KEY_BYTES + 1)
    except OSError as exc:
        raise InvalidInput(f"cannot read the key {path}: {exc.strerror}") from None
    if len(data) > MAX_KEY_BYTES:
        raise InvalidInput(f"{path} is not a key: larger than {MAX_KEY_BYTES} bytes")
    try:
        if b"OPENSSH PRIVATE KEY" in data:
            private: Any = serialization.load_ssh_private_key(data, password=None)
        else:
            private = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise InvalidInput(
            f"{path} is encrypted: decrypt a copy (ssh-keygen -p) or make one with 'toolcrib key generate'"
        ) from None
    except (ValueError, binascii.Error, IndexError):
        raise InvalidInput(f"{path} is not an OpenSSH or PEM private key") from None
    except Exception as exc:  # noqa: BLE001 - cryptography's parsers raise assorted types on garbage
        raise InvalidInput(f"{path} is not a readable private key ({type(exc).__name__})") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise InvalidInput(f"{path} is not an Ed25519 key (only Ed25519 reviewer keys are supported)")
    return private


def public_key(text: str, *, name: str | None = None) -> ReviewKey:
    """A public key from an OpenSSH line (``ssh-ed25519 AAAA... comment``) or
    64 hex digits. InvalidInput for anything else."""
    text = text.strip()
    if len(text) > MAX_KEY_BYTES:
        raise InvalidInput("not a public key: too long")
    parts = text.split()
    if len(parts) == 1 and len(parts[0]) == 64:
        try:
            return _key_of(bytes.fromhex(parts[0]), name or "reviewer")
        except ValueError:
            pass
    if len(parts) >= 2 and parts[0] == "ssh-ed25519":
        try:
            blob = base64.b64decode(parts[1], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput("not an OpenSSH public key: its base64 does not decode") from None
        fields: list[bytes] = []
        at = 0
        while at < len(blob) and len(fields) < 3:
            size = int.from_bytes(blob[at : at + 4], "big")
            fields.append(blob[at + 4 : at + 4 + size])
            at += 4 + size
        if len(fields) == 2 and fields[0] == b"ssh-ed25519" and len(fields[1]) == 32 and at == len(blob):
            comment = " ".join(parts[2:])[:128] or "reviewer"
            return _key_of(fields[1], name or comment)
        raise InvalidInput("not an OpenSSH Ed25519 public key")
    raise InvalidInput("not a public key: expected 'ssh-ed25519 AAAA...' (an OpenSSH .pub line) or 64 hex digits")


def review_statement(
    *, ref: str, sha256: str, decision: str, reviewer: str, note: str | None, at: str, answers: str | None = None
) -> dict[str, Any]:
    """The in-toto Statement v1 of one decision about one version's content."""
    predicate: dict[str, Any] = {"decision": decision, "reviewer": reviewer, "reviewedAt": at, "note": note}
    if answers is not None:
        predicate["answers"] = answers
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": ref, "digest": {"sha256": sha256}}],
        "predicateType": REVIEW_PREDICATE,
        "predicate": predicate,
    }


def sign_statement(statement: dict[str, Any], signer: CryptoSigner) -> dict[str, Any]:
    """The DSSE envelope (as a dict) of `statement`, signed by `signer`."""
    from securesystemslib.dsse import Envelope

    envelope = Envelope(payload=canonical_json(statement).encode("utf-8"), payload_type=PAYLOAD_TYPE, signatures={})
    envelope.sign(signer)
    return dict(envelope.to_dict())


def parse_envelope(value: Any) -> dict[str, Any]:
    """An envelope from JSON text or a dict, shape-checked; InvalidInput if it
    is not one (exit 2: unreadable)."""
    if isinstance(value, str):
        value = parse_json_text(
            value,
            MAX_ENVELOPE_BYTES,
            too_large=f"envelope larger than {MAX_ENVELOPE_BYTES} bytes",
            not_json="envelope is not JSON",
        )
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("payload"), str)
        or not isinstance(value.get("payloadType"), str)
        or not isinstance(value.get("signatures"), list)
        or not all(isinstance(s, dict) and isinstance(s.get("sig"), str) for s in value["signatures"])
    ):
        raise InvalidInput("not a DSSE envelope (payload, payloadType and signatures expected)")
    if len(value["payload"]) > MAX_ENVELOPE_BYTES or len(value["signatures"]) > 16:
        raise InvalidInput("envelope too large")
    return value


def evidence_statement(*, ref: str, sha256: str, verification: dict[str, Any], signed_at: str) -> dict[str, Any]:
    """The stored verification evidence of a version as an in-toto Statement
    with in-toto's Test Result predicate (v0.1): the verdict, each case by
    name as passed or failed, and how it ran (backend, policy, isolation
    layers, when) as the configuration's annotations."""
    cases = verification.get("cases") or []

    def label(case: dict[str, Any]) -> str:
        return str(case.get("name") or f"case {case.get('index')}")

    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": ref, "digest": {"sha256": sha256}}],
        "predicateType": TEST_RESULT_PREDICATE,
        "predicate": {
            "result": "PASSED" if verification.get("status") == "verified" else "FAILED",
            "configuration": [
                {
                    "name": "toolcrib verify",
                    "annotations": {
                        "backend": verification.get("backend"),
                        "policy": verification.get("policy"),
                        "layers": verification.get("layers"),
                        "verifiedAt": verification.get("verified_at"),
                        "signedAt": signed_at,
                    },
                }
            ],
            "passedTests": [label(c) for c in cases if c.get("passed")],
            "warnedTests": [],
            "failedTests": [label(c) for c in cases if not c.get("passed")],
        },
    }


def _made_at(statement: dict[str, Any]) -> Any:
    """When a statement says it was signed (for a key's expiry)."""
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        return None
    if statement.get("predicateType") == TEST_RESULT_PREDICATE:
        configuration = predicate.get("configuration")
        first = configuration[0] if isinstance(configuration, list) and configuration else None
        annotations = first.get("annotations") if isinstance(first, dict) else None
        return annotations.get("signedAt") if isinstance(annotations, dict) else None
    return predicate.get("reviewedAt")


def verify_envelope(
    envelope: Any, trusted: list[ReviewKey], *, sha256: str, predicate_types: tuple[str, ...] = (REVIEW_PREDICATE,)
) -> Verified:
    """Check one envelope: signed by one of `trusted`, an in-toto Statement
    with one of `predicate_types` (the human-review predicate; in-toto's Test
    Result too where asked), about the content `sha256`. `Verified.decision`
    is the review's decision, or the test result (PASSED, WARNED, FAILED).
    VerificationFailed (naming what did not match) or InvalidInput."""
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import VerificationError

    value = parse_envelope(envelope)
    if value["payloadType"] != PAYLOAD_TYPE:
        raise VerificationFailed(f"envelope payloadType is {value['payloadType'][:80]!r}, not {PAYLOAD_TYPE}")
    try:
        # from_dict consumes the dicts it is given: a copy keeps the caller's envelope whole.
        parsed = Envelope.from_dict(copy.deepcopy(value))
    except (KeyError, ValueError, TypeError, binascii.Error):
        raise InvalidInput("not a DSSE envelope (its payload or a signature is not base64)") from None
    if not trusted:
        raise VerificationFailed("no trusted reviewer key in this registry (toolcrib key trust)")
    try:
        accepted = parsed.verify([k.sslib() for k in trusted], 1)
    except VerificationError:
        signers = ", ".join(sorted({str(s.get("keyid", "?"))[:16] for s in value["signatures"]})) or "none"
        known = {k.keyid for k in trusted}
        if any(s.get("keyid") in known for s in value["signatures"]):
            raise VerificationFailed(f"signature does not verify (key {signers}): forged or altered") from None
        raise VerificationFailed(f"signed by an unknown key ({signers}): not one this registry trusts") from None
    try:
        statement = json.loads(parsed.payload)
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise VerificationFailed("the signed payload is not JSON") from None
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        raise VerificationFailed("the signed payload is not an in-toto Statement v1")
    if statement.get("predicateType") not in predicate_types:
        raise VerificationFailed(f"the statement's predicateType is not {' or '.join(predicate_types)}")
    subjects = statement.get("subject")
    digests = (
        [
            s.get("digest", {}).get("sha256")
            for s in subjects
            if isinstance(s, dict) and isinstance(s.get("digest"), dict)
        ]
        if isinstance(subjects, list)
        else []
    )
    if sha256 not in digests:
        shown = ", ".join(str(d)[:12] for d in digests) or "none"
        raise VerificationFailed(f"the statement is about another digest ({shown}), not sha256:{sha256[:12]}")
    predicate = statement.get("predicate")
    if statement["predicateType"] == TEST_RESULT_PREDICATE:
        decision = predicate.get("result") if isinstance(predicate, dict) else None
        if decision not in ("PASSED", "WARNED", "FAILED"):
            raise VerificationFailed("the statement's test result is not PASSED, WARNED or FAILED")
    else:
        decision = predicate.get("decision") if isinstance(predicate, dict) else None
        if decision not in DECISIONS:
            raise VerificationFailed("the statement's predicate has no decision (approved or rejected)")
    keyid = next(iter(accepted))
    key = next(k for k in trusted if k.keyid == keyid)
    if key.expires is not None:
        made = _made_at(statement)
        if not isinstance(made, str) or made >= key.expires:
            raise VerificationFailed(
                f"signed by key {keyid[:16]} at {str(made)[:40]}, after it expired ({key.expires})"
            )
    return Verified(statement=statement, keyid=keyid, decision=str(decision), subject_sha256=sha256)
