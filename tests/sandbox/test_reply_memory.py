"""The host's memory for one call stays within a small multiple of the
output limit, whatever shape the reply takes (issue 15, item 3).

A reply is JSON of at most the output limit in bytes, but parsed it becomes
one Python object per value: ``[],`` is 3 bytes of text and 64 of memory,
so a reply of 4 MiB of empty lists cost the host ~90 MiB, and a 16 MB reply
557 MB and 17 s (the attack round). The host now reads the reply with the
cap enforced while it streams, refuses more than one value per
`wire.VALUE_BYTES` bytes of the cap as the output limit, never copies the
parsed result, and prints `--json` as it encodes it.

Measured from outside: the host runs in a subprocess of its own (real
registry, real restricted backend; the sandboxed tool runs in another
process), which reports the growth of its peak resident size
(``ru_maxrss``) over one call, after a warm-up call. No timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from toolcrib.sandbox.inside import wire

from toolcrib import Registry

CAP_KIB = 4096
CAP = CAP_KIB * 1024
# The bound this test holds the host to: at most this many times the cap
# over the host's own size before the call (see docs/sandbox-restricted.md).
MULTIPLE = 6
# Interpreter noise around one call (allocator arenas, a backend thread).
SLACK_KIB = 4 * 1024

TOOLS = {
    # Strings (two values each, their quotes, and a comma) of 45 characters:
    # as many as the value budget and the cap allow at once, the costliest
    # legitimate reply per byte.
    "strings": 'def strings(n: int) -> list:\n    """n short strings."""\n    return ["a" * 45] * n\n',
    # 3 bytes of JSON, 64 of memory each: refused past the value budget.
    "lists": 'def lists(n: int) -> list:\n    """n empty lists."""\n    return [[] for _ in range(n)]\n',
    "dicts": 'def dicts(n: int) -> list:\n    """n one-key dicts."""\n    return [{"k": i} for i in range(n)]\n',
    "text": 'def text(n: int) -> str:\n    """n characters."""\n    return "x" * n\n',
    # One character beyond U+FFFF makes Python store the whole string at 4
    # bytes a character: the costliest string per byte of JSON.
    "wide": 'def wide(n: int) -> str:\n    """n characters, one an emoji."""\n    return "\\U0001F600" + "x" * n\n',
    "warm": 'def warm() -> int:\n    """A trivial call."""\n    return 1\n',
}
# n for each tool: a reply just under the cap in bytes.
SIZES = {
    "strings": CAP // 48 - 64,
    "lists": CAP // 3 - 64,
    "dicts": CAP // 16 - 64,
    "text": CAP - 512,
    "wide": CAP - 512,
}

HOST = textwrap.dedent(
    """
    import json, resource, sys
    from toolcrib import Registry
    from toolcrib.sandbox.contract import Limits
    path, name, n, cap_kib, backend = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    maxima = Limits(cpu=60, wall=120, memory=4096, output=cap_kib, pids=256, disk=256)
    with Registry(path, max_limits=maxima) as reg:
        reg.call("warm", {}, allow_unverified=True, backend=backend)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = reg.call(name, {"n": n}, allow_unverified=True, backend=backend)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"status": out.status, "limit": out.limit, "grown_kib": after - before,
                          "error": out.error.message if out.error else None}))
    """
)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reply") / "r.db"
    from toolcrib.sandbox.contract import Limits

    with Registry(path, actor="setup") as reg:
        for source in TOOLS.values():
            reg.add(source, limits=Limits(cpu=30, wall=60, memory=1024, output=CAP_KIB))
    return path


def _host_call(registry: Path, name: str, backend: str = "restricted") -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", HOST, str(registry), name, str(SIZES[name]), str(CAP_KIB), backend],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("name", ["strings", "lists", "dicts", "text", "wide"])
def test_one_call_costs_the_host_a_small_multiple_of_the_output_limit(registry: Path, name: str) -> None:
    got = _host_call(registry, name)
    # The reply fits the cap in bytes: either it is the tool's answer, or
    # (too many values for the cap) the output limit; never anything else.
    assert (got["status"], got["limit"]) in (("ok", None), ("limit", "output")), got
    assert isinstance(got["grown_kib"], int)
    assert got["grown_kib"] <= MULTIPLE * CAP_KIB + SLACK_KIB, (
        f"{name}: the host grew by {got['grown_kib'] / 1024:.0f} MiB for one call under an output limit of "
        f"{CAP_KIB // 1024} MiB"
    )


@pytest.mark.docker
@pytest.mark.parametrize("name", ["lists", "text"])
def test_the_docker_backend_holds_the_same_bound(registry: Path, name: str, docker_image: str) -> None:
    # The reply crosses the engine's attach stream in frames: copied once out of it.
    got = _host_call(registry, name, "docker")
    assert (got["status"], got["limit"]) in (("ok", None), ("limit", "output")), got
    assert isinstance(got["grown_kib"], int)
    assert got["grown_kib"] <= MULTIPLE * CAP_KIB + SLACK_KIB, (
        f"{name} on Docker: the host grew by {got['grown_kib'] / 1024:.0f} MiB for one call"
    )


def test_a_reply_within_the_value_budget_is_the_tools_answer(registry: Path) -> None:
    # The budget refuses only what is costly: as many short strings as it allows come back whole.
    got = _host_call(registry, "strings")
    assert got["status"] == "ok", got


def test_the_cli_stays_within_the_same_multiple(registry: Path) -> None:
    """`call --json`: the indenting encoder makes a small string per token;
    joined before printing they cost ~10 times the result."""
    try:
        from toolcrib.registry.limits import set_maxima
    except ImportError:  # before the operator's maxima existed, the registry allowed 16 MiB anyway
        pass
    else:
        with Registry(registry, actor="operator") as reg:
            set_maxima(reg.db.conn, actor="operator", changes={"output": CAP_KIB})
    cli = [str(Path(sys.executable).with_name("toolcrib")), "--registry", str(registry), "call"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def peak_kib(*args: str) -> int:
        proc = subprocess.Popen(
            [*cli, *args, "--allow-unverified", "--json"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
        _, status, usage = os.wait4(proc.pid, 0)
        # Reaped here (for its rusage): tell Popen, or it warns "still running".
        proc.returncode = os.waitstatus_to_exitcode(status)
        assert proc.returncode in (0, 5)  # the answer, or the output limit
        return usage.ru_maxrss

    base = peak_kib("warm")
    for name in ("strings", "lists"):
        grown = peak_kib(name, "--arg", f"n={SIZES[name]}") - base
        assert grown <= MULTIPLE * CAP_KIB + SLACK_KIB, f"{name}: the CLI grew by {grown / 1024:.0f} MiB"


def test_the_value_budget_is_counted_outside_strings() -> None:
    """Commas, colons and brackets inside strings are no values: a long
    string of them is one value, and escaped quotes do not end it."""
    text = '[{"a": 1}, ' * 20000 + '\\" ,,,'
    raw = json.dumps({"status": "ok", "result": text, "error": None, "limit": None, "stdout": ""}).encode()
    assert not wire.value_count_over(raw, 32)  # the reply object: its five keys and values
    assert wire.parse_reply(raw, cap=len(raw))["result"] == text
    many = json.dumps({"status": "ok", "result": [[]] * 1000, "error": None, "limit": None, "stdout": ""}).encode()
    assert wire.value_count_over(many, 1000)
    with pytest.raises(wire.OverCap, match="JSON values"):
        wire.parse_reply(many, cap=16 * 500)
    # A string counts as two values (~57 bytes of memory before its first character).
    strings = json.dumps(["ab"] * 100).encode()
    assert wire.value_count_over(strings, 300) and not wire.value_count_over(strings, 301)  # 200 + 99 + 1 + 1


def test_a_reply_in_raw_utf8_is_refused() -> None:
    # The sandbox escapes every non-ASCII character; raw UTF-8 is a forgery
    # (one 4-byte character would widen the whole decoded reply to UCS-4).
    raw = '{"status":"ok","result":"\U0001f600'.encode() + b"x" * 1000 + b'","error":null,"limit":null,"stdout":""}'
    with pytest.raises(wire.ProtocolError, match="ASCII"):
        wire.parse_reply(raw, cap=1 << 20)


@pytest.mark.parametrize(
    "value",
    [
        "short",
        ["a", {"é": 1}],
        "\U0001f600" + "x" * 5000,
        ["\x7f\u20ac\\u" * 900, {"k": '"\n' * 2000}],
        {"b": "é" * 3000, "a": [1, 2.5, None, True]},
        "\\u00e9" * 1000,
    ],
)
def test_the_audited_result_is_the_capped_value_without_the_wide_text(value: object) -> None:
    from toolcrib.registry.audit import cap_value
    from toolcrib.registry.calls import audited_result

    assert audited_result(value) == cap_value(value)
