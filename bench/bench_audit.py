"""The verifiable audit log's costs (issue 18), each beside its baseline in
the same run:

    .venv/bin/python bench/bench_audit.py                   # 1,000,000 entries
    .venv/bin/python bench/bench_audit.py --entries 100000  # quicker

1. append: one audit entry in its own write transaction (what every call
   does), with the Merkle tree (leaf + completed nodes) against the same
   append without it (today's chain alone: `audit_tree.append_leaf` stubbed
   out, on a second registry file of the same size), in alternating rounds.
2. prove: an inclusion proof of one entry and a consistency proof in a log
   of --entries entries (built through the store: rows, chain and tree
   written in batches), with the stored nodes each read (O(log n)) and the
   time per proof.
3. attest: `Registry.verify_attestations` of an approved version (its DSSE
   envelope checked against the trusted keys), cold (first, imports
   included) and warm.

Figures also go to bench/out/bench_audit.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from toolcrib.registry import audit as audit_module
from toolcrib.registry.audit import GENESIS_HASH, append_row
from toolcrib.registry.audit_tree import backfill
from toolcrib.registry.store import write_transaction
from toolcrib.registry.store_audit import insert_audit_row
from toolcrib.registry.versions import canonical_json, sha256_text

from toolcrib import Registry

OUT = Path(__file__).resolve().parent / "out"


def _rows(n: int, start: int = 1, prev: str = GENESIS_HASH) -> Iterator[tuple[Any, ...]]:
    """n call entries as the log stores them, chained from `prev`."""
    for seq in range(start, start + n):
        details = {"status": "ok", "mode": "args", "backend": "restricted", "duration_ms": round(seq % 997 / 7, 3)}
        body = {
            "seq": seq,
            "at": f"2026-12-07T10:{seq // 60 % 60:02d}:{seq % 60:02d}.{seq % 1000000:06d}Z",
            "actor": "bench",
            "event": "call",
            "tool": f"tool_{seq % 50}@1.0.0",
            "details": details,
            "prev_hash": prev,
        }
        digest = sha256_text(prev + canonical_json(body))
        yield (seq, body["at"], "bench", "call", body["tool"], canonical_json(details), prev, digest)
        prev = digest


def build(path: Path, n: int) -> float:
    """A registry whose log holds n entries (plus its init), built through the store."""
    started = time.perf_counter()
    with Registry(path, actor="bench") as reg:
        conn = reg.db.conn
        head = conn.execute("SELECT seq, entry_hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        batch: list[tuple[Any, ...]] = []
        with write_transaction(conn):
            for row in _rows(n, head[0] + 1, head[1]):
                batch.append(row)
                if len(batch) == 50_000:
                    for r in batch:
                        insert_audit_row(conn, r)
                    batch = []
            for r in batch:
                insert_audit_row(conn, r)
        # The tree over every entry (the migration's own backfill), in one transaction.
        conn.execute("DROP TRIGGER IF EXISTS audit_tree_no_delete")
        with write_transaction(conn):
            conn.execute("DELETE FROM audit_tree")
            backfill(conn, conn.execute("SELECT * FROM audit ORDER BY seq"))
    return time.perf_counter() - started


def bench_append(size: int, rounds: int, per_round: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        tree_path, chain_path = Path(tmp) / "tree.db", Path(tmp) / "chain.db"
        build(tree_path, size)
        build(chain_path, size)
        tree_reg, chain_reg = Registry(tree_path, actor="bench"), Registry(chain_path, actor="bench")
        real = audit_module.append_leaf
        times: dict[str, list[float]] = {"merkle": [], "chain": []}

        def one_round(reg: Registry, label: str) -> None:
            conn = reg.db.conn
            for i in range(per_round):
                started = time.perf_counter()
                with write_transaction(conn):
                    append_row(conn, actor="bench", event="call", tool="t@1.0.0", details={"status": "ok", "i": i})
                times[label].append(time.perf_counter() - started)

        try:
            for r in range(rounds):
                order = [("merkle", tree_reg), ("chain", chain_reg)]
                if r % 2:
                    order.reverse()
                for label, reg in order:
                    audit_module.append_leaf = real if label == "merkle" else (lambda *a, **k: None)  # type: ignore[assignment]
                    one_round(reg, label)
        finally:
            audit_module.append_leaf = real  # type: ignore[assignment]
            tree_reg.close()
            chain_reg.close()
    merkle = statistics.median(times["merkle"]) * 1e6
    chain = statistics.median(times["chain"]) * 1e6
    return {
        "log_size": size,
        "appends_each": len(times["merkle"]),
        "merkle_median_us": round(merkle, 1),
        "chain_median_us": round(chain, 1),
        "ratio": round(merkle / chain, 3),
    }


def bench_prove(n: int, samples: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.db"
        built = build(path, n)
        with Registry(path, actor="bench") as reg:
            size = reg.audit_prove(1)["tree_size"]
            rng = random.Random(7)
            inclusion_ms, inclusion_reads = [], []
            for _ in range(samples):
                seq = rng.randint(1, size)
                started = time.perf_counter()
                proof = reg.audit_prove(seq)
                inclusion_ms.append((time.perf_counter() - started) * 1e3)
                inclusion_reads.append(proof["reads"])
            from toolcrib.registry.audit_tree import prove_consistency

            consistency_ms, consistency_reads = [], []
            for _ in range(samples):
                old = rng.randint(1, size)
                started = time.perf_counter()
                found = prove_consistency(reg.db.conn, old)
                consistency_ms.append((time.perf_counter() - started) * 1e3)
                consistency_reads.append(found["reads"])
    return {
        "entries": size,
        "build_s": round(built, 1),
        "inclusion_median_ms": round(statistics.median(inclusion_ms), 3),
        "inclusion_max_ms": round(max(inclusion_ms), 3),
        "inclusion_reads_max": max(inclusion_reads),
        "consistency_median_ms": round(statistics.median(consistency_ms), 3),
        "consistency_reads_max": max(consistency_reads),
    }


def bench_attest(samples: int) -> dict[str, Any]:
    from toolcrib.registry.attest import generate_key
    from toolcrib.registry.models import ProvenanceInput
    from toolcrib.sandbox.fake import FakeBackend

    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "k"
        with Registry(
            Path(tmp) / "r.db", actor="bench", backends={"restricted": FakeBackend(name="restricted")}
        ) as reg:
            reg.trust_key(generate_key(key, name="bench"))
            ref = reg.add(
                "def f(x: int) -> int:\n    return x\n",
                tests=[{"args": {"x": 1}, "expected": 1}],
                provenance=ProvenanceInput(generator="m"),
            ).tool.ref
            reg.verify(ref)
            reg.approve(ref, key=key)
            started = time.perf_counter()
            [(_d, problem)] = reg.verify_attestations(ref)
            cold = (time.perf_counter() - started) * 1e3
            assert problem is None
            warm = []
            for _ in range(samples):
                started = time.perf_counter()
                reg.verify_attestations(ref)
                warm.append((time.perf_counter() - started) * 1e3)
    return {"cold_ms": round(cold, 2), "warm_median_ms": round(statistics.median(warm), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="log size for the proofs")
    parser.add_argument("--append-log", type=int, default=10_000, help="log size for the append rounds")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=200)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    results = {
        "append": bench_append(args.append_log, args.rounds, args.per_round),
        "attest": bench_attest(args.samples),
        "prove": bench_prove(args.entries, args.samples),
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "bench_audit.json").write_text(json.dumps(results, indent=2) + "\n")
    json.dump(results, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
