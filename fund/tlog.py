"""A fund's transparency log: the Merkle tree of RFC 9162 §2.1 over the fund's records in seq
order, its inclusion and consistency proofs, and their verification.

    entry       = the record's canonical bytes: the UTF-8 JSON array the hash chain covers
                  (fund/chain.py, docs/rules.md §6.1), without the previous hash
    leaf hash   = SHA-256(0x00 ‖ entry)
    node hash   = SHA-256(0x01 ‖ left ‖ right)
    MTH of n    = node(MTH(first k), MTH(rest)), k the largest power of two below n;
                  the empty tree's root is SHA-256 of nothing

fund/merkle.py builds the same trees (a level's odd last hash carried up is RFC 9162's split),
so its roots and paths serve here too; this module adds what a log needs beyond a cycle's root:
consistency proofs between two sizes and the verifiers of both kinds of proof, written after the
RFC's algorithms (§2.1.3.2, §2.1.4.2) so that docs/check_ledger.py can carry the same steps.
"""

import hashlib
from collections.abc import Sequence

from fund.merkle import LEAF, NODE, merkle_path, merkle_root

EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A proof that does not prove what it claims (or is malformed)."""


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(LEAF + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE + left + right).digest()


def tree_root(leaves: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes (32 bytes each)."""
    return bytes.fromhex(merkle_root(list(leaves))) if leaves else EMPTY_ROOT


def _split(n: int) -> int:
    """The largest power of two smaller than n (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path of leaf `index` (0-based) in the tree of `leaves`, from the leaf up."""
    if not 0 <= index < len(leaves):
        raise ProofError(f"leaf {index} is not in a tree of {len(leaves)}")
    return [bytes.fromhex(step["hash"]) for step in merkle_path(list(leaves), index)]


def consistency_proof(leaves: Sequence[bytes], first: int) -> list[bytes]:
    """RFC 9162 §2.1.4.1: PROOF(first, D[n]) for the tree of `leaves` (n = len(leaves))."""
    second = len(leaves)
    if not 0 < first <= second:
        raise ProofError(f"no consistency proof from size {first} to size {second}")
    return _subproof(first, leaves, True)


def _subproof(m: int, leaves: Sequence[bytes], whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [tree_root(leaves)]
    k = _split(n)
    if m <= k:
        return _subproof(m, leaves[:k], whole) + [tree_root(leaves[k:])]
    return _subproof(m - k, leaves[k:], False) + [tree_root(leaves[:k])]


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 §2.1.3.2; raises ProofError unless `proof` puts `leaf` at `index` of the tree
    of `size` leaves whose root is `root`."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("the inclusion proof is longer than the tree is high")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the inclusion proof is shorter than the tree is high")
    if r != root:
        raise ProofError("the inclusion proof does not lead to the root")


def verify_consistency(
    first: int, second: int, proof: Sequence[bytes], first_root: bytes, second_root: bytes
) -> None:
    """RFC 9162 §2.1.4.2; raises ProofError unless `proof` shows the tree of `second` leaves
    with root `second_root` extends the tree of `first` leaves with root `first_root`."""
    if not 0 < first <= second:
        raise ProofError(f"no consistency from size {first} to size {second}")
    if first == second:
        if proof:
            raise ProofError("trees of one size need an empty consistency proof")
        if first_root != second_root:
            raise ProofError("two different roots for one tree size")
        return
    if not proof:
        raise ProofError("the consistency proof is empty")
    path = list(proof)
    if first & (first - 1) == 0:  # a power of two: the first tree is a node of the second
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is longer than the tree is high")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the consistency proof is shorter than the tree is high")
    if fr != first_root:
        raise ProofError(f"the proof does not lead to the root of size {first}")
    if sr != second_root:
        raise ProofError(f"size {second} does not extend size {first}")
