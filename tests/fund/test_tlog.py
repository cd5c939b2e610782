"""The transparency log's tree and proofs (fund/tlog.py) against RFC 6962's published test
vectors (the same trees as RFC 9162 §2.1) and against pymerkle, an implementation not written
here; and every proof of small trees verified, every altered one refused."""

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymerkle import InmemoryTree

from fund import tlog

h = bytes.fromhex
# The certificate-transparency test data: eight leaves and the roots of the trees of 1 to 8.
LEAVES = [h(x) for x in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                         "606162636465666768696a6b6c6d6e6f")]  # fmt: skip
ROOTS = [h(x) for x in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]  # fmt: skip
HASHES = [tlog.leaf_hash(leaf) for leaf in LEAVES]


def test_the_roots_of_the_published_trees():
    assert tlog.tree_root([]) == h(
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert [tlog.tree_root(HASHES[:n]) for n in range(1, 9)] == ROOTS


def test_the_published_proofs():
    inclusion = [h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                 h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                 h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]  # fmt: skip
    assert tlog.inclusion_proof(HASHES, 5) == inclusion
    tlog.verify_inclusion(5, 8, HASHES[5], inclusion, ROOTS[7])
    consistency = [
        h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
        h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    ]
    assert tlog.consistency_proof(HASHES, 6) == consistency
    tlog.verify_consistency(6, 8, consistency, ROOTS[5], ROOTS[7])
    two_five = [h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")]  # fmt: skip
    assert tlog.consistency_proof(HASHES[:5], 2) == two_five
    tlog.verify_consistency(2, 5, two_five, ROOTS[1], ROOTS[4])
    with pytest.raises(tlog.ProofError):
        tlog.verify_consistency(6, 8, consistency, ROOTS[4], ROOTS[7])
    with pytest.raises(tlog.ProofError):
        tlog.verify_inclusion(4, 8, HASHES[5], inclusion, ROOTS[7])


@given(entries=st.lists(st.binary(max_size=8), min_size=1, max_size=70))
def test_roots_and_paths_are_pymerkles(entries):
    other = InmemoryTree(algorithm="sha256")
    for entry in entries:
        other.append_entry(entry)
    hashes = [tlog.leaf_hash(entry) for entry in entries]
    assert tlog.tree_root(hashes) == other.get_root()
    for index in range(len(entries)):
        theirs = other.prove_inclusion(index + 1, len(entries)).serialize()["path"]
        assert [p.hex() for p in tlog.inclusion_proof(hashes, index)] == theirs[1:]


def _altered(proof: list[bytes]) -> list[list[bytes]]:
    flipped = [bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:]] if proof else []
    forged = [flipped, proof[:-1], [*proof, hashlib.sha256(b"x").digest()], proof[::-1]]
    return [p for p in forged if p != proof]


@given(size=st.integers(1, 40))
def test_every_proof_of_a_small_tree_verifies_and_no_altered_one_does(size):
    hashes = [tlog.leaf_hash(str(i).encode()) for i in range(size)]
    root = tlog.tree_root(hashes)
    for index in range(size):
        proof = tlog.inclusion_proof(hashes, index)
        tlog.verify_inclusion(index, size, hashes[index], proof, root)
        for bad in _altered(proof):
            with pytest.raises(tlog.ProofError):
                tlog.verify_inclusion(index, size, hashes[index], bad, root)
        if size > 1:  # the same path read for another position leads elsewhere
            with pytest.raises(tlog.ProofError):
                tlog.verify_inclusion((index + 1) % size, size, hashes[index], proof, root)
    for first in range(1, size + 1):
        proof = tlog.consistency_proof(hashes, first)
        first_root = tlog.tree_root(hashes[:first])
        tlog.verify_consistency(first, size, proof, first_root, root)
        for bad in _altered(proof):
            with pytest.raises(tlog.ProofError):
                tlog.verify_consistency(first, size, bad, first_root, root)
        if first < size:  # a rewritten history: one earlier leaf changed
            rewritten = [*hashes[: first - 1], tlog.leaf_hash(b"forged"), *hashes[first:]]
            with pytest.raises(tlog.ProofError):
                tlog.verify_consistency(
                    first, size, tlog.consistency_proof(rewritten, first), first_root,
                    tlog.tree_root(rewritten),
                )  # fmt: skip


@pytest.mark.parametrize(
    "call",
    [
        lambda: tlog.verify_inclusion(3, 3, HASHES[0], [], ROOTS[2]),
        lambda: tlog.verify_consistency(0, 3, [], ROOTS[0], ROOTS[2]),
        lambda: tlog.verify_consistency(4, 3, [ROOTS[0]], ROOTS[3], ROOTS[2]),
        lambda: tlog.verify_consistency(3, 3, [ROOTS[0]], ROOTS[2], ROOTS[2]),
        lambda: tlog.verify_consistency(3, 3, [], ROOTS[2], ROOTS[1]),
        lambda: tlog.verify_consistency(2, 3, [], ROOTS[1], ROOTS[2]),
        lambda: tlog.consistency_proof(HASHES[:3], 4),
        lambda: tlog.inclusion_proof(HASHES[:3], 3),
    ],
)
def test_impossible_sizes_are_refused(call):
    with pytest.raises(tlog.ProofError):
        call()


def test_a_records_log_entry_is_what_its_chained_hash_covers():
    from datetime import UTC, datetime

    from fund.chain import GENESIS, record_entry, record_hash

    record = {
        "asset": "USDT", "precision": 8, "seq": 1, "kind": "deposit", "amount_units": 5 * 10**8,
        "balance_after_units": 5 * 10**8, "created_at": datetime(2026, 12, 1, tzinfo=UTC),
        "reason": "Top-up «Q4»",
    }  # fmt: skip
    entry = record_entry(**record)
    assert (
        entry
        == (
            '["USDT","1","deposit","5.00000000","5.00000000","2026-12-01T00:00:00.000000Z",'
            '"","","","Top-up «Q4»"]'
        ).encode()
    )
    assert (
        record_hash(previous=GENESIS, **record)
        == hashlib.sha256(GENESIS.encode() + b"\n" + entry).hexdigest()
    )
    assert tlog.tree_root([tlog.leaf_hash(entry)]) == tlog.leaf_hash(entry)


@given(st.integers(0, 600))
def test_the_root_built_leaf_by_leaf_is_the_trees(n):
    leaves = [tlog.leaf_hash(str(i).encode()) for i in range(n)]
    builder = tlog.RootBuilder()
    for leaf in leaves:
        builder.append(leaf)
    assert builder.count == n and builder.root() == tlog.tree_root(leaves)
