"""Merkle proofs of a settled cycle's root (fund/merkle.py, docs/rules.md §6.2): its leaves, its
block roots (cached) and one position's inclusion proof. Form 1: an apportionment among the
participants; form 2: any profitable position, with its salt."""

from itertools import batched

from django.db.models import Q

from fund.cached import cached
from fund.merkle import (
    BLOCK,
    block_roots,
    cycle_leaves,
    leaf_hash,
    leaf_text,
    merkle_path_in_blocks,
    position_commitment,
    position_leaf_text,
    position_leaves,
)
from fund.models import Apportionment, PositionProfit, SettlementCycle
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
    code, rows = cycle.fund.asset.code, _cycle_leaf_rows(cycle).iterator(chunk_size=10 * BLOCK)
    return _cached_block_roots(
        f"merkle-blocks:{BLOCK}:{cycle.id}:{cycle.apportionment_root}",
        lambda: (
            leaf for batch in batched(rows, BLOCK) for leaf in cycle_leaves(code, cycle.id, batch)
        ),
    )


def _cached_block_roots(key: str, leaves) -> list[bytes]:
    """The block roots of the leaves `leaves()` yields in rank order, computed once and kept in
    the cache under `key` (which names the published root): 32 bytes a block."""
    joined = cached(key, lambda: b"".join(block_roots(leaves(), BLOCK)), timeout=7 * 86400)
    return [joined[i : i + 32] for i in range(0, len(joined), 32)]


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


# Form 2: every profitable position of the cycle, through its salted commitment.
POSITION_PROOF_FORMAT = "insurance-fund-position-proof/2"


def _ranked_rows(cycle: SettlementCycle):
    """(position id, profit, salt, apportionment or None) of the cycle's profitable positions,
    in rank order (profit descending, then position id)."""
    return (
        PositionProfit.objects.filter(cycle=cycle, profit_units__gt=0)
        .order_by("-profit_units", "position_id")
        .values_list("position_id", "profit_units", "salt", "apportionment__amount_units")
    )


def _position_leaves(cycle: SettlementCycle, rows, first_rank: int) -> list[bytes]:
    return position_leaves(
        cycle.fund.asset.code,
        cycle.id,
        (
            (
                first_rank + i,
                position_commitment(salt=salt, cycle_id=cycle.id, position_id=position_id),
                profit,
                amount or 0,
            )
            for i, (position_id, profit, salt, amount) in enumerate(rows)
        ),
    )


def cycle_position_block_roots(*, cycle: SettlementCycle) -> list[bytes]:
    """The roots of the form-2 tree's blocks of BLOCK leaves, kept in the cache as for form 1."""
    rows = _ranked_rows(cycle).iterator(chunk_size=10 * BLOCK)
    return _cached_block_roots(
        f"position-blocks:{BLOCK}:{cycle.id}:{cycle.apportionment_root}",
        lambda: (
            leaf
            for n, batch in enumerate(batched(rows, BLOCK))
            for leaf in _position_leaves(cycle, batch, n * BLOCK + 1)
        ),
    )


def position_rank(position: PositionProfit) -> int:
    """The position's rank among its cycle's profitable positions (1 = the largest profit)."""
    ahead = PositionProfit.objects.filter(cycle_id=position.cycle_id).filter(
        Q(profit_units__gt=position.profit_units)
        | Q(profit_units=position.profit_units, position_id__lt=position.position_id)
    )
    return ahead.count() + 1


def position_proof(*, position: PositionProfit) -> dict:
    """The inclusion proof of one profitable position (a participant or not) in its settled
    cycle's root of form 2, with the salt that only its trader receives."""
    cycle = position.cycle
    asset = cycle.fund.asset
    rank = position_rank(position)
    index = rank - 1
    first = index - index % BLOCK
    block = list(_ranked_rows(cycle)[first : first + BLOCK])
    apportionment = getattr(position, "apportionment", None)
    amount = apportionment.amount_units if apportionment is not None else 0
    commitment = position_commitment(
        salt=position.salt, cycle_id=cycle.id, position_id=position.position_id
    )
    text = position_leaf_text(
        asset=asset.code,
        cycle_id=cycle.id,
        rank=rank,
        commitment=commitment,
        profit_units=position.profit_units,
        amount_units=amount,
    )
    return {
        "format": POSITION_PROOF_FORMAT,
        "asset": asset.code,
        "precision": asset.precision,
        "cycle": cycle.id,
        "rank": rank,
        "position_id": position.position_id,
        "salt": bytes(position.salt).hex(),
        "commitment": commitment,
        "profit": format_units(position.profit_units, asset.precision),
        "amount": format_units(amount, asset.precision),
        "profit_units": position.profit_units,
        "amount_units": amount,
        "participant": apportionment is not None,
        "profitable_count": cycle.profitable_count,
        "leaf_text": text,
        "leaf": leaf_hash(text).hex(),
        "path": merkle_path_in_blocks(
            _position_leaves(cycle, block, first + 1),
            index,
            cycle_position_block_roots(cycle=cycle),
            BLOCK,
        ),
        "root": cycle.apportionment_root,
    }
