"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and their verification
(issue 18: the audit log as a verifiable log).

Hashes: a leaf is ``SHA-256(0x00 || entry bytes)``, an interior node
``SHA-256(0x01 || left || right)``, the empty tree ``SHA-256("")``; a tree of
n > 1 leaves splits at k, the largest power of two below n (RFC 9162 §2.1.1).

The tree of a log is read through `NodeReader`: ``node(level, index)`` is
the hash of the perfect subtree of 2**level leaves starting at leaf
``index * 2**level``, which the store keeps as leaves are appended
(registry/store_audit.py). Any range the proofs need is built from at most
O(log n) such nodes; each node is read once per proof (`CountingReader`
counts them: bench/bench_audit.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "CountingReader",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_of",
    "subtree_hash",
    "verify_consistency",
    "verify_inclusion",
]

EMPTY_ROOT = hashlib.sha256(b"").digest()
NodeReader = Callable[[int, int], bytes]


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaves: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes, straight from the RFC's definition (the reference
    the stored tree is checked against; O(n))."""
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    # Bottom-up, carrying an unpaired right edge up: the same tree as the
    # RFC's recursive split.
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


class CountingReader:
    """A NodeReader that reads each node once and counts the reads."""

    def __init__(self, read: NodeReader) -> None:
        self._read = read
        self._seen: dict[tuple[int, int], bytes] = {}
        self.reads = 0

    def __call__(self, level: int, index: int) -> bytes:
        key = (level, index)
        found = self._seen.get(key)
        if found is None:
            self.reads += 1
            found = self._seen[key] = self._read(level, index)
        return found


def subtree_hash(node: NodeReader, lo: int, hi: int) -> bytes:
    """MTH of leaves [lo, hi), where lo is a multiple of the smallest power of
    two >= hi - lo (every range the RFC's recursion visits is)."""
    n = hi - lo
    if n <= 0:
        return EMPTY_ROOT
    if n & (n - 1) == 0 and lo % n == 0:
        return node(n.bit_length() - 1, lo // n)
    k = _split(n)
    return node_hash(subtree_hash(node, lo, lo + k), subtree_hash(node, lo + k, hi))


def inclusion_proof(node: NodeReader, index: int, size: int) -> list[bytes]:
    """PATH(index, D[0:size]) (RFC 9162 §2.1.3.1)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    proof: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            proof.append(subtree_hash(node, lo + k, hi))
            hi = lo + k
        else:
            proof.append(subtree_hash(node, lo, lo + k))
            lo = lo + k
    proof.reverse()
    return proof


def consistency_proof(node: NodeReader, old: int, new: int) -> list[bytes]:
    """PROOF(old, D[0:new]) (RFC 9162 §2.1.4.1); empty when old is 0 or new."""
    if not 0 <= old <= new:
        raise ValueError(f"no consistency proof from {old} to {new}")
    if old in (0, new):
        return []
    proof: list[bytes] = []
    lo, hi, m, whole = 0, new, old, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            proof.append(subtree_hash(node, lo + k, hi))
            hi = lo + k
        else:
            proof.append(subtree_hash(node, lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    if not whole:
        proof.append(subtree_hash(node, lo, hi))
    proof.reverse()
    return proof


def _valid(*hashes: object) -> bool:
    return all(isinstance(h, bytes) and len(h) == 32 for h in hashes)


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2."""
    if not (0 <= index < size) or not _valid(leaf, root, *proof):
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """RFC 9162 §2.1.4.2 (and the trivial cases: an empty old tree, equal sizes)."""
    if not (0 <= old <= new) or not _valid(old_root, new_root, *proof):
        return False
    if old == new:
        return not proof and old_root == new_root
    if old == 0:
        return not proof and old_root == EMPTY_ROOT
    path = list(proof)
    if old & (old - 1) == 0:
        path.insert(0, old_root)
    if not path:
        return False
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0
