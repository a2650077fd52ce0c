"""The tool's code compiled by the host once per source and sent with each
job (issue 19: `sandbox/inside/precompiled.py`, `sandbox/code_cache.py`):
the child runs it only when every part's digest matches the texts it was
sent, and a source the policy refuses is never sent as code."""

from __future__ import annotations

import json
import marshal
from typing import Any

import pytest
from toolcrib.sandbox.code_cache import CodeCache
from toolcrib.sandbox.contract import Job
from toolcrib.sandbox.inside import execute, precompiled
from toolcrib.sandbox.restricted import RestrictedBackend

ADD = "def add(a, b):\n    return a + b\n"
NINETY_NINE = "def add(a, b):\n    return 99\n"
REFUSED = "def add(a, b):\n    return a.__class__\n"


def _job(source: str = ADD) -> dict[str, Any]:
    return {"source": source, "entrypoint": "add", "mode": "args", "args": {"a": 1, "b": 2}, "limits": {"output": 64}}


def _code_of(source: str, restricted: bool = True) -> bytes:
    parts = execute.compile_parts(_job(source), restricted)
    assert parts is not None
    return parts["<tool>"][1]


def _field(source_sent: str, code_source: str, *, restricted: bool = True, magic: str = precompiled.MAGIC) -> dict:
    """A compiled field for a job of ``source_sent`` carrying the code of
    ``code_source``, under the digest of ``source_sent``'s texts."""
    digest = precompiled.digest("<tool>", (None, source_sent), restricted)
    assert digest is not None
    field = precompiled.entry({"<tool>": (digest, _code_of(code_source, restricted))})
    field["magic"] = magic
    return field


def _run(job: dict[str, Any], restricted: bool = True) -> dict[str, Any]:
    return json.loads(execute.run_job(job, restricted=restricted))


def test_the_child_runs_the_code_the_host_sent_for_these_texts() -> None:
    # The digest covers the texts, not the code (the host is trusted to
    # send its own compile of them): code sent under the right digest runs.
    job = {**_job(ADD), precompiled.FIELD: _field(ADD, NINETY_NINE)}
    assert _run(job)["result"] == 99


@pytest.mark.parametrize("restricted", [True, False])
def test_code_whose_digest_is_not_its_sources_is_not_run(restricted: bool) -> None:
    # The code of another source, under that source's own digest: ignored,
    # and the texts the child was sent are compiled and run instead.
    job = {**_job(ADD), precompiled.FIELD: _field(NINETY_NINE, NINETY_NINE, restricted=restricted)}
    assert _run(job, restricted)["result"] == 3
    # Right texts, but code compiled for the other policy: another digest.
    other = {**_job(ADD), precompiled.FIELD: _field(ADD, NINETY_NINE, restricted=not restricted)}
    assert _run(other, restricted)["result"] == 3


def test_another_bytecode_magic_or_a_malformed_field_is_ignored() -> None:
    assert _run({**_job(ADD), precompiled.FIELD: _field(ADD, NINETY_NINE, magic="00000000")})["result"] == 3
    good = _field(ADD, NINETY_NINE)
    part = good["parts"]["<tool>"]
    for bad in (
        "junk",
        {"magic": precompiled.MAGIC},
        {"magic": precompiled.MAGIC, "parts": {}},
        {"magic": precompiled.MAGIC, "parts": {"<tool>": {**part, "code": "!!not base64!!"}}},
        # Not a code object, or the code of another part's name.
        {
            "magic": precompiled.MAGIC,
            "parts": {
                "<tool>": {**part, "code": precompiled.entry({"x": ("", marshal.dumps(42))})["parts"]["x"]["code"]}
            },
        },
        {
            "magic": precompiled.MAGIC,
            "parts": {
                "<tool>": {
                    **part,
                    "code": precompiled.entry({"x": ("", marshal.dumps(compile("99", "<snippet>", "eval")))})["parts"][
                        "x"
                    ]["code"],
                }
            },
        },
    ):
        assert _run({**_job(ADD), precompiled.FIELD: bad})["result"] == 3, bad


def test_all_or_nothing_a_snippet_job_needs_every_part() -> None:
    job = {**_job(ADD), "mode": "snippet", "snippet": "ans = add(2, 2) * 10"}
    # Only the tool's part: the snippet's is missing, so nothing sent is used.
    only_tool = precompiled.entry({"<tool>": (precompiled.digest("<tool>", (None, ADD), True), _code_of(NINETY_NINE))})
    assert _run({**job, precompiled.FIELD: only_tool})["result"] == 40
    parts = execute.compile_parts(job, True)
    assert parts is not None and set(parts) == {"<tool>", "<snippet>"}
    assert _run({**job, precompiled.FIELD: precompiled.entry(parts)})["result"] == 40


def test_the_host_sends_no_code_for_a_source_the_policy_refuses() -> None:
    job = _job(REFUSED)
    assert execute.compile_parts(job, True) is None
    assert execute.compile_parts(_job("def add(a, b)\n"), True) is None  # a syntax error
    assert execute.compile_parts(_job("x" * (precompiled.MAX_TEXT_BYTES + 1)), True) is None
    cache = CodeCache()
    assert cache.field(job, True) is None  # seen once
    assert cache.field(job, True) is None  # compiled here, refused: remembered
    assert cache.field(job, True) is None
    assert cache.compiled == 1


def test_the_cache_compiles_a_source_seen_twice_once_and_stays_bounded() -> None:
    cache = CodeCache(capacity=2)
    assert cache.field(_job(ADD), True) is None  # a single call: nothing compiled here
    assert cache.compiled == 0
    first = cache.field(_job(ADD), True)
    assert first is not None and cache.field(_job(ADD), True) == first
    assert cache.compiled == 1
    sent = json.loads(first)
    assert _run({**_job(ADD), precompiled.FIELD: sent})["result"] == 3
    # Other arguments, same texts: the same code.
    assert cache.field({**_job(ADD), "args": {"a": 5, "b": 5}}, True) == first
    # The policy is part of the key.
    assert cache.field(_job(ADD), False) is None
    for source in ("def add(a, b):\n    return 1\n", "def add(a, b):\n    return 2\n"):
        cache.field(_job(source), True)
    assert len(cache._entries) == 2  # least recently used dropped
    assert cache.field(_job(ADD), True) is None  # forgotten: seen once again


def test_through_the_zygote_the_child_runs_the_sent_code_and_refusals_are_unchanged() -> None:
    backend = RestrictedBackend(zygotes=1)
    try:
        add = Job(source=ADD, entrypoint="add", args={"a": 1, "b": 2})
        outcomes = [backend.run(add) for _ in range(3)]
        assert [(r.status, r.result) for r in outcomes] == [("ok", 3)] * 3
        assert backend._codes.compiled == 1
        assert backend._zygote is not None and backend._zygote.facts["bytecode_magic"] == precompiled.MAGIC
        refused = Job(source=REFUSED, entrypoint="add", args={"a": 1, "b": 2})
        answers = [backend.run(refused) for _ in range(3)]  # the child's compile, then the host's, then cached
        assert {(r.status, r.error) for r in answers} == {(answers[0].status, answers[0].error)}
        assert answers[0].status == "blocked"
        # What the child runs is the code that comes with the job: sent for
        # these texts, it is run (the host is the one that compiles it).
        field = json.dumps(_field(ADD, NINETY_NINE)).encode()
        backend._codes.field = lambda job, restricted: field  # type: ignore[method-assign]
        assert backend.run(add).result == 99
        # Sent under another source's digest: not run, the texts are.
        field = json.dumps(_field(NINETY_NINE, NINETY_NINE)).encode()
        assert backend.run(add).result == 3
    finally:
        backend.close()
