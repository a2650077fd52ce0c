"""browse's review view (issue 18): the canned queries "review_queue" and
"version_review" run read-only on a real registry and show the queue and
one version's source, previous source, evidence, maker and decisions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from toolcrib.registry.attest import generate_key
from toolcrib.registry.models import ProvenanceInput
from toolcrib.registry.store_review import REVIEW_QUERIES, make_query_only
from toolcrib.sandbox.fake import FakeBackend

from toolcrib import Registry

V1 = "def double(x: int) -> int:\n    return 2 * x\n"
V2 = "def double(x: int) -> int:\n    return x + x\n"


def _run(path: Path, name: str, **params: str) -> list[sqlite3.Row]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    make_query_only(conn)
    try:
        return conn.execute(REVIEW_QUERIES[name]["sql"], params).fetchall()
    finally:
        conn.close()


def test_the_review_view_reads_the_queue_and_one_version(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    key = tmp_path / "k"
    with Registry(path, actor="alice", backends={"restricted": FakeBackend(name="restricted")}) as reg:
        reg.trust_key(generate_key(key, name="alice"))
        first = reg.add(V1, tests=[{"args": {"x": 1}, "expected": 2}], provenance=ProvenanceInput(generator="m"))
        reg.verify(first.tool.ref)
        reg.approve(first.tool.ref, key=key, note="fine")
        second = reg.add(V2, tests=[{"args": {"x": 1}, "expected": 2}], provenance=ProvenanceInput(generator="m"))
        reg.verify(second.tool.ref)
        reg.add(V1.replace("double", "human_double"), provenance=ProvenanceInput(generator="human"))
        assert [i.ref for i in reg.review_queue()] == [second.tool.ref]
    queue = _run(path, "review_queue")
    assert [(r["ref"], r["why"]) for r in queue] == [(second.tool.ref, "generator m taken as a model")]
    [one] = _run(path, "version_review", ref=first.tool.ref)
    assert one["source"] == V1 and "approved by alice: fine (signed " in one["decisions"]
    assert one["evidence"].startswith("verified 1/1 on restricted")
    [two] = _run(path, "version_review", ref=second.tool.ref)
    assert two["previous_source"] == "1.0.0\n" + V1 and two["decisions"] is None
