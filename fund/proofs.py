"""Merkle proofs of apportionments: a settled cycle's leaves, its block roots (cached) and one
apportionment's inclusion proof in the published root (fund/merkle.py, docs/rules.md §6.2)."""

from itertools import batched

from django.core.cache import cache

from fund.merkle import (
    BLOCK,
    block_roots,
    cycle_leaves,
    leaf_hash,
    leaf_text,
    merkle_path_in_blocks,
)
from fund.models import Apportionment, SettlementCycle
from statements.money import format_units


def _cycle_leaf_rows(cycle: SettlementCycle):
    return (
        Apportionment.objects.filter(cycle=cycle)
        .order_by("rank")
        .values_list("rank", "position__position_id", "position__profit_units", "amount_units")
    )


def cycle_apportionment_leaves(*, cycle: SettlementCycle) -> list[bytes]:
    """The Merkle leaves of a settled cycle, recomputed from its apportionments in rank order."""
    return cycle_leaves(
        cycle.fund.asset.code, cycle.id, _cycle_leaf_rows(cycle).iterator(chunk_size=10_000)
    )


def cycle_block_roots(*, cycle: SettlementCycle) -> list[bytes]:
    """The roots of the cycle's blocks of BLOCK leaves (fund/merkle.py). A settled cycle never
    changes, so they are computed once (a second for a million apportionments) and kept in the
    cache under the published root; 32 bytes a block."""
    key = f"merkle-blocks:{BLOCK}:{cycle.id}:{cycle.apportionment_root}"
    try:
        cached = cache.get(key)
    except Exception:  # the cache is an optimisation
        cached = None
    if cached is not None:
        return [cached[i : i + 32] for i in range(0, len(cached), 32)]
    code, rows = cycle.fund.asset.code, _cycle_leaf_rows(cycle).iterator(chunk_size=10 * BLOCK)
    roots = block_roots(
        (leaf for batch in batched(rows, BLOCK) for leaf in cycle_leaves(code, cycle.id, batch)),
        BLOCK,
    )
    try:
        cache.set(key, b"".join(roots), timeout=7 * 86400)
    except Exception:
        pass
    return roots


def apportionment_proof(*, apportionment: Apportionment) -> dict:
    """The inclusion proof of one apportionment in its cycle's published Merkle root, from the
    leaves of its block and the cycle's block roots."""
    cycle, position = apportionment.cycle, apportionment.position
    asset = cycle.fund.asset
    index = apportionment.rank - 1
    first = index - index % BLOCK
    block_rows = _cycle_leaf_rows(cycle).filter(rank__gt=first, rank__lte=first + BLOCK)
    text = leaf_text(
        asset=asset.code,
        cycle_id=cycle.id,
        rank=apportionment.rank,
        position_id=position.position_id,
        profit_units=position.profit_units,
        amount_units=apportionment.amount_units,
    )
    return {
        "format": "insurance-fund-apportionment-proof/1",
        "asset": asset.code,
        "precision": asset.precision,
        "cycle": cycle.id,
        "rank": apportionment.rank,
        "position_id": position.position_id,
        "profit": format_units(position.profit_units, asset.precision),
        "amount": format_units(apportionment.amount_units, asset.precision),
        "profit_units": position.profit_units,
        "amount_units": apportionment.amount_units,
        "participant_count": cycle.participant_count,
        "leaf_text": text,
        "leaf": leaf_hash(text).hex(),
        "path": merkle_path_in_blocks(
            cycle_leaves(asset.code, cycle.id, block_rows),
            index,
            cycle_block_roots(cycle=cycle),
            BLOCK,
        ),
        "root": cycle.apportionment_root,
    }
