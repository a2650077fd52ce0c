"""The reviewer's path on the command line (issue 18): init --review, key
generate/trust, review (queue and one version), approve, reject, attest
verify, and their refusals with the documented exit codes. Real keys made in
the test; the sandbox is a FakeBackend (review is bookkeeping)."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from toolcrib.sandbox.fake import FakeBackend

V1 = "def double(x: int) -> int:\n    return 2 * x\n"
V2 = "def double(x: int) -> int:\n    return x + x\n"
TESTS = [{"args": {"x": 2}, "expected": 4}]


@pytest.fixture(autouse=True)
def _fake(fake_sandbox: FakeBackend) -> None:
    pass


@pytest.fixture
def key(tc, tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "alice_ed25519"
    assert tc("init").exit_code == 0
    made = tc("key", "generate", "--out", str(path), "--json")
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["trusted"] is True
    return path


def _add(tc, tmp_path: Path, source: str, generator: str = "gpt-4o") -> str:
    src = tmp_path / "double.py"
    src.write_text(source)
    tests = tmp_path / "double.tests.json"
    tests.write_text(json.dumps(TESTS))
    added = tc("add", str(src), "--tests", str(tests), "--generator", generator, "--json")
    assert added.exit_code == 0, added.output
    ref = json.loads(added.stdout)["ref"]
    assert tc("verify", ref).exit_code == 0
    return str(ref)


def test_the_reviewers_path(tc, tmp_path: Path, key: Path) -> None:
    init = tc("init", "--json")
    assert json.loads(init.stdout)["review"] == "models"
    ref = _add(tc, tmp_path, V1)
    refused = tc("call", ref, "--args", '{"x": 1}')
    assert refused.exit_code == 4 and f"toolcrib approve {ref}" in refused.stderr
    queue = json.loads(tc("review", "--json").stdout)
    assert [i["ref"] for i in queue["queue"]] == [ref] and "gpt-4o" in queue["queue"][0]["why"]
    shown = tc("review", ref)
    assert shown.exit_code == 0
    assert "1 | def double(x: int) -> int:" in shown.stdout and "approve: toolcrib approve" in shown.stdout
    approved = tc("approve", ref, "--key", str(key), "--note", "fine", "--json")
    assert approved.exit_code == 0, approved.output
    assert json.loads(approved.stdout)["decision"] == "approved"
    assert tc("call", ref, "--args", '{"x": 4}').stdout.strip() == "8"
    checked = tc("attest", "verify", ref)
    assert checked.exit_code == 0 and "verified" in checked.stdout
    # The next version waits; review shows the diff against the served one.
    ref2 = _add(tc, tmp_path, V2)
    doc = json.loads(tc("review", ref2, "--json").stdout)
    assert doc["replaces"] == ref and "+    return x + x" in doc["diff"]["source"]
    assert doc["evidence"]["status"] == "verified" and doc["waiting"] is True
    assert tc("call", "double", "--args", '{"x": 1}').exit_code == 4  # NAME is the newest: not approved
    assert tc("call", ref, "--args", '{"x": 1}').exit_code == 0  # the approved one still runs, pinned
    rejected = tc("reject", ref2, "--reason", "same thing, more code", "--key", str(key))
    assert rejected.exit_code == 0, rejected.output
    assert "rejected" in tc("call", ref2, "--args", '{"x": 1}').stderr
    events = [e["event"] for e in json.loads(tc("audit", "--json").stdout)]
    assert events.count("review") == 2 and "key-trust" in events


def test_init_review_changes_an_existing_registry(tc) -> None:
    assert tc("init").exit_code == 0
    assert "review: all" in tc("init", "--review", "all").stdout
    entry = json.loads(tc("audit", "--event", "setting", "--json").stdout)[-1]
    assert entry["details"] == {"key": "review", "value": "all", "was": "models"}
    assert tc("init", "--review", "sometimes").exit_code == 2


@pytest.mark.parametrize(
    ("case", "code", "words"),
    [
        ("unverified", 4, "verify"),
        ("yanked", 4, "yanked"),
        ("not queued", 4, "not in the review queue"),
        ("no key", 2, "key generate"),
        ("untrusted key", 4, "not trusted"),
        ("garbage key", 2, "not an OpenSSH or PEM private key"),
    ],
)
def test_approve_refusals(tc, tmp_path: Path, key: Path, case: str, code: int, words: str) -> None:
    use = key
    if case == "unverified":
        (tmp_path / "u.py").write_text(V1)
        ref = json.loads(tc("add", str(tmp_path / "u.py"), "--generator", "m", "--json").stdout)["ref"]
    else:
        ref = _add(tc, tmp_path, V1, generator="human" if case == "not queued" else "m")
    if case == "yanked":
        tc("yank", ref, "--reason", "bad")
    elif case == "no key":
        use = tmp_path / "missing"
    elif case == "untrusted key":
        use = tmp_path / "other"
        assert tc("key", "generate", "--out", str(use), "--no-trust").exit_code == 0
    elif case == "garbage key":
        use = tmp_path / "garbage"
        use.write_bytes(b"\x00not a key\n")
    result = tc("approve", ref, "--key", str(use))
    assert result.exit_code == code, result.output
    [line] = [x for x in result.stderr.splitlines() if x.strip()]
    assert words in line and "Traceback" not in result.stderr


def test_a_forged_or_altered_envelope_fails_attest_verify(tc, tmp_path: Path, key: Path, cli_registry: Path) -> None:
    ref = _add(tc, tmp_path, V1)
    assert tc("approve", ref, "--key", str(key)).exit_code == 0
    db = sqlite3.connect(cli_registry)
    (envelope,) = db.execute("SELECT envelope FROM reviews").fetchone()
    forged = json.loads(envelope)
    statement = json.loads(base64.b64decode(forged["payload"]))
    statement["predicate"]["note"] = "approved by someone else"
    forged["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    db.execute("UPDATE reviews SET envelope = ?", [json.dumps(forged)])
    db.commit()
    result = tc("attest", "verify", ref)
    assert result.exit_code == 1 and "signature does not verify" in result.stderr
    db.execute("UPDATE reviews SET envelope = ?", ['{"payload": 1}'])
    db.commit()
    db.close()
    result = tc("attest", "verify", ref)
    assert result.exit_code == 1 and "not a DSSE envelope" in result.stderr


def test_key_trust_reads_an_openssh_public_key(tc, tmp_path: Path) -> None:
    out = tmp_path / "bob"
    assert tc("key", "generate", "--out", str(out), "--no-trust").exit_code == 0
    assert tc("init").exit_code == 0
    trusted = tc("key", "trust", str(out) + ".pub", "--json")
    assert trusted.exit_code == 0 and json.loads(trusted.stdout)["added"] is True
    listed = json.loads(tc("key", "list", "--json").stdout)
    assert listed[0]["public"].startswith("ssh-ed25519 ")
    assert tc("key", "trust", "ssh-ed25519 AAAA garbage").exit_code == 2
    assert tc("key", "generate", "--out", str(out)).exit_code == 2  # never overwritten


def test_export_and_import_carry_signed_decisions(tc, tmp_path: Path, key: Path) -> None:
    """Through the CLI (the streamed export): the approval travels in the
    bundle and counts where the key is trusted, and only there."""
    from click.testing import CliRunner
    from toolcrib.cli import cli

    ref = _add(tc, tmp_path, V1)
    assert tc("approve", ref, "--key", str(key)).exit_code == 0
    bundle = tmp_path / "bundle.json"
    assert tc("export", "double", "-o", str(bundle)).exit_code == 0
    carried = json.loads(bundle.read_text())["attestations"]
    assert [a["ref"] for a in carried] == [ref]

    def other(name: str, *args: str) -> Any:
        return CliRunner().invoke(cli, ["--registry", str(tmp_path / name), *args], catch_exceptions=False)

    for name, trusted in (("trusting.db", True), ("stranger.db", False)):
        assert other(name, "init").exit_code == 0
        if trusted:
            assert other(name, "key", "trust", str(key) + ".pub").exit_code == 0
        assert other(name, "import", str(bundle)).exit_code == 0
        assert other(name, "verify", ref).exit_code == 0
        called = other(name, "call", ref, "--args", '{"x": 2}')
        assert called.exit_code == (0 if trusted else 4), called.output


def test_attest_verify_fails_for_a_key_expired_before_it_signed(tc, tmp_path: Path, key: Path) -> None:
    ref = _add(tc, tmp_path, V1)
    assert tc("approve", ref, "--key", str(key)).exit_code == 0
    assert tc("attest", "verify", ref).exit_code == 0
    assert tc("key", "trust", str(key) + ".pub", "--expires", "2001-02-03").exit_code == 0
    listed = json.loads(tc("key", "list", "--json").stdout)
    assert listed[0]["expires"] == "2001-02-03T00:00:00.000000Z"
    result = tc("attest", "verify", ref)
    assert result.exit_code == 1 and "after it expired (2001-02-03" in result.stderr
    assert tc("key", "trust", str(key) + ".pub", "--expires", "not a date").exit_code == 2


def test_the_review_page_is_terminal_safe_and_highlighted_only_by_us(tc, tmp_path: Path, key: Path) -> None:
    """What a model wrote cannot drive the reviewer's terminal: its control
    characters are escaped; on a terminal the only escape codes are the
    highlighting's own (Pygments, when installed)."""
    from toolcrib.cli.review import _text

    hostile = 'def double(x: int) -> int:\n    """Twice \x1b[2J\x1b[31mx."""\n    return 2 * x\n'
    ref = _add(tc, tmp_path, hostile)
    plain = tc("review", ref)
    assert plain.exit_code == 0 and "\x1b" not in plain.stdout and "\\x1b[2J" in plain.stdout
    doc = json.loads(tc("review", ref, "--json").stdout)
    coloured = _text(doc, colour=True)
    assert "\\x1b[2J" in coloured and "\x1b[2J" not in coloured
    pytest.importorskip("pygments")
    assert "\x1b[" in coloured  # the highlighting's colours


# A throwaway key made for this test by `ssh-keygen -t ed25519 -N "" -C alice@laptop`
# (OpenSSH's own format, written by OpenSSH rather than by toolcrib): not a credential.
SSH_KEYGEN_PRIVATE = """-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACCNT2+F/Aolj9OoKUQbwRztrdVFiHg9kQrB3gn+Q/h/NAAAAJBWOXpaVjl6
WgAAAAtzc2gtZWQyNTUxOQAAACCNT2+F/Aolj9OoKUQbwRztrdVFiHg9kQrB3gn+Q/h/NA
AAAEAz/Ky/3YYqPcwsWPe4DCcM0+n2eE23PPFQ+BSiEaUQSY1Pb4X8CiWP06gpRBvBHO2t
1UWIeD2RCsHeCf5D+H80AAAADGFsaWNlQGxhcHRvcAE=
-----END OPENSSH PRIVATE KEY-----
"""
SSH_KEYGEN_PUBLIC = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII1Pb4X8CiWP06gpRBvBHO2t1UWIeD2RCsHeCf5D+H80 alice@laptop\n"


def test_an_existing_openssh_key_approves(tc, tmp_path: Path) -> None:
    private = tmp_path / "id_ed25519"
    private.write_text(SSH_KEYGEN_PRIVATE)
    (tmp_path / "id_ed25519.pub").write_text(SSH_KEYGEN_PUBLIC)
    assert tc("init").exit_code == 0
    trusted = tc("key", "trust", str(tmp_path / "id_ed25519.pub"), "--json")
    assert trusted.exit_code == 0 and json.loads(trusted.stdout)["name"] == "alice@laptop"
    ref = _add(tc, tmp_path, V1)
    approved = tc("approve", ref, "--key", str(private), "--json")
    assert approved.exit_code == 0, approved.output
    assert json.loads(approved.stdout)["keyid"] == json.loads(trusted.stdout)["keyid"]
    assert tc("attest", "verify", ref).exit_code == 0


def test_review_shows_the_checks_beside_verification(tc, tmp_path: Path, cli_registry: Path) -> None:
    """The hook for issue 19's reports: rows of its `checks` table about the
    version appear in `review REF` (and none is an empty answer)."""
    ref = _add(tc, tmp_path, V1)
    assert json.loads(tc("review", ref, "--json").stdout)["reports"] == {}
    db = sqlite3.connect(cli_registry)
    (vid, sha) = db.execute("SELECT id, sha256 FROM versions").fetchone()
    db.execute(
        "INSERT INTO checks (version_id, sha256, kind, settings, summary, backend, policy, ran_by, ran_at) "
        "VALUES (?, ?, 'fuzz', '{}', '{\"inputs\": 100, \"findings\": 0}', 'restricted', NULL, 't', 'now')",
        [vid, sha],
    )
    db.commit()
    db.close()
    doc = json.loads(tc("review", ref, "--json").stdout)
    assert [row["kind"] for row in doc["reports"]["checks"]] == ["fuzz"]
    assert "== report: checks" in tc("review", ref).stdout


def test_signed_test_evidence_verifies_and_its_forgeries_do_not(tc, tmp_path: Path, key: Path) -> None:
    """Verification evidence as an in-toto Test Result statement (v0.1) in a
    DSSE envelope: it verifies for its version, and not for another version,
    with an altered result, or as something that is not an envelope."""
    ref = _add(tc, tmp_path, V1)
    made = tc("attest", "evidence", ref, "--key", str(key))
    assert made.exit_code == 0, made.output
    envelope = json.loads(made.stdout)
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["predicateType"] == "https://in-toto.io/attestation/test-result/v0.1"
    assert statement["predicate"]["result"] == "PASSED" and statement["predicate"]["failedTests"] == []
    path = tmp_path / "evidence.json"
    path.write_text(made.stdout)
    ok = tc("attest", "verify", ref, "--envelope", str(path))
    assert ok.exit_code == 0 and "PASSED" in ok.stdout
    other = _add(tc, tmp_path, V2)
    wrong = tc("attest", "verify", other, "--envelope", str(path))
    assert wrong.exit_code == 1 and "another digest" in wrong.stderr
    statement["predicate"]["result"] = "FAILED"
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    path.write_text(json.dumps(envelope))
    forged = tc("attest", "verify", ref, "--envelope", str(path))
    assert forged.exit_code == 1 and "does not verify" in forged.stderr
    path.write_text("[1, 2]")
    assert tc("attest", "verify", ref, "--envelope", str(path)).exit_code == 2
    unverified = tmp_path / "u.py"
    unverified.write_text(V1.replace("double", "triple"))
    plain = json.loads(tc("add", str(unverified), "--json").stdout)["ref"]
    assert tc("attest", "evidence", plain, "--key", str(key)).exit_code == 2
