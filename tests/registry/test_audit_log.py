"""The audit log as a verifiable log (issue 18): the Merkle tree kept beside
the chain, signed checkpoints (C2SP signed note), inclusion and consistency
proofs, and a whole-file rewrite caught from a checkpoint taken before it;
every bad input refused on one line with exit 1 (does not verify) or 2
(unreadable). Real Ed25519 keys, real SQLite files, the CLI in-process."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path

import pytest
from toolcrib.registry.audit import GENESIS_HASH, entry_hash
from toolcrib.registry.audit_tree import backfill, row_leaf
from toolcrib.registry.checkpoint import parse_checkpoint
from toolcrib.registry.merkle import root_of
from toolcrib.registry.migrations import MIGRATIONS
from toolcrib.registry.store import open_database
from toolcrib.registry.store_audit import audit_rows

from toolcrib import Registry


@pytest.fixture
def key(tc, tmp_path: Path) -> Path:
    assert tc("init", "--review", "none").exit_code == 0
    path = tmp_path / "log_ed25519"
    assert tc("key", "generate", "--out", str(path)).exit_code == 0
    return path


def _root_from_entries(path: Path) -> tuple[int, bytes]:
    db = open_database(path)
    try:
        leaves = [row_leaf(r) for r in audit_rows(db.conn)]
    finally:
        db.close()
    return len(leaves), root_of(leaves)


def _write(tmp_path: Path, name: str, text: str) -> str:
    (tmp_path / name).write_text(text)
    return str(tmp_path / name)


def _fill(reg_path: Path, n: int) -> None:
    with Registry(reg_path, actor="filler") as reg:
        for i in range(n):
            reg.set_setting(f"note.{i}", f"value {i}")


def test_the_stored_tree_is_the_rfc_tree_of_the_entries(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    for n in (1, 2, 5, 13):
        _fill(path, n)
        with Registry(path) as reg:
            proof = reg.audit_prove(1)
        size, root = _root_from_entries(path)
        assert proof["tree_size"] == size and base64.b64decode(proof["root_hash"]) == root


def test_an_existing_log_migrates_without_a_byte_changing(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = open_database(path)
    MIGRATIONS.apply(db, stop_before="m010_audit_tree")
    db.close()
    # Entries written by an older toolcrib: no tree yet.
    from toolcrib.registry.audit import append_entry
    from toolcrib.registry.store import write_transaction

    db = open_database(path)
    with write_transaction(db):
        for i in range(7):
            append_entry(db, actor="old", event="setting", details={"i": i})
    before = [tuple(r) for r in audit_rows(db.conn)]
    db.close()
    with Registry(path) as reg:
        assert reg.audit_verify().ok
        proof = reg.audit_prove(7)
    db = open_database(path)
    after = [tuple(r) for r in audit_rows(db.conn)][: len(before)]
    db.close()
    assert after == before
    assert proof["tree_size"] == 7
    assert base64.b64decode(proof["root_hash"]) == _root_from_entries(path)[1]


def test_checkpoint_proofs_and_a_later_log(tc, tmp_path: Path, key: Path, cli_registry: Path) -> None:
    made = tc("audit", "checkpoint", "--key", str(key), "--json")
    assert made.exit_code == 0, made.output
    data = json.loads(made.stdout)
    cp = parse_checkpoint(data["checkpoint"])
    assert cp.size == data["size"] and cp.origin.startswith("toolcrib.local/audit/")
    assert data["checkpoint"].splitlines()[4].startswith("\u2014 " + cp.origin + " ")
    old = _write(tmp_path, "old.checkpoint", data["checkpoint"])
    ok = tc("audit", "verify", "--checkpoint", old)
    assert ok.exit_code == 0 and "checkpoint verified" in ok.stdout
    # An inclusion proof of entry 2, checked offline with the verifier key alone.
    proof = _write(tmp_path, "e2.proof", tc("audit", "prove", "2").stdout)
    offline = tc("audit", "verify", "--checkpoint", old, "--proof", proof, "--verifier", data["verifier"])
    assert offline.exit_code == 0 and "entry 2 is in the log" in offline.stdout
    # The log grows; it still extends the old checkpoint.
    _fill(cli_registry, 9)
    since = _write(tmp_path, "since.proof", tc("audit", "prove", "--since", old).stdout)
    extends = tc("audit", "verify", "--checkpoint", old, "--proof", since, "--verifier", data["verifier"])
    assert extends.exit_code == 0 and f"extends the checkpoint's {cp.size}" in extends.stdout
    assert tc("audit", "verify", "--checkpoint", old).exit_code == 0


def _rewrite_whole_log(path: Path) -> None:
    """What someone who can write the file does: change an early entry, then
    recompute every later hash and the whole tree, so the chain is intact."""
    conn = sqlite3.connect(path)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name LIKE 'audit%'"):
        conn.execute(f"DROP TRIGGER {name}")
    rows = conn.execute("SELECT seq, at, actor, event, tool, details FROM audit ORDER BY seq").fetchall()
    prev = GENESIS_HASH
    for seq, at, actor, event, tool, details in rows:
        if seq == 2:
            actor = "someone-else"
        entry = {"seq": seq, "at": at, "actor": actor, "event": event, "tool": tool,
                 "details": json.loads(details), "prev_hash": prev}  # fmt: skip
        digest = entry_hash(entry)
        conn.execute(
            "UPDATE audit SET actor = ?, prev_hash = ?, entry_hash = ? WHERE seq = ?", [actor, prev, digest, seq]
        )
        prev = digest
    conn.execute("DELETE FROM audit_tree")
    backfill(conn, [tuple(r) for r in conn.execute("SELECT * FROM audit ORDER BY seq")])
    conn.commit()
    conn.close()


def test_a_whole_file_rewrite_is_caught_from_an_earlier_checkpoint(
    tc, tmp_path: Path, key: Path, cli_registry: Path
) -> None:
    _fill(cli_registry, 4)
    old = _write(tmp_path, "cp", tc("audit", "checkpoint", "--key", str(key)).stdout)
    _rewrite_whole_log(cli_registry)
    assert tc("audit", "verify").exit_code == 0  # the chain alone cannot tell
    caught = tc("audit", "verify", "--checkpoint", old)
    assert caught.exit_code == 1
    [line] = [x for x in caught.stderr.splitlines() if x.strip()]
    assert "not the ones the checkpoint signed: the log was rewritten" in line
    # The rewritten log cannot prove it extends the checkpoint either.
    since = _write(tmp_path, "since", tc("audit", "prove", "--since", old).stdout)
    assert tc("audit", "verify", "--checkpoint", old, "--proof", since).exit_code == 1


def _resign(text: str, key: Path, **changes: str) -> str:
    """The checkpoint with its origin or size changed, signed again with `key`."""
    from toolcrib.registry.attest import load_private_key
    from toolcrib.registry.checkpoint import sign_checkpoint

    cp = parse_checkpoint(text)
    origin = changes.get("origin", cp.origin)
    size = int(changes.get("size", cp.size))
    return sign_checkpoint(origin, size, cp.root, load_private_key(key))


@pytest.mark.parametrize(
    ("case", "code", "words"),
    [
        ("another log", 1, "another log"),
        ("altered size", 1, "does not verify"),
        ("unknown key", 1, "unknown key"),
        ("entries removed", 1, "fewer than"),
        ("garbage", 2, "not a checkpoint"),
        ("unsigned", 2, "not a checkpoint"),
        ("missing file", 2, "cannot read"),
    ],
)
def test_bad_checkpoints_are_refused_on_one_line(
    tc, tmp_path: Path, key: Path, case: str, code: int, words: str
) -> None:
    text = tc("audit", "checkpoint", "--key", str(key)).stdout
    if case == "another log":
        text = _resign(text, key, origin="toolcrib.local/audit/0000000000000000")
    elif case == "altered size":
        lines = text.split("\n")
        lines[1] = str(int(lines[1]) - 1)
        text = "\n".join(lines)
    elif case == "unknown key":
        other = tmp_path / "other"
        assert tc("key", "generate", "--out", str(other), "--no-trust").exit_code == 0
        text = _resign(text, other)
    elif case == "entries removed":
        text = _resign(text, key, size="999")
    elif case == "garbage":
        text = "\x00 not a checkpoint"
    elif case == "unsigned":
        text = text.split("\n\n")[0] + "\n\n"
    path = str(tmp_path / "nope") if case == "missing file" else _write(tmp_path, "cp", text)
    result = tc("audit", "verify", "--checkpoint", path)
    assert result.exit_code == code, result.output
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("case", "code", "words"),
    [
        ("flipped hash", 1, "does not verify"),
        ("other entry", 1, "does not verify"),
        ("another log", 1, "another log"),
        ("not json", 2, "not a proof"),
        ("bad hash", 2, "not a base64 32-byte hash"),
    ],
)
def test_tampered_proofs_are_refused(
    tc, tmp_path: Path, key: Path, cli_registry: Path, case: str, code: int, words: str
) -> None:
    _fill(cli_registry, 2)
    cp = _write(tmp_path, "cp", tc("audit", "checkpoint", "--key", str(key)).stdout)
    proof = json.loads(tc("audit", "prove", "2").stdout)
    if case == "flipped hash":
        raw = bytearray(base64.b64decode(proof["hashes"][0]))
        raw[0] ^= 1
        proof["hashes"][0] = base64.b64encode(bytes(raw)).decode()
    elif case == "other entry":
        proof["entry"]["actor"] = "mallory"
    elif case == "another log":
        proof["origin"] = "elsewhere"
    elif case == "bad hash":
        proof["hashes"] = ["AAAA"]
    text = "{not json" if case == "not json" else json.dumps(proof)
    result = tc("audit", "verify", "--checkpoint", cp, "--proof", _write(tmp_path, "p", text))
    assert result.exit_code == code, result.output
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and words in lines[0]


def test_verifier_keys_round_trip_whatever_their_base64_holds() -> None:
    """A key's base64 may hold '+': the text splits at the first two only."""
    from toolcrib.registry.checkpoint import NoteKey, verifier_key

    for byte in range(256):
        key = NoteKey("toolcrib.local/audit/0123456789abcdef", bytes([byte]) * 32)
        assert verifier_key(key.text) == key


def test_the_tree_stays_right_across_writers_and_a_rolled_back_append(tmp_path: Path) -> None:
    """The right edge an append caches is keyed by the log's head hash: a
    second writer's appends and a rolled-back append make it miss, never lie."""
    from toolcrib.registry.audit import append_row
    from toolcrib.registry.store import write_transaction

    path = tmp_path / "r.db"
    with Registry(path, actor="a") as a, Registry(path, actor="b") as b:
        for i in range(23):
            (a if i % 3 else b).set_setting("k", f"v{i}")
            if i == 11:
                conn = a.db.conn
                with pytest.raises(RuntimeError), write_transaction(conn):
                    append_row(conn, actor="a", event="setting", details={"doomed": True})
                    raise RuntimeError("rolled back")
        proof = a.audit_prove(5)
    size, root = _root_from_entries(path)
    assert proof["tree_size"] == size == 24 and base64.b64decode(proof["root_hash"]) == root
