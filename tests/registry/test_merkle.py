"""RFC 6962 / 9162 Merkle hashing and proofs (registry/merkle.py), checked
against the reference test vectors of Certificate Transparency
(certificate-transparency-go / transparency-dev/merkle: eight leaves, the
root of every size, two inclusion and three consistency proofs), then every
proof of every tree up to 40 leaves, and tampered proofs refused."""

from __future__ import annotations

import pytest
from toolcrib.registry.merkle import (
    EMPTY_ROOT,
    CountingReader,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_of,
    subtree_hash,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                     "606162636465666768696a6b6c6d6e6f")]  # fmt: skip
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
INCLUSION = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]  # fmt: skip
CONSISTENCY = [
    (2, 8, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip


def _reader(hashes: list[bytes]):
    """The perfect-subtree nodes of a tree over `hashes` (what the store keeps)."""

    def node(level: int, index: int) -> bytes:
        width = 1 << level
        return root_of(hashes[index * width : (index + 1) * width])

    return node


HASHED = [leaf_hash(x) for x in LEAVES]


def test_the_reference_roots() -> None:
    assert root_of([]) == EMPTY_ROOT
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    for n in range(1, 9):
        assert root_of(HASHED[:n]).hex() == ROOTS[n - 1]
        assert subtree_hash(_reader(HASHED), 0, n).hex() == ROOTS[n - 1]


@pytest.mark.parametrize(("index", "size", "expected"), INCLUSION)
def test_the_reference_inclusion_proofs(index: int, size: int, expected: list[str]) -> None:
    proof = inclusion_proof(_reader(HASHED), index, size)
    assert [p.hex() for p in proof] == expected
    assert verify_inclusion(index, size, HASHED[index], proof, bytes.fromhex(ROOTS[size - 1]))


@pytest.mark.parametrize(("old", "new", "expected"), CONSISTENCY)
def test_the_reference_consistency_proofs(old: int, new: int, expected: list[str]) -> None:
    proof = consistency_proof(_reader(HASHED), old, new)
    assert [p.hex() for p in proof] == expected
    assert verify_consistency(old, new, bytes.fromhex(ROOTS[old - 1]), bytes.fromhex(ROOTS[new - 1]), proof)


def test_every_proof_of_every_tree_up_to_40_verifies_and_tampering_fails() -> None:
    hashes = [leaf_hash(i.to_bytes(2, "big")) for i in range(40)]
    node = _reader(hashes)
    roots = [root_of(hashes[:n]) for n in range(41)]
    for n in range(1, 41):
        for i in range(n):
            proof = inclusion_proof(node, i, n)
            assert verify_inclusion(i, n, hashes[i], proof, roots[n])
            assert not verify_inclusion(i, n, hashes[(i + 1) % n], proof, roots[n]) or n == 1
            if proof:
                bad = [*proof[:-1], bytes(32)]
                assert not verify_inclusion(i, n, hashes[i], bad, roots[n])
                assert not verify_inclusion(i, n, hashes[i], proof[:-1], roots[n])
            assert not verify_inclusion(i, n, hashes[i], [*proof, bytes(32)], roots[n])
        for m in range(0, n + 1):
            proof = consistency_proof(node, m, n)
            assert verify_consistency(m, n, roots[m], roots[n], proof), (m, n)
            if 0 < m < n:
                assert not verify_consistency(m, n, roots[m], roots[n - 1], proof)
                flipped = [bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:]]
                assert not verify_consistency(m, n, roots[m], roots[n], flipped)
                assert not verify_consistency(m, n, roots[m], roots[n], proof[:-1])


def test_a_proof_reads_each_node_once_and_logarithmically_many() -> None:
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(1000)]
    counted = CountingReader(_reader(hashes))
    proof = inclusion_proof(counted, 377, 1000)
    assert verify_inclusion(377, 1000, hashes[377], proof, root_of(hashes))
    assert counted.reads <= 2 * 10  # log2(1000) ~ 10


def test_node_hash_is_ordered() -> None:
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert node_hash(a, b) != node_hash(b, a)
