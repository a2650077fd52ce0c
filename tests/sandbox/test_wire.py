"""The one wire both backends read the sandbox through (`sandbox/wire.py`):
strict parsing of replies, and outcomes decided from facts, not from what the
tool wrote. The backends' own tests run the same rules through real
processes and containers (test_restricted_backend, test_docker_backend,
test_host_facts); these feed the wire crafted bytes directly, the way a tool
running as plain Python could write them."""

from __future__ import annotations

import json
import signal

import pytest
from toolcrib.sandbox import contract
from toolcrib.sandbox.inside import results, wire

LIMITS = {"cpu": 2.0, "wall": 5.0, "memory": 64, "output": 64, "pids": 32, "disk": 8}
CAP = 64 * 1024
NORMAL = wire.check_facts({"exit": 0, "signal": None, "cpu": 0.01, "maxrss_kib": 15_000, "baseline_rss_kib": 18_000})


def reply(**fields: object) -> bytes:
    base = {"status": "ok", "result": None, "error": None, "limit": None, "stdout": ""}
    base.update(fields)
    return json.dumps(base).encode()


def parse(raw: bytes) -> dict:
    return wire.parse_reply(raw, cap=CAP)


def outcome(raw: bytes, facts: dict | None = None, *, restricted: bool) -> dict:
    try:
        parsed, problem = parse(raw), None
    except wire.ProtocolError as exc:
        parsed, problem = None, str(exc)
    if facts is None and wire.needs_facts(parsed, restricted=restricted):
        facts = NORMAL
    return wire.classify(parsed, facts, restricted=restricted, limits=LIMITS, problem=problem)


def test_constants_match_the_modules_the_wire_cannot_import() -> None:
    assert wire.LIMIT_NAMES == contract.LIMIT_NAMES
    assert wire.MAX_RESULT_DEPTH == results.MAX_RESULT_DEPTH


# --------------------------------------------------------------------------- parsing


def test_a_real_reply_parses_to_plain_data() -> None:
    got = parse(reply(result={"a": [1, 2.5, None, True, "x"]}, stdout="hi\n"))
    assert got == {
        "status": "ok",
        "result": {"a": [1, 2.5, None, True, "x"]},
        "error": None,
        "limit": None,
        "stdout": "hi\n",
    }


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused(constant: str) -> None:
    raw = b'{"status":"ok","result":[1,' + constant.encode() + b'],"error":null,"limit":null,"stdout":""}'
    with pytest.raises(wire.ProtocolError, match="not JSON"):
        parse(raw)
    assert outcome(raw, restricted=True)["error"]["type"] == "SandboxProtocolError"


def test_a_reply_1000_levels_deep_is_a_protocol_error_not_a_recursion_error() -> None:
    deep = b'{"status":"ok","result":' + b"[" * 1000 + b"]" * 1000 + b',"error":null,"limit":null,"stdout":""}'
    with pytest.raises(wire.ProtocolError, match="nested deeper"):
        parse(deep)
    got = outcome(deep, restricted=True)
    assert (got["status"], got["error"]["type"]) == ("error", "SandboxProtocolError")


def test_depth_is_exactly_what_the_sandbox_can_produce() -> None:
    def nested(levels: int) -> object:
        value: object = 1
        for _ in range(levels):
            value = [value]
        return value

    assert parse(reply(result=nested(results.MAX_RESULT_DEPTH)))["status"] == "ok"
    with pytest.raises(wire.ProtocolError):
        parse(reply(result=nested(results.MAX_RESULT_DEPTH + 1)))
    # Many containers side by side are not depth (10,000 values: a cap that allows them).
    wide = reply(result=[[i] for i in range(5000)])
    assert wire.parse_reply(wide, cap=1 << 20)["result"][4999] == [4999]


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    text = '[[[{{{"\\"' * 200
    assert parse(reply(result=text))["result"] == text


def test_a_deep_forgery_hidden_behind_a_string_is_still_counted() -> None:
    raw = b'{"status":"ok","stdout":"a\\"b","result":' + b"[" * 500 + b"]" * 500 + b',"error":null,"limit":null}'
    with pytest.raises(wire.ProtocolError):
        parse(raw)


def test_size_is_checked_against_the_output_cap() -> None:
    raw = reply(result="x" * CAP)
    with pytest.raises(wire.OverCap):
        parse(raw)
    assert wire.parse_reply(raw, cap=len(raw))["status"] == "ok"


def test_lone_surrogates_become_replacement_characters() -> None:
    raw = reply(result={"k\ud800": ["\udfff", "ok \U0001f600"]}, stdout="p\ud83d", status="ok")
    got = parse(raw)
    assert got["result"] == {"k\ufffd": ["\ufffd", "ok \U0001f600"]}
    assert got["stdout"] == "p\ufffd"
    json.dumps(got, ensure_ascii=False).encode("utf-8")  # encodable everywhere now
    err = parse(reply(status="error", error={"type": "E\udc80", "message": "m\ud800", "line": 3}))
    assert err["error"] == {"type": "E\ufffd", "message": "m\ufffd", "line": 3}


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00garbage{not json",
        b"[1, 2]",
        b'{"status": "ok", "limit": "everything", "result": null, "error": null, "stdout": ""}',
        reply(status="done"),
        reply(stdout=5),
        reply(status="error"),  # an error without an error object
        reply(status="blocked"),
        reply(status="limit"),  # no limit named
        reply(status="limit", limit="patience"),
        reply(status="ok", limit="memory"),
        reply(status="error", error={"type": "E", "message": "m", "line": True}),
        reply(status="error", error={"type": "E", "message": 5}),
        reply(status="error", error={"type": "E", "message": "m", "extra": 1}),
        reply(status="error", error="E", result=None),
        reply(status="error", error={"type": "E", "message": "m"}, result=1),
        reply(extra="field"),
        b'{"status":"ok","result":1' + b"0" * 5000 + b',"error":null,"limit":null,"stdout":""}',
        b'{"status":"ok","result":"\xff","error":null,"limit":null,"stdout":""}',
    ],
)
def test_anything_but_the_documented_shape_is_a_protocol_error(raw: bytes) -> None:
    with pytest.raises(wire.ProtocolError):
        parse(raw)


# --------------------------------------------------------------------------- outcomes from facts


def test_restricted_replies_are_the_policys_own_record() -> None:
    blocked = reply(status="blocked", error={"type": "PolicyViolation", "message": "no", "line": 1})
    assert not wire.needs_facts(parse(blocked), restricted=True)
    assert outcome(blocked, restricted=True)["status"] == "blocked"
    memory = reply(status="limit", limit="memory", error={"type": "MemoryError", "message": "m", "line": None})
    assert outcome(memory, restricted=True)["limit"] == "memory"


def test_plain_limit_claims_need_the_facts() -> None:
    assert not wire.needs_facts(parse(reply(result=1)), restricted=False)
    claim = parse(reply(status="limit", limit="memory"))
    assert wire.needs_facts(claim, restricted=False) and not wire.needs_facts(claim, restricted=True)
    with pytest.raises(ValueError):
        wire.classify(claim, None, restricted=False, limits=LIMITS)


def test_forged_memory_limit_in_plain_without_memory_used_is_an_error() -> None:
    forged = reply(status="limit", limit="memory", error={"type": "MemoryError", "message": "m", "line": None})
    got = outcome(forged, NORMAL, restricted=False)
    assert (got["status"], got["limit"], got["error"]["type"]) == ("error", None, "MemoryError")


def test_memory_limit_in_plain_is_believed_when_the_memory_was_used() -> None:
    claim = reply(status="limit", limit="memory", error={"type": "MemoryError", "message": "m", "line": None})
    used = dict(NORMAL, maxrss_kib=18_000 + 40 * 1024)  # 40 MiB above the start, allowance 64 MiB
    assert outcome(claim, used, restricted=False)["limit"] == "memory"
    barely = dict(NORMAL, maxrss_kib=18_000 + 20 * 1024)
    assert outcome(claim, barely, restricted=False)["status"] == "error"
    oom = dict(NORMAL, oom_kills=1)
    assert outcome(claim, oom, restricted=False)["limit"] == "memory"


def test_forged_blocked_in_plain_is_an_error() -> None:
    forged = reply(status="blocked", error={"type": "PolicyViolation", "message": "refused", "line": None})
    got = outcome(forged, NORMAL, restricted=False)
    assert (got["status"], got["error"]["type"]) == ("error", "PolicyViolation")


@pytest.mark.parametrize("name", ["cpu", "wall", "pids", "disk"])
def test_limits_only_seen_from_outside_cannot_be_claimed_in_a_reply(name: str) -> None:
    forged = reply(status="limit", limit=name)
    for restricted in (True, False):
        got = outcome(forged, NORMAL, restricted=restricted)
        assert (got["status"], got["error"]["type"]) == ("error", "SandboxProtocolError"), (restricted, got)


def test_a_limit_claim_counts_in_plain_only_if_the_process_then_ended_normally() -> None:
    claim = reply(status="limit", limit="memory", error={"type": "MemoryError", "message": "m", "line": None})
    burned = dict(NORMAL, exit=None, signal=int(signal.SIGXCPU), cpu=1.9)
    assert outcome(claim, burned, restricted=False)["limit"] == "cpu"
    exited = dict(NORMAL, exit=3)
    got = outcome(claim, exited, restricted=False)
    assert got["status"] == "error" and "code 3" in got["error"]["message"]
    # The tool's own answer stands whatever happened after it was written.
    assert outcome(reply(result="mine"), burned, restricted=False)["result"] == "mine"


def test_kills_made_on_the_host_side_decide() -> None:
    for killed in ("wall", "output"):
        facts = dict(NORMAL, exit=None, signal=int(signal.SIGKILL), killed=killed)
        assert outcome(reply(result=1), facts, restricted=False)["limit"] == killed
    facts = dict(NORMAL, exit=None, signal=int(signal.SIGKILL), killed="shutdown")
    assert outcome(b"", facts, restricted=True)["status"] == "unavailable"


def test_cpu_signals_need_the_cpu_time_to_back_them() -> None:
    spoofed = dict(NORMAL, exit=None, signal=int(signal.SIGXCPU), cpu=0.02)
    got = outcome(b"", spoofed, restricted=False)
    assert (got["status"], got["error"]["type"]) == ("error", "SandboxCrash")
    real = dict(NORMAL, exit=None, signal=int(signal.SIGKILL), cpu=1.8)
    assert outcome(b"", real, restricted=False)["limit"] == "cpu"


def test_disk_signal_without_any_disk_written_is_a_crash() -> None:
    spoofed = dict(NORMAL, exit=None, signal=int(signal.SIGXFSZ), disk_used_kib=0)
    assert outcome(b"", spoofed, restricted=False)["status"] == "error"
    real = dict(NORMAL, exit=None, signal=int(signal.SIGXFSZ), disk_used_kib=8 * 1024)
    assert outcome(b"", real, restricted=False)["limit"] == "disk"
    unknown = dict(NORMAL, exit=None, signal=int(signal.SIGXFSZ), disk_used_kib=None)
    assert outcome(b"", unknown, restricted=False)["limit"] == "disk"


def test_a_hand_raised_blocking_io_error_is_not_the_pids_limit() -> None:
    raised = reply(
        status="error",
        error={"type": "BlockingIOError", "message": "[Errno 11] Resource temporarily unavailable", "line": 3},
    )
    got = outcome(raised, NORMAL, restricted=False)
    assert (got["status"], got["error"]["type"]) == ("error", "BlockingIOError")
    counted = dict(NORMAL, pids_max=2)
    assert outcome(raised, counted, restricted=False)["limit"] == "pids"


def test_a_signal_death_after_using_the_memory_is_the_memory_limit() -> None:
    facts = dict(NORMAL, exit=None, signal=int(signal.SIGSEGV), maxrss_kib=18_000 + 60 * 1024)
    assert outcome(b"", facts, restricted=True)["limit"] == "memory"
    small = dict(NORMAL, exit=None, signal=int(signal.SIGSEGV))
    got = outcome(b"", small, restricted=True)
    assert got["status"] == "error" and "SIGSEGV" in got["error"]["message"]


def test_garbage_with_a_clean_exit_is_a_protocol_error() -> None:
    got = outcome(b"\x00garbage", NORMAL, restricted=False)
    assert (got["status"], got["error"]["type"]) == ("error", "SandboxProtocolError")


def test_the_fact_sources_own_failure_is_an_error() -> None:
    facts = wire.check_facts({"error": "bad job: not JSON"})
    got = wire.classify(None, facts, restricted=True, limits=LIMITS)
    assert (got["status"], got["error"]["type"]) == ("error", "SandboxError")


# --------------------------------------------------------------------------- facts and frames


@pytest.mark.parametrize(
    "facts",
    [
        [],
        {"exit": "0"},
        {"exit": True},
        {"cpu": float("nan")},
        {"cpu": -1},
        {"maxrss_kib": -5},
        {"killed": "because of you"},
        {"killed": 9},
        {"error": 5},
    ],
)
def test_facts_of_the_wrong_type_are_refused(facts: object) -> None:
    with pytest.raises(wire.ProtocolError):
        wire.check_facts(facts)


KEY = "0123456789abcdef" * 2


def test_a_frame_round_trips() -> None:
    body = reply(result=[1, 2])
    data = wire.frame({"exit": 0, "cpu": 0.5, "maxrss_kib": 1, "pids_max": 0}, body, KEY)
    header, rest = data.split(b"\n", 1)
    facts, size = wire.parse_frame_header(header, KEY)
    assert (facts["exit"], facts["cpu"], facts["pids_max"], size) == (0, 0.5, 0, len(body))
    assert rest == body + b"\n"
    header, rest = wire.frame({"signal": 9, "killed": "wall"}, None, KEY).split(b"\n", 1)
    assert wire.parse_frame_header(header, KEY)[1] is None and rest == b"\n"


def test_a_frame_without_the_calls_key_is_refused() -> None:
    header = wire.frame({"exit": 0, "oom_kills": 1}, b"{}", "f" * 32).split(b"\n", 1)[0]
    with pytest.raises(wire.ProtocolError, match="key"):
        wire.parse_frame_header(header, KEY)
    unkeyed = json.dumps({"facts": {}, "reply_bytes": None}).encode()
    with pytest.raises(wire.ProtocolError):
        wire.parse_frame_header(unkeyed, KEY)


def test_the_job_message_carries_length_job_and_key() -> None:
    assert wire.job_message(b'{"a":1}', KEY) == b'7\n{"a":1}' + KEY.encode()
    for bad in ("short", "G" * 32, KEY.upper()):
        with pytest.raises(ValueError):
            wire.job_message(b"{}", bad)


@pytest.mark.parametrize(
    "header",
    [
        b"not json",
        b'{"facts": {}}',
        b'{"key": "K", "facts": {}, "reply_bytes": -1}',
        b'{"key": "K", "facts": [], "reply_bytes": 1}',
        b"[" * 1000,
        b'{"key": "K", "facts": {}, "reply_bytes": 1, "x": 2}',
        b'{"key": 5, "facts": {}, "reply_bytes": 1}',
    ],
)
def test_bad_frame_headers_are_protocol_errors(header: bytes) -> None:
    with pytest.raises(wire.ProtocolError):
        wire.parse_frame_header(header.replace(b'"K"', json.dumps(KEY).encode()), KEY)


def test_alternating_arrays_and_objects_count_one_level_each() -> None:
    def nested(levels: int) -> object:
        value: object = 1
        for i in range(levels):
            value = [value] if i % 2 else {"k": value}
        return value

    assert parse(reply(result=nested(results.MAX_RESULT_DEPTH)))["status"] == "ok"
    for levels in (results.MAX_RESULT_DEPTH + 1, 2 * results.MAX_RESULT_DEPTH, 900):
        with pytest.raises(wire.ProtocolError):
            parse(reply(result=nested(levels)))


@pytest.mark.parametrize("text", ['"a\\\\"', '"a\\\\\\""', '"\\\\\\\\"', '"[\\"{"'])
def test_escapes_before_quotes_are_paired_as_a_json_reader_pairs_them(text: str) -> None:
    value = json.loads(text)
    deep = "[" * 40 + text + "]" * 40
    got = parse(reply(result=[json.loads(deep), [[["x"]]] * 50]))
    assert got["result"][0] == json.loads(deep)
    assert isinstance(value, str)


def test_unbalanced_brackets_are_refused_before_parsing() -> None:
    raw = b'{"status":"ok","result":' + b"[" * 100 + b"}" * 100 + b',"error":null,"limit":null,"stdout":""}'
    with pytest.raises(wire.ProtocolError):
        parse(raw)
