"""Outcomes are decided by the host from facts, never from text the tool
controls (issue 7): each spoof a tool can try, through the real restricted
backend (a jailed child running the tool as plain Python, which can write any
bytes to its reply socket), and the registry's side: whatever a tool
returns, the call reaches the audit log and the log still verifies.

The Docker backend's spoofs are in test_docker_backend.py; the wire's rules
on crafted bytes in test_wire.py.
"""

from __future__ import annotations

import dataclasses
import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from toolcrib.cli import cli
from toolcrib.sandbox import Job, Limits, Result
from toolcrib.sandbox.restricted import RestrictedBackend

from toolcrib import Registry

QUICK = Limits(cpu=2, wall=10, memory=64, output=64)


def plain(source: str, **fields) -> Job:
    fields.setdefault("limits", QUICK)
    return Job(source=textwrap.dedent(source), entrypoint="f", policy="plain", **fields)


def forging(reply: bytes | str, then: str = "os._exit(0)") -> Job:
    """A plain tool that writes `reply` into every socket it holds (the call
    socket among them), as if it were the sandbox's reply, then `then`."""
    data = reply.encode() if isinstance(reply, str) else reply
    return plain(f"""
        import os, socket, signal
        def f():
            for fd in range(3, 16):
                try:
                    socket.socket(fileno=fd).sendall({data!r})
                except OSError:
                    pass
            {then}
    """)


def reply(**fields: object) -> str:
    base = {"status": "ok", "result": None, "error": None, "limit": None, "stdout": ""}
    base.update(fields)
    return json.dumps(base)


def status(r: Result) -> tuple[str, str | None, str | None]:
    return r.status, r.limit, r.error.type if r.error else None


# --------------------------------------------------------------------------- spoofs


def test_raise_memory_error_in_plain_is_an_error(rb: RestrictedBackend) -> None:
    r = rb.run(plain("def f():\n    raise MemoryError('fake')\n"))
    assert status(r) == ("error", None, "MemoryError"), r


def test_a_forged_memory_limit_reply_is_not_a_limit(rb: RestrictedBackend) -> None:
    forged = reply(status="limit", limit="memory", error={"type": "MemoryError", "message": "m", "line": None})
    r = rb.run(forging(forged))
    assert status(r) == ("error", None, "MemoryError"), r


def test_a_forged_blocked_reply_in_plain_is_an_error(rb: RestrictedBackend) -> None:
    forged = reply(status="blocked", error={"type": "PolicyViolation", "message": "refused", "line": 1})
    r = rb.run(forging(forged))
    assert r.status == "error", r


def test_the_policys_own_exception_raised_in_plain_is_not_a_refusal(rb: RestrictedBackend) -> None:
    # The sandbox's modules live in the same interpreter: a plain tool can
    # reach the guard's exception and raise it. No policy ran, so no refusal.
    source = """
        import sys
        def f():
            guards = next(m for n, m in list(sys.modules.items()) if n.endswith('.guards'))
            raise guards.PolicyViolation('forged refusal')
    """
    r = rb.run(plain(source))
    assert r.status == "error", r


@pytest.mark.parametrize("name", ["cpu", "wall", "pids", "disk"])
def test_a_forged_outside_limit_is_a_protocol_error(rb: RestrictedBackend, name: str) -> None:
    r = rb.run(forging(reply(status="limit", limit=name)))
    assert status(r) == ("error", None, "SandboxProtocolError"), r


def test_a_forged_reply_1000_levels_deep_is_a_protocol_error(rb: RestrictedBackend) -> None:
    deep = '{"status":"ok","result":' + "[" * 1000 + "]" * 1000 + ',"error":null,"limit":null,"stdout":""}'
    r = rb.run(forging(deep))
    assert status(r) == ("error", None, "SandboxProtocolError"), r


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_forged_non_finite_reply_is_a_protocol_error(rb: RestrictedBackend, constant: str) -> None:
    forged = '{"status":"ok","result":' + constant + ',"error":null,"limit":null,"stdout":""}'
    r = rb.run(forging(forged))
    assert status(r) == ("error", None, "SandboxProtocolError"), r
    json.dumps(r.to_json(), allow_nan=False)  # the caller can always encode it


def test_a_forged_limit_claim_followed_by_a_cpu_burn_is_the_cpu_limit(rb: RestrictedBackend) -> None:
    # The claim is only believed if the child then ends as the sandbox ends
    # it after replying; here the zygote's trailer shows it killed for CPU.
    forged = reply(status="limit", limit="memory", error={"type": "MemoryError", "message": "m", "line": None})
    job = forging(forged, then="while True:\n                pass")
    r = rb.run(dataclasses.replace(job, limits=Limits(cpu=1, wall=30, memory=64, output=64)))
    assert status(r) == ("limit", "cpu", None), r


@pytest.mark.parametrize("sig", ["SIGXCPU", "SIGXFSZ"])
def test_a_tool_signalling_itself_is_not_a_limit(rb: RestrictedBackend, sig: str) -> None:
    # raise(3) is tgkill on itself; the jail's seccomp filter may refuse
    # it (then the call is the tool's PermissionError), else the process
    # dies of the signal without having used CPU time or disk.
    r = rb.run(plain(f"import signal\ndef f():\n    signal.raise_signal(signal.{sig})\n"))
    assert r.status == "error" and r.limit is None, r
    assert r.error is not None and (sig in r.error.message or r.error.type == "PermissionError"), r


@pytest.mark.parametrize("policy", ["restricted", "plain"])
def test_a_lone_surrogate_comes_back_as_a_replacement_character(rb: RestrictedBackend, policy: str) -> None:
    source = "def f():\n    print('out' + chr(0xDC80))\n    return {'k' + chr(0xD800): [chr(0xDFFF), 'fine']}\n"
    r = rb.run(Job(source=source, entrypoint="f", policy=policy, limits=QUICK))
    assert r.status == "ok", r
    assert r.result == {"k\ufffd": ["\ufffd", "fine"]}
    assert r.stdout == "out\ufffd\n"
    json.dumps(r.to_json(), ensure_ascii=False).encode("utf-8")


# --------------------------------------------------------------------------- the registry's side

SURROGATE_TOOL = '''\
def odd(n: int) -> str:
    """Return a string holding a lone surrogate."""
    return "x" * n + chr(0xD800)
'''


def test_a_surrogate_result_reaches_the_audit_log(tmp_path: Path) -> None:
    with Registry(tmp_path / "r.db", actor="tester") as reg:
        reg.add(SURROGATE_TOOL, tests=[{"args": {"n": 1}, "expected": "x\ufffd"}])
        verification = reg.verify("odd")
        assert verification.status == "verified", verification
        for n in (1, 5000):  # small, and past the audit's cap
            outcome = reg.call("odd", {"n": n})
            assert outcome.status == "ok" and outcome.result == "x" * n + "\ufffd"
        calls = reg.audit(event="call")
        assert len(calls) == 2 and all(e.details["status"] == "ok" for e in calls)
        assert calls[0].details["result"] == "x\ufffd"
        assert reg.audit_verify().ok


def test_cap_value_never_fails_on_what_a_tool_returned() -> None:
    from toolcrib.registry.audit import cap_value

    assert cap_value("a\ud800b") == "a\ufffdb"
    assert cap_value({"k\udfff": ["\ud800" * 3000]})["$truncated"] is True
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    assert cap_value(deep)["$truncated"] is True


def test_the_cli_call_with_a_surrogate_result_is_audited_and_verifies(tmp_path: Path) -> None:
    runner = CliRunner()
    db = str(tmp_path / "r.db")
    tool = tmp_path / "odd.py"
    tool.write_text(SURROGATE_TOOL)

    def tc(*args: str):
        return runner.invoke(cli, ["--registry", db, *args], catch_exceptions=False)

    tests = tmp_path / "tests.json"
    tests.write_text(json.dumps([{"args": {"n": 1}, "expected": "x\ufffd"}, {"args": {"n": 2}, "expected": "no"}]))
    assert tc("add", str(tool), "--tests", str(tests)).exit_code == 0
    verified = tc("verify", "odd", "--json")
    assert verified.exit_code != 70 and "Traceback" not in verified.output, verified.output
    cases = json.loads(verified.stdout)["cases"]
    assert [c["passed"] for c in cases] == [True, False] and cases[1]["actual"] == "xx\ufffd"
    called = tc("call", "odd", "--allow-unverified", "--args", '{"n": 2}', "--json")
    assert called.exit_code == 0, called.output
    assert json.loads(called.stdout)["result"] == "xx\ufffd"
    text = tc("call", "odd", "--allow-unverified", "--args", '{"n": 2}')
    assert text.exit_code == 0 and "xx\ufffd" in text.stdout
    entries = json.loads(tc("audit", "--event", "call", "--json").stdout)
    assert [e["details"]["status"] for e in entries] == ["ok", "ok"]
    assert [e["event"] for e in json.loads(tc("audit", "--json").stdout)].count("verify") == 1
    verified = tc("audit", "verify", "--json")
    assert verified.exit_code == 0 and json.loads(verified.stdout)["ok"] is True


def test_a_snippet_or_arguments_with_a_lone_surrogate_are_refused_and_audited(tmp_path: Path) -> None:
    from toolcrib.registry import InvalidInput

    with Registry(tmp_path / "r.db", actor="tester") as reg:
        reg.add(SURROGATE_TOOL)
        with pytest.raises(InvalidInput):
            reg.call("odd", snippet="ans = odd(1) + '\ud800'", allow_unverified=True)
        with pytest.raises(InvalidInput):
            reg.call("odd", {"n": "\ud800"}, allow_unverified=True)
        assert [e.details["status"] for e in reg.audit(event="call")] == ["invalid", "invalid"]
        assert reg.audit_verify().ok


def test_a_plain_tool_exiting_with_the_setup_code_is_no_unavailable_sandbox() -> None:
    # 111 is what a child exits with when it cannot lock itself down; that
    # happens before it takes a call, so after it, the code is the tool's.
    from toolcrib.sandbox import Job
    from toolcrib.sandbox.inside.zygote import EXIT_SETUP_FAILED
    from toolcrib.sandbox.restricted import RestrictedBackend

    backend = RestrictedBackend()
    try:
        result = backend.run(
            Job(source=f"import os\ndef f():\n    os._exit({EXIT_SETUP_FAILED})\n", entrypoint="f", policy="plain")
        )
    finally:
        backend.close()
    assert result.status == "error", result
    assert result.error is not None and str(EXIT_SETUP_FAILED) in result.error.message
