"""Reading and checking the audit log: audit, audit verify."""

from __future__ import annotations

import sys
from typing import Any

import click

from .common import echo_json, json_option, open_registry
from .streaming import echo_json_array, echo_table_stream

__all__ = ["COMMANDS"]


def _summary(details: dict[str, Any]) -> str:
    # What went wrong first: a table cell is capped (cli/common.py).
    keys = ("status", "limit", "error_type", "error_message", "reason", "message", "verdict", "backend", "duration_ms")
    return " ".join(f"{k}={details[k]}" for k in keys if details.get(k) not in (None, ""))


@click.group(invoke_without_command=True)
@click.option("--tool", help="Only entries about this NAME or NAME@VERSION.")
@click.option("--event", help="Only this event (add, verify, call, deprecate, yank, import, ...).")
@click.option("--since", metavar="WHEN", help="Only entries at or after this ISO date or time (UTC).")
@click.option("--limit", "limit", type=click.IntRange(1), help="Only the newest N entries.")
@json_option
@click.pass_context
def audit(
    ctx: click.Context, tool: str | None, event: str | None, since: str | None, limit: int | None, json_output: bool
) -> None:
    """List the audit log: every add, verify, call and lifecycle change.

    Entries are hash-chained; 'toolcrib audit verify' checks the chain.
    Written as they are read (--since finds its entries by an index on time).

    \b
    Examples:
        toolcrib audit --limit 20
        toolcrib audit --tool sort_words --event call --json
        toolcrib audit --since 2026-11-01
    """
    if ctx.invoked_subcommand is not None:
        return
    # Written as it is read: a log of a million entries is never held whole.
    entries = open_registry().iter_audit(tool=tool, event=event, since=since, limit=limit)
    if json_output:
        echo_json_array(e.model_dump(mode="json") for e in entries)
        return
    echo_table_stream(
        ["SEQ", "AT", "ACTOR", "EVENT", "TOOL", "DETAILS"],
        ((e.seq, e.at, e.actor, e.event, e.tool, _summary(e.details)) for e in entries),
    )


def _read_small(path: str, what: str, limit: int) -> str:
    """A checkpoint or proof file (or - for stdin), bounded; exit 2 if unreadable."""
    from .common import CLIError

    data: bytes
    try:
        if path == "-":
            data = sys.stdin.buffer.read(limit + 1)
        else:
            with open(path, "rb") as handle:
                data = handle.read(limit + 1)
    except OSError as exc:
        raise CLIError(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise CLIError(f"{what} {path} is larger than {limit} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CLIError(f"{what} {path} is not UTF-8 text") from None


@audit.command(name="checkpoint")
@click.option(
    "--key",
    "key_path",
    metavar="FILE",
    help="The Ed25519 private key that signs it (default: "
    "$TOOLCRIB_KEY, else ~/.config/toolcrib/reviewer_ed25519); any key 'toolcrib key trust' trusts.",
)
@json_option
def audit_checkpoint(key_path: str | None, json_output: bool) -> None:
    """Print a signed checkpoint of the audit log (C2SP signed note: origin, size, root hash).

    Keep it somewhere else (a reviewer's machine, CI): 'toolcrib audit
    verify --checkpoint FILE' later fails if the log no longer holds what it
    committed to, even after a rewrite of the whole registry file.

    \b
    Examples:
        toolcrib audit checkpoint > audit.checkpoint
        toolcrib audit checkpoint --key ~/.ssh/id_ed25519 --json
    """
    from pathlib import Path

    from ..registry.attest import load_private_key
    from ..registry.checkpoint import NoteKey, parse_checkpoint
    from .common import CLIError
    from .review import default_key_path

    path = Path(key_path).expanduser() if key_path else default_key_path()
    if not path.exists():
        raise CLIError(f"no key at {path}: make one with 'toolcrib key generate' or pass --key FILE")
    text = open_registry().audit_checkpoint(path)
    if json_output:
        from cryptography.hazmat.primitives import serialization

        cp = parse_checkpoint(text)
        public = (
            load_private_key(path).public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )
        verifier = NoteKey(cp.origin, public).text
        echo_json({"origin": cp.origin, "size": cp.size, "checkpoint": text, "verifier": verifier})
    else:
        click.echo(text, nl=False)


@audit.command(name="prove")
@click.argument("seq", type=click.IntRange(1), required=False)
@click.option("--since", "since", metavar="CHECKPOINT", help="A checkpoint file: prove today's log extends it.")
def audit_prove(seq: int | None, since: str | None) -> None:
    """Prove an entry is in the log, or that the log extends an older checkpoint (JSON).

    SEQ: an RFC 9162 inclusion proof of that entry (the entry, its audit
    path, the tree size and root). --since CHECKPOINT: a consistency proof
    from the checkpoint's size to today's. Either is checked offline with
    'toolcrib audit verify --checkpoint CP --proof FILE'.

    \b
    Examples:
        toolcrib audit prove 42 > entry42.proof
        toolcrib audit prove --since audit.checkpoint > since.proof
    """
    from ..registry.checkpoint import MAX_CHECKPOINT_BYTES
    from .common import CLIError

    if (seq is None) == (since is None):
        raise CLIError("give either SEQ or --since CHECKPOINT")
    reg = open_registry()
    if seq is not None:
        echo_json(reg.audit_prove(seq))
    else:
        assert since is not None
        echo_json(reg.audit_prove_since(_read_small(since, "checkpoint", MAX_CHECKPOINT_BYTES)))


@audit.command(name="verify")
@click.option(
    "--checkpoint",
    "checkpoint_path",
    metavar="FILE",
    help="Also check that the log still holds what this signed checkpoint committed to.",
)
@click.option(
    "--proof",
    "proof_path",
    metavar="FILE",
    help="With --checkpoint: check this proof ('audit prove') against it, offline.",
)
@click.option(
    "verifiers",
    "--verifier",
    multiple=True,
    metavar="KEY",
    help="A verifier key (NAME+HASH+KEY, 'audit checkpoint --json' prints it) the checkpoint must be "
    "signed by. Default: the keys the registry trusts.",
)
@json_option
def audit_verify(
    checkpoint_path: str | None, proof_path: str | None, verifiers: tuple[str, ...], json_output: bool
) -> None:
    """Recompute the audit hash chain; exit 1 naming the first bad entry.

    With --checkpoint FILE: the checkpoint must be signed by a trusted key (or
    --verifier), be of this log, and the log's first SIZE entries must hash to
    its root (recomputed from the entries): a rewrite of the whole file since
    the checkpoint fails here. With --proof too: the proof is checked against
    the checkpoint alone.

    \b
    Examples:
        toolcrib audit verify
        toolcrib audit verify --checkpoint audit.checkpoint
        toolcrib audit verify --checkpoint audit.checkpoint --proof entry42.proof --verifier "$VKEY"
    """
    if proof_path is not None or checkpoint_path is not None:
        _verify_checkpoint(checkpoint_path, proof_path, list(verifiers), json_output)
        return
    report = open_registry().audit_verify()
    if json_output:
        echo_json(report.model_dump(mode="json"))
    elif report.ok:
        click.echo(f"audit log intact: {report.entries} entries")
    else:
        click.echo(f"Error: audit log broken at entry {report.first_bad}: {report.problem}", err=True)
    if not report.ok:
        sys.exit(1)


def _verify_checkpoint(
    checkpoint_path: str | None, proof_path: str | None, verifiers: list[str], json_output: bool
) -> None:
    from ..registry.checkpoint import MAX_CHECKPOINT_BYTES, MAX_PROOF_BYTES, check_proof, parse_checkpoint, verifier_key
    from ..registry.errors import VerificationFailed
    from .common import CLIError, echo_text

    if checkpoint_path is None:
        raise CLIError("--proof needs --checkpoint: a proof is checked against a checkpoint")
    text = _read_small(checkpoint_path, "checkpoint", MAX_CHECKPOINT_BYTES)
    try:
        if proof_path is None:
            line = open_registry().audit_verify_checkpoint(text, verifiers or None)
        else:
            proof = _read_small(proof_path, "proof", MAX_PROOF_BYTES)
            cp = parse_checkpoint(text)
            keys = [verifier_key(v) for v in verifiers] if verifiers else None
            if keys is None:
                from ..registry.checkpoint import NoteKey

                keys = [NoteKey(cp.origin, bytes.fromhex(k.public)) for k in open_registry().reviewer_keys()]
            cp.verify(keys)
            line = check_proof(cp, proof)
    except VerificationFailed as exc:
        if json_output:
            echo_json({"ok": False, "problem": exc.message})
            sys.exit(1)
        raise
    if json_output:
        echo_json({"ok": True, "detail": line})
    else:
        echo_text(line)


COMMANDS = [audit]
