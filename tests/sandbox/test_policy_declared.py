"""A version declares the policy it needs (`add --policy plain`), and calls
and verification use it; the isolation layers in force are recorded in the
audit log and the verification evidence.

Everything runs on a real registry and the real restricted backend. Whether
the backend can honour "plain" depends on the machine (the jail's Landlock
and seccomp layers must be in force); each test asserts the outcome that the
backend's own report (`info()["plain_policy"]`) calls for.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from toolcrib.registry import BundleError, Registry
from toolcrib.registry.calls import job_policy
from toolcrib.registry.errors import InvalidInput
from toolcrib.sandbox import get_backend

# Ordinary Python the restricted compiler refuses (a `_`-prefixed attribute
# and a dunder method); in "plain" it runs as written.
COUNTER = '''\
class Counter:
    def __init__(self) -> None:
        self._n = 0

    def __call__(self, k: int) -> int:
        self._n += k
        return self._n


def count_to(n: int) -> int:
    """Add 1..n with a callable counter."""
    c = Counter()
    for k in range(1, n + 1):
        c(k)
    return c._n
'''
COUNTER_TESTS = [{"args": {"n": 4}, "expected": 10}, {"snippet": "ans = count_to(3) + count_to(1)", "expected": 7}]

# Inside the jail a plain tool has Python, not the machine.
READER = '''\
def read(path: str) -> str:
    """Read a file."""
    with open(path) as fh:
        return fh.read()
'''


def _plain_honoured() -> bool:
    info = get_backend("restricted").info()
    # A backend that cannot start at all is a failure here, not a branch.
    assert info.get("available"), info.get("error")
    return bool(info.get("plain_policy"))


def _jail_layers() -> set[str]:
    info = get_backend("restricted").info()
    return {entry["layer"] for entry in info.get("layers", []) if entry.get("in_force")}


@pytest.fixture
def tc(tc, monkeypatch: pytest.MonkeyPatch):
    """The shared CLI runner, with no TOOLCRIB_BACKEND from the environment:
    these tests name the backend themselves or expect the default."""
    monkeypatch.delenv("TOOLCRIB_BACKEND", raising=False)
    return tc


# -- declaring ------------------------------------------------------------


def test_policy_is_stored_shown_and_hashed(reg: Registry) -> None:
    restricted = reg.add(COUNTER, name="count").tool
    plain = reg.add(COUNTER, name="count", policy="plain").tool
    assert restricted.policy == "restricted" and plain.policy == "plain"
    # Same source, other policy: other content, so a new version.
    assert plain.sha256 != restricted.sha256
    assert (restricted.version, plain.version) == ("1.0.0", "1.0.1")
    assert reg.add(COUNTER, name="count", policy="plain").created is False
    assert reg.get("count@1.0.1").policy == "plain"
    assert [t.policy for t in reg.list()] == ["plain"]
    statement = reg.provenance("count@1.0.1")
    assert statement["predicate"]["buildDefinition"]["externalParameters"]["policy"] == "plain"
    assert reg.audit(event="add")[-1].details["policy"] == "plain"


def test_unknown_policy_is_bad_input(reg: Registry) -> None:
    with pytest.raises(InvalidInput, match="unknown policy"):
        reg.add(COUNTER, policy="loose")
    assert reg.list() == []


def test_cli_add_policy_show_list_provenance(tc, tmp_path: Path) -> None:
    source = tmp_path / "count.py"
    source.write_text(COUNTER)
    added = tc("add", str(source), "--policy", "plain", "--json")
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout)["policy"] == "plain"
    shown = tc("show", "count_to")
    assert "policy:     plain" in shown.stdout
    assert json.loads(tc("show", "count_to", "--json").stdout)["policy"] == "plain"
    assert [t["policy"] for t in json.loads(tc("list", "--json").stdout)] == ["plain"]
    prov = json.loads(tc("provenance", "count_to").stdout)
    assert prov["predicate"]["buildDefinition"]["externalParameters"]["policy"] == "plain"
    bad = tc("add", str(source), "--policy", "loose")
    assert bad.exit_code == 2 and "Traceback" not in bad.output


# -- running under the declared policy ----------------------------------------


def test_call_uses_the_declared_policy_and_records_layers(reg: Registry) -> None:
    reg.add(COUNTER, name="count")
    reg.add(COUNTER, name="count", policy="plain")
    declared_plain = reg.call("count@1.0.1", {"n": 4}, allow_unverified=True)
    entry = reg.audit(event="call")[-1]
    assert entry.details["policy"] == "plain" and declared_plain.policy == "plain"
    assert entry.details["layers"] == declared_plain.layers
    if _plain_honoured():
        assert (declared_plain.status, declared_plain.result) == ("ok", 10)
        assert {"landlock", "seccomp"} <= set(declared_plain.layers)
    else:
        assert declared_plain.status == "unavailable"
        assert declared_plain.error is not None and "jail" in declared_plain.error.message
    # The restricted twin gets the policy, which refuses `self._n`.
    restricted = reg.call("count@1.0.0", {"n": 4}, allow_unverified=True)
    assert restricted.status == "blocked" and restricted.policy == "restricted"
    assert reg.audit(event="call")[-1].details["layers"] == restricted.layers
    # The caller overrides the declaration, both ways.
    assert reg.call("count@1.0.1", {"n": 4}, policy="restricted", allow_unverified=True).status == "blocked"
    lifted = reg.call("count@1.0.0", {"n": 4}, policy="plain", allow_unverified=True)
    assert lifted.status == ("ok" if _plain_honoured() else "unavailable")


def test_plain_in_the_jail_reaches_no_file(reg: Registry, tmp_path: Path) -> None:
    if not _plain_honoured():
        pytest.skip("the jail is not whole on this machine, so plain calls are unavailable (tested above)")
    secret = tmp_path / "secret.txt"
    secret.write_text("canary")
    reg.add(READER, policy="plain")
    out = reg.call("read", {"path": str(secret)}, allow_unverified=True)
    assert out.status == "error" and out.result is None
    assert out.error is not None and out.error.type in ("PermissionError", "OSError")
    assert "canary" not in json.dumps(out.to_json())


def test_verify_records_policy_and_layers(reg: Registry) -> None:
    reg.add(COUNTER, name="count", tests=COUNTER_TESTS, policy="plain")
    if not _plain_honoured():
        from toolcrib.registry.errors import SandboxUnavailable

        with pytest.raises(SandboxUnavailable):
            reg.verify("count")
        assert reg.verification("count") is None
        return
    result = reg.verify("count")
    assert result.status == "verified" and result.policy == "plain"
    assert {"landlock", "seccomp"} <= set(result.layers)
    assert set(result.layers) <= _jail_layers()
    stored = reg.verification("count")
    assert stored is not None and stored.layers == result.layers and stored.policy == "plain"
    entry = reg.audit(event="verify")[-1]
    assert entry.details["layers"] == result.layers and entry.details["policy"] == "plain"
    call = reg.call("count", {"n": 2})
    assert call.result == 3 and call.layers == result.layers


def test_cli_call_and_verify_json_carry_layers(tc, tmp_path: Path) -> None:
    source = tmp_path / "count.py"
    source.write_text(COUNTER)
    tests = tmp_path / "count.tests.json"
    tests.write_text(json.dumps(COUNTER_TESTS))
    assert tc("add", str(source), "--tests", str(tests), "--policy", "plain").exit_code == 0
    verified = tc("verify", "count_to", "--json")
    call = tc("call", "count_to", "--arg", "n=4", "--json", "--allow-unverified")
    if not _plain_honoured():
        assert verified.exit_code == 6 and call.exit_code == 6
        assert json.loads(call.stdout)["status"] == "unavailable"
        return
    assert verified.exit_code == 0, verified.output
    evidence = json.loads(verified.stdout)
    assert evidence["policy"] == "plain" and {"landlock", "seccomp"} <= set(evidence["layers"])
    assert call.exit_code == 0, call.output
    outcome = json.loads(call.stdout)
    assert (outcome["result"], outcome["policy"]) == (10, "plain")
    assert outcome["layers"] == evidence["layers"]
    text = tc("verify", "count_to")
    assert "plain policy" in text.stdout and "isolation: " in text.stdout
    assert "isolation:" in tc("show", "count_to").stdout


def test_docker_default_stays_plain_and_declared_plain_is_plain() -> None:
    # Docker's container is its boundary: a restricted-declared tool keeps
    # running as plain Python there unless the caller asks for the policy.
    # The default is the backend's own (`Backend.default_policy`), asked of
    # the backend, not inferred from its name. Neither starts anything here
    # (no zygote; no pool, and no engine needed).
    from toolcrib.sandbox.docker import DockerBackend
    from toolcrib.sandbox.restricted import RestrictedBackend

    docker, restricted = DockerBackend(pool_size=0), RestrictedBackend()
    try:
        assert job_policy(docker, None, "restricted") == "plain"
        assert job_policy(docker, None, "plain") == "plain"
        assert job_policy(docker, "restricted", "plain") == "restricted"
        assert job_policy(restricted, None, "restricted") == "restricted"
        assert job_policy(restricted, None, "plain") == "plain"
        with pytest.raises(InvalidInput):
            job_policy(restricted, "loose", "plain")
    finally:
        docker.close()
        restricted.close()


# -- bundles ----------------------------------------------------------------


def test_bundle_carries_the_policy(reg: Registry, tmp_path: Path) -> None:
    reg.add(COUNTER, name="count", policy="plain")
    bundle = json.loads(json.dumps(reg.export()))
    assert bundle["tools"][0]["policy"] == "plain"
    with Registry(tmp_path / "other.db") as other:
        imported = other.import_bundle(bundle)
        assert imported[0].tool.policy == "plain"
        assert other.audit(event="import")[-1].details["policy"] == "plain"
    # The policy is covered by the content hash: changing it in transit is caught.
    forged = copy.deepcopy(bundle)
    forged["tools"][0]["policy"] = "restricted"
    with Registry(tmp_path / "third.db") as third, pytest.raises(BundleError, match="sha256 mismatch"):
        third.import_bundle(forged)


def test_bundle_from_before_policies_imports_as_restricted(reg: Registry, tmp_path: Path) -> None:
    reg.add(COUNTER, name="count")
    bundle: dict[str, Any] = json.loads(json.dumps(reg.export()))
    del bundle["tools"][0]["policy"]
    with Registry(tmp_path / "other.db") as other:
        tool = other.import_bundle(bundle)[0].tool
        assert tool.policy == "restricted" and tool.sha256 == reg.get("count").sha256
