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

Kept as C2SP tlog-tiles keeps it: a tile of level L and index N holds up to 256 consecutive hashes
of the tree's level 8·L (level 0: the leaf hashes), those of positions 256·N to 256·N + 255; a
tile is full at 256 hashes, partial before. tile_updates says which tiles an append writes;
TiledTree answers roots and proofs of any size from tiles alone, reading O(log n) of them.
"""

import hashlib
from collections.abc import Callable, Sequence
from functools import cache

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
    return _subproof(first, 0, second, True, lambda lo, hi: tree_root(leaves[lo:hi]))


def _path(m: int, lo: int, hi: int, mth: Callable[[int, int], bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1: PATH(m, D[lo:hi]), with mth(lo, hi) the hash of D[lo:hi]."""
    if hi - lo == 1:
        return []
    k = _split(hi - lo)
    if m < k:
        return _path(m, lo, lo + k, mth) + [mth(lo + k, hi)]
    return _path(m - k, lo + k, hi, mth) + [mth(lo, lo + k)]


def _subproof(
    m: int, lo: int, hi: int, whole: bool, mth: Callable[[int, int], bytes]
) -> list[bytes]:
    """RFC 9162 §2.1.4.1: SUBPROOF(m, D[lo:hi], whole)."""
    n = hi - lo
    if m == n:
        return [] if whole else [mth(lo, hi)]
    k = _split(n)
    if m <= k:
        return _subproof(m, lo, lo + k, whole, mth) + [mth(lo + k, hi)]
    return _subproof(m - k, lo + k, hi, False, mth) + [mth(lo, lo + k)]


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


class RootBuilder:
    """MTH built leaf by leaf in O(log n) memory: a stack of the perfect subtrees the leaves so
    far make (one per bit of their count), merged as they fill; root() at any count."""

    def __init__(self):
        self.count, self._stack = 0, []  # [(height, hash)], heights decreasing

    def append(self, leaf: bytes) -> None:
        self.count += 1
        height, node = 0, leaf
        while self._stack and self._stack[-1][0] == height:
            node = node_hash(self._stack.pop()[1], node)
            height += 1
        self._stack.append((height, node))

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        node = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            node = node_hash(left, node)
        return node


# Tiles (C2SP tlog-tiles).
TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT  # hashes in a full tile
HASH = 32


def _perfect_root(hashes: bytes) -> bytes:
    """The root of the perfect subtree over 2**r consecutive hashes (concatenated)."""
    level = [hashes[i : i + HASH] for i in range(0, len(hashes), HASH)]
    sha = hashlib.sha256
    while len(level) > 1:
        level = [sha(NODE + level[i] + level[i + 1]).digest() for i in range(0, len(level), 2)]
    return level[0]


def tile_updates(
    size: int, partials: dict[int, bytes], leaves: Sequence[bytes]
) -> list[tuple[int, int, bytes]]:
    """The tiles to write when `leaves` (leaf hashes) are appended to a tree of `size` leaves:
    (level, index, hashes) with each tile's whole new content. `partials` holds, by level, the
    hashes of that level's last tile as stored when it is partial (a level whose hash count is
    a multiple of 256 has none). A tile that fills up adds its root to the level above."""
    updates: list[tuple[int, int, bytes]] = []
    level, new = 0, b"".join(leaves)
    while new:
        index, width = divmod(size >> (TILE_HEIGHT * level), TILE_WIDTH)
        data = partials.get(level, b"") if width else b""
        if len(data) != width * HASH:
            raise ValueError(
                f"the partial tile of level {level} holds {len(data) // HASH} hashes, not {width}"
            )
        data += new
        full = TILE_WIDTH * HASH
        roots = []
        for start in range(0, len(data), full):
            chunk = data[start : start + full]
            updates.append((level, index + start // full, chunk))
            if len(chunk) == full:
                roots.append(_perfect_root(chunk))
        level, new = level + 1, b"".join(roots)
    return updates


def tiles_needed(size: int) -> list[tuple[int, int, int]]:
    """The partial tiles a tree of `size` leaves has: (level, index, width) of each."""
    needed, level = [], 0
    while size >> (TILE_HEIGHT * level):
        index, width = divmod(size >> (TILE_HEIGHT * level), TILE_WIDTH)
        if width:
            needed.append((level, index, width))
        level += 1
    return needed


class TiledTree:
    """The tree of `size` leaves, read from tiles: `fetch(level, index)` returns the stored
    hashes of one tile (a tile may have grown past `size`: only its prefix is read). With
    `fetch_many({(level, index), …})` → {(level, index): hashes}, a root or proof first works out
    which tiles its nodes lie in and reads them all at once. Each node is computed once."""

    def __init__(
        self,
        size: int,
        fetch: Callable[[int, int], bytes],
        fetch_many: Callable[[set], dict] | None = None,
    ):
        self.size = size
        self._fetch, self._fetch_many = fetch, fetch_many
        self._tiles: dict[tuple[int, int], bytes] = {}
        self._node = cache(self._node_uncached)

    def _tile(self, level: int, index: int) -> bytes:
        key = (level, index)
        if key not in self._tiles:
            self._tiles[key] = self._fetch(level, index)
        return self._tiles[key]

    def _prefetch(self, ranges: list[tuple[int, int]]) -> None:
        """Reads at once the tiles of every node the hashes of `ranges` are made of."""
        if self._fetch_many is None:
            return
        nodes: list[tuple[int, int]] = []
        for lo, hi in ranges:
            _perfect_nodes(lo, hi, nodes)
        wanted = set()
        for height, index in nodes:
            level, rest = divmod(height, TILE_HEIGHT)
            wanted.add((level, (index << rest) >> TILE_HEIGHT))
        wanted -= self._tiles.keys()
        if wanted:
            found = self._fetch_many(wanted)
            self._tiles.update({key: found.get(key, b"") for key in wanted})

    def _node_uncached(self, height: int, index: int) -> bytes:
        """The root of the perfect subtree of 2**height leaves starting at leaf index·2**height."""
        level, rest = divmod(height, TILE_HEIGHT)
        first = index << rest  # position of its first hash at level 8·level
        tile = self._tile(level, first >> TILE_HEIGHT)
        start = (first & (TILE_WIDTH - 1)) * HASH
        hashes = tile[start : start + (HASH << rest)]
        if len(hashes) != HASH << rest:
            raise ProofError(
                f"the log's tile {level}/{first >> TILE_HEIGHT} lacks hashes of a tree of "
                f"{self.size}: the stored tree is incomplete"
            )
        return _perfect_root(hashes)

    def hash(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) for lo aligned as RFC 9162's splits leave it."""
        n = hi - lo
        if n & (n - 1) == 0 and lo % n == 0:
            return self._node(n.bit_length() - 1, lo // n)
        k = _split(n)
        return node_hash(self.hash(lo, lo + k), self.hash(lo + k, hi))

    def root(self) -> bytes:
        if not self.size:
            return EMPTY_ROOT
        self._prefetch([(0, self.size)])
        return self.hash(0, self.size)

    def inclusion_proof(self, index: int) -> list[bytes]:
        if not 0 <= index < self.size:
            raise ProofError(f"leaf {index} is not in a tree of {self.size}")
        self._prefetch([*_ranges(lambda mth: _path(index, 0, self.size, mth)), (0, self.size)])
        return _path(index, 0, self.size, self.hash)

    def consistency_proof(self, first: int) -> list[bytes]:
        if not 0 < first <= self.size:
            raise ProofError(f"no consistency proof from size {first} to size {self.size}")
        ranges = _ranges(lambda mth: _subproof(first, 0, self.size, True, mth))
        self._prefetch([*ranges, (0, first), (0, self.size)])
        return _subproof(first, 0, self.size, True, self.hash)


def _ranges(run: Callable) -> list[tuple[int, int]]:
    """The ranges a proof's recursion asks the hashes of (worked out without any hash)."""
    asked: list[tuple[int, int]] = []
    run(lambda lo, hi: asked.append((lo, hi)) or b"")
    return asked


def _perfect_nodes(lo: int, hi: int, out: list[tuple[int, int]]) -> None:
    """The perfect subtrees (height, index) that MTH(D[lo:hi]) is made of, as TiledTree.hash
    splits it."""
    n = hi - lo
    if n & (n - 1) == 0 and lo % n == 0:
        out.append((n.bit_length() - 1, lo // n))
        return
    k = _split(n)
    _perfect_nodes(lo, lo + k, out)
    _perfect_nodes(lo + k, hi, out)
