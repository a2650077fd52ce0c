"""The audit log as a verifiable log (issue 18): an RFC 6962/9162 Merkle tree
over its entries, kept beside the hash chain without changing a byte of it.

Leaf i (0-based) is entry seq i+1; its bytes are the UTF-8 canonical JSON of
the entry's seven hashed fields (seq, at, actor, event, tool, details,
prev_hash): exactly what the chain's ``entry_hash`` covers after the previous
hash. The store keeps the hash of every perfect subtree of 2**MIN_STORED
leaves or more (table ``audit_tree``: level, index, hash), written as each
entry is appended in its own transaction: one node per 2**(MIN_STORED-1)
appends on average, and no read while the right edge is cached
(`append_leaf`). A smaller subtree (a leaf, 2, 4 or 8 leaves) is recomputed
from its entries when a proof needs it. A root or a proof reads O(log n) nodes
(registry/merkle.py). Migration m010_audit_tree builds the tree over the
entries an existing registry already has.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

from .errors import InvalidInput, NotFound
from .merkle import (
    CountingReader,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_of,
    subtree_hash,
)
from .store_audit import audit_count, audit_head, audit_row, audit_rows, insert_tree_nodes, tree_node
from .versions import canonical_json

__all__ = [
    "append_leaf",
    "backfill",
    "entry_leaf",
    "prove_consistency",
    "prove_inclusion",
    "recomputed_root",
    "row_body",
    "row_leaf",
    "stored_root",
]


def entry_leaf(body_json: str) -> bytes:
    """The leaf hash of an entry whose seven hashed fields are `body_json`."""
    return leaf_hash(body_json.encode("utf-8"))


def row_body(row: tuple[Any, ...]) -> dict[str, Any]:
    """The seven hashed fields of a stored row (AUDIT_COLUMNS order): the entry
    as its leaf and the chain's hash cover it."""
    seq, at, actor, event, tool, details, prev_hash, _hash = row
    return {
        "seq": seq,
        "at": at,
        "actor": actor,
        "event": event,
        "tool": tool,
        "details": json.loads(details),
        "prev_hash": prev_hash,
    }


def row_leaf(row: tuple[Any, ...]) -> bytes:
    """The leaf hash of a stored row (AUDIT_COLUMNS order)."""
    return entry_leaf(canonical_json(row_body(row)))


# The right edge of the tree (the perfect subtrees of the log's binary
# decomposition, (level, hash), largest first) after the entry whose
# entry_hash is the key. The chain's hash commits to every entry, so a frontier
# found under the head's hash is that log's, whichever connection or process
# wrote it; a miss (another writer appended, a transaction rolled back) reads
# the frontier from the store instead. A few logs at most.
_FRONTIERS: dict[str, list[tuple[int, bytes]]] = {}
# Subtrees of 2, 4 and 8 leaves... below this level are not stored (an
# append would otherwise write a node on average; now one in 2**(MIN_STORED-1)),
# and are recomputed from their leaves when a proof needs one.
MIN_STORED = 4
_FRONTIERS_KEPT = 16


def append_leaf(conn: sqlite3.Connection, index: int, leaf: bytes, *, prev_hash: str, entry_hash: str) -> None:
    """Add leaf `index` (= the tree's size) and store the interior nodes it
    completes. Inside the append's write transaction. Leaves are not stored
    (a leaf is its entry's hash, recomputed from the entry when a proof needs
    it), so an append writes on average one node and, with the frontier
    cached, reads none. A file whose schema predates the tree
    (m010_audit_tree not applied yet) gets none: that migration builds the
    tree over every entry there is."""
    try:
        frontier = _FRONTIERS.pop(prev_hash, None)
        if frontier is None:
            frontier = _frontier(conn, index)
        nodes = _push(frontier, index, leaf)
        if nodes:
            insert_tree_nodes(conn, nodes)
    except sqlite3.OperationalError as exc:
        if "no such table: audit_tree" not in str(exc):
            raise
        return
    if len(_FRONTIERS) >= _FRONTIERS_KEPT:
        _FRONTIERS.clear()
    _FRONTIERS[entry_hash] = frontier


def _push(frontier: list[tuple[int, bytes]], index: int, leaf: bytes) -> list[tuple[int, int, bytes]]:
    """Add leaf `index` to the right edge; the nodes it completes that are stored (level >= MIN_STORED)."""
    nodes = []
    level, i, current = 0, index, leaf
    while i & 1:
        _level, left = frontier.pop()
        current = node_hash(left, current)
        level, i = level + 1, i >> 1
        if level >= MIN_STORED:
            nodes.append((level, i, current))
    frontier.append((level, current))
    return nodes


def _frontier(conn: sqlite3.Connection, size: int) -> list[tuple[int, bytes]]:
    """The right edge of the tree of `size` leaves, read from the store (O(log n))."""
    node = _reader(conn)
    out, start = [], 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            out.append((level, node(level, start >> level)))
            start += 1 << level
    return out


def backfill(conn: sqlite3.Connection, rows: Iterable[tuple[Any, ...]]) -> int:
    """Build the tree over `rows` (every entry, in seq order) with the
    frontier held in memory: no reads, a batch of writes. Returns the size."""
    frontier: list[tuple[int, bytes]] = []  # (level, hash) of the right edge's perfect subtrees
    batch: list[tuple[int, int, bytes]] = []
    size = 0
    for row in rows:
        batch += _push(frontier, size, row_leaf(row))
        size += 1
        if len(batch) >= 10_000:
            insert_tree_nodes(conn, batch)
            batch = []
    insert_tree_nodes(conn, batch)
    return size


def tree_size(conn: sqlite3.Connection) -> int:
    """How many leaves the tree has: one per entry (the newest seq)."""
    head = audit_head(conn)
    return 0 if head is None else head[0]


def _reader(conn: sqlite3.Connection) -> CountingReader:
    def read(level: int, index: int) -> bytes:
        if level == 0:  # a leaf: its entry's hash, from the entry itself
            row = audit_row(conn, index + 1)
            if row is None:
                raise InvalidInput(f"the audit log has no entry {index + 1}")
            return row_leaf(row)
        if level < MIN_STORED:  # not stored: from its two halves (at most 2**MIN_STORED - 1 leaves)
            reader.reads -= 1  # computed, not read: only the leaves under it count
            return node_hash(reader(level - 1, 2 * index), reader(level - 1, 2 * index + 1))
        found = tree_node(conn, level, index)
        if found is None:
            raise InvalidInput(f"the audit tree has no node ({level}, {index}): run 'toolcrib audit verify'")
        return found

    reader = CountingReader(read)
    return reader


def stored_root(conn: sqlite3.Connection, size: int | None = None) -> tuple[int, bytes]:
    """(size, root hash) of the tree as stored, at `size` (default: all of it)."""
    have = tree_size(conn)
    size = have if size is None else size
    if not 0 <= size <= have:
        raise NotFound(f"the audit log has {have} entries, not {size}")
    return size, subtree_hash(_reader(conn), 0, size)


def recomputed_root(conn: sqlite3.Connection, size: int) -> bytes:
    """The root over the first `size` entries, recomputed from the entries
    themselves (not the stored tree): what a checkpoint is checked against."""
    leaves: list[bytes] = []
    for row in audit_rows(conn):
        if len(leaves) == size:
            break
        leaves.append(row_leaf(row))
    if len(leaves) != size:
        raise NotFound(f"the audit log has {len(leaves)} entries, fewer than {size}")
    return root_of(leaves)


def prove_inclusion(conn: sqlite3.Connection, seq: int, size: int | None = None) -> dict[str, Any]:
    """Entry `seq` is in the tree of `size` (default: the whole log): its leaf
    hash and audit path, and how many stored nodes were read."""
    have = tree_size(conn)
    size = have if size is None else size
    if not 1 <= seq <= size <= have:
        raise NotFound(f"no entry {seq} in an audit log of {size} entries")
    row = audit_row(conn, seq)
    if row is None:
        raise NotFound(f"no audit entry {seq}")
    reader = _reader(conn)
    proof = inclusion_proof(reader, seq - 1, size)
    root = subtree_hash(reader, 0, size)
    return {
        "seq": seq,
        "index": seq - 1,
        "tree_size": size,
        "leaf_hash": row_leaf(row),
        "hashes": proof,
        "root_hash": root,
        "reads": reader.reads,
    }


def prove_consistency(conn: sqlite3.Connection, old: int, new: int | None = None) -> dict[str, Any]:
    """The tree of `new` entries (default: all) extends the tree of `old`."""
    have = tree_size(conn)
    new = have if new is None else new
    if not 0 <= old <= new <= have:
        raise NotFound(f"the audit log has {have} entries: no proof from {old} to {new}")
    reader = _reader(conn)
    proof = consistency_proof(reader, old, new)
    return {
        "old_size": old,
        "new_size": new,
        "old_root": subtree_hash(reader, 0, old),
        "new_root": subtree_hash(reader, 0, new),
        "hashes": proof,
        "reads": reader.reads,
    }


def entries(conn: sqlite3.Connection) -> int:
    return audit_count(conn)
