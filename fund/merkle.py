"""The Merkle root a settled cycle publishes, and inclusion proofs. Two forms (the cycle's
root_format says which):

Form 2 (cycles settled since the inputs are published): every profitable position of the cycle,
participants and the rest, in rank order; anyone can rebuild it from the cycle's published
positions (docs/check_ledger.py --cycle), and a position's trader alone can find theirs:
    commitment = SHA-256( salt (16 bytes, the trader's alone) + UTF-8 of "position|cycle|position")
                 as 64 hex digits, e.g. of salt ‖ "position|42|7044516"
    leaf       = SHA-256( 0x00 + UTF-8 of
                          "v2|asset|cycle|rank|commitment|profit units|amount units" )
                 with the amount 0 for a position below the threshold

Form 1 (cycles settled before): the participants only, in rank order:
    leaf  = SHA-256( 0x00 + UTF-8 of "asset|cycle|rank|position|profit units|amount units" )
            e.g. "USDT|42|1|7044516|60000000000|26666666667": integers, amounts in the asset's
            smallest units, the position's profit before the apportionment

Both:
    node  = SHA-256( 0x01 + left hash + right hash )              (32-byte digests, not hex)
    A level with an odd number of hashes carries its last hash up unchanged. The root is the
    single hash left, published as 64 hex digits; a cycle without leaves publishes none.

The 0x00/0x01 prefixes keep a leaf from ever passing as a node; carrying the odd hash up (rather
than pairing it with itself) keeps two different lists from sharing a root. The tree is RFC 9162's
(fund/tlog.py). The salt keeps the published data from naming anyone: without it a commitment
cannot be tied to a position id, which counts from 1 and could otherwise be tried one by one.
"""

import hashlib
from collections.abc import Iterable

LEAF, NODE = b"\x00", b"\x01"
SALT_BYTES = 16
LEAF_V2 = "v2|{}|{}|{}|{}|{}|{}"  # asset, cycle, rank, commitment, profit, amount (form 2)


def position_commitment(*, salt: bytes, cycle_id: int, position_id: int) -> str:
    """Form 2: what the published data shows of a position (hex)."""
    return hashlib.sha256(bytes(salt) + f"position|{cycle_id}|{position_id}".encode()).hexdigest()


def position_leaf_text(
    *, asset: str, cycle_id: int, rank: int, commitment: str, profit_units: int, amount_units: int
) -> str:
    return LEAF_V2.format(asset, cycle_id, rank, commitment, profit_units, amount_units)


def position_leaf(
    asset: str, cycle_id: int, rank: int, commitment: str, profit: int, amount: int
) -> bytes:
    """Form 2: one position's leaf hash (on the settlement's path: a million of them)."""
    text = LEAF_V2.format(asset, cycle_id, rank, commitment, profit, amount)
    return hashlib.sha256(LEAF + text.encode()).digest()


def position_leaves(
    asset: str, cycle_id: int, rows: Iterable[tuple[int, str, int, int]]
) -> list[bytes]:
    """Form 2. rows: (rank, commitment, profit units, amount units), in rank order."""
    return [position_leaf(asset, cycle_id, *row) for row in rows]


def leaf_text(
    *, asset: str, cycle_id: int, rank: int, position_id: int, profit_units: int, amount_units: int
) -> str:
    return f"{asset}|{cycle_id}|{rank}|{position_id}|{profit_units}|{amount_units}"


def leaf_hash(text: str) -> bytes:
    return hashlib.sha256(LEAF + text.encode()).digest()


def cycle_leaves(
    asset: str, cycle_id: int, rows: Iterable[tuple[int, int, int, int]]
) -> list[bytes]:
    """rows: (rank, position id, profit units, amount units), in rank order."""
    sha, prefix = hashlib.sha256, f"{asset}|{cycle_id}|"
    return [
        sha(LEAF + f"{prefix}{rank}|{position}|{profit}|{amount}".encode()).digest()
        for rank, position, profit, amount in rows
    ]


def _parents(level: list[bytes]) -> list[bytes]:
    sha = hashlib.sha256
    parents = [sha(NODE + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        parents.append(level[-1])
    return parents


def merkle_root(leaves: list[bytes]) -> str:
    """The root as hex; "" for no leaves."""
    if not leaves:
        return ""
    level = leaves
    while len(level) > 1:
        level = _parents(level)
    return level[0].hex()


def merkle_path(leaves: list[bytes], index: int) -> list[dict]:
    """The sibling hashes from leaf `index` (0-based) up to the root, each with the side it
    sits on."""
    path, level = [], leaves
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):
            path.append(
                {"side": "left" if sibling < index else "right", "hash": level[sibling].hex()}
            )
        level, index = _parents(level), index // 2
    return path


def root_from_path(leaf: bytes, path: list[dict]) -> str:
    node = leaf
    for step in path:
        sibling = bytes.fromhex(step["hash"])
        pair = sibling + node if step["side"] == "left" else node + sibling
        node = hashlib.sha256(NODE + pair).digest()
    return node.hex()


# Proofs for large cycles without rebuilding the whole tree: the leaves are taken in aligned blocks
# of BLOCK (a power of two). A block's own root is the tree's node above it (a level with an odd
# count carries its last hash up, so the last, shorter block's root is its node too), and the
# levels above the blocks are the tree built over the block roots. A proof is then the path inside
# the leaf's block followed by the block's path among the block roots.
BLOCK = 1024


def block_roots(leaves, block: int = BLOCK) -> list[bytes]:
    """The roots of consecutive blocks of `block` leaves (leaves: an iterable, in rank order)."""
    roots, current = [], []
    for leaf in leaves:
        current.append(leaf)
        if len(current) == block:
            roots.append(bytes.fromhex(merkle_root(current)))
            current = []
    if current:
        roots.append(bytes.fromhex(merkle_root(current)))
    return roots


def merkle_path_in_blocks(
    block_leaves: list[bytes], index: int, roots: list[bytes], block: int = BLOCK
) -> list[dict]:
    """The path of leaf `index` (0-based, over the whole list) from the leaves of its block and the
    roots of all blocks: the same as merkle_path over every leaf."""
    return merkle_path(block_leaves, index % block) + merkle_path(roots, index // block)
