"""The posting: a settled cycle's statements, apportionments, coverage record and figures, in
one transaction (docs/rules.md §2 step 8).

The long part (a statement and an apportionment per participant) runs without the fund's lock,
so that the engine's intake into the fund's next cycle goes on meanwhile; the fund is locked for
the end only: the coverage record and the cycle's figures. The balance enters the result only
through F and the backstop (computation.settlement_at_balance): should a deposit, withdrawal or
liquidation profit in the meantime change either, the posting rolls back and is done again
with the fund locked throughout.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import Sum

from fund.computation import SettlementResult, compute_settlement, settlement_at_balance
from fund.errors import ConflictError
from fund.merkle import position_commitment, position_leaf
from fund.models import Apportionment, Event, Fund, FundRecord, SettlementCycle
from fund.pagecache import books_changed
from fund.services.bulk import insert_rows, reserve_ids
from fund.services.ledger import Entry, ledger_append
from fund.services.locks import (
    books_transaction,
    lock_cycle,
    lock_cycle_posting,
    lock_fund_by_id,
)
from fund.services.outbox import cycle_event_data, event_emit
from fund.tlog import RootBuilder
from statements.models import Statement

logger = logging.getLogger("fund.services.settlement")
Status = SettlementCycle.Status


@dataclass(frozen=True)
class SettleOutcome:
    cycle: SettlementCycle
    posted: bool
    result: SettlementResult | None = None


def cycle_loss_units(cycle: SettlementCycle) -> int:
    """L: the sum of the cycle's system losses, as a positive amount."""
    total = cycle.takeovers.filter(engine_result_units__lt=0).aggregate(
        total=Sum("engine_result_units")
    )["total"]
    return -(total or 0)


def ranked_positions(cycle: SettlementCycle) -> list[tuple[int, int, int, int, bytes]]:
    """(position id, profit, row id, account id, salt) of the cycle's profitable positions, in
    rank order: profit descending, then position id ascending (docs/rules.md §2 step 3)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT position_id, profit_units, id, account_id, salt FROM fund_positionprofit "
            "WHERE cycle_id = %s AND profit_units > 0 ORDER BY profit_units DESC, position_id ASC",
            [cycle.pk],
        )
        return cursor.fetchall()


def settlement_compute(cycle: SettlementCycle, balance: int, ranked) -> SettlementResult:
    """The cycle's settlement at this balance, from its ranked positions."""
    return compute_settlement(
        loss=cycle_loss_units(cycle),
        balance=balance,
        fund_ratio=cycle.fund_ratio,
        screening_ratio=cycle.screening_ratio,
        positions=((row[0], row[1]) for row in ranked),
    )


class _BalanceMoved(Exception):
    """The fund's balance changed during the posting in a way that changes the result."""


def settlement_post(*, cycle_id: int, now: datetime) -> SettleOutcome:
    """Posts a claimed cycle's settlement; posted=False when another posting did it first."""
    try:
        return _post_without_fund_lock(cycle_id=cycle_id, now=now)
    except _BalanceMoved:
        logger.info(
            "cycle %s: the fund's balance moved during posting; "
            "posting again under the fund's lock",
            cycle_id,
        )
        return _post_under_fund_lock(cycle_id=cycle_id, now=now)


@books_transaction
def _post_without_fund_lock(*, cycle_id: int, now: datetime) -> SettleOutcome:
    """Writes the apportionments with the balance read unlocked, then locks the fund and keeps
    the result only if the balance it finds gives the same settlement."""
    lock_cycle_posting(cycle_id=cycle_id)
    cycle = SettlementCycle.objects.select_related("fund__asset").get(pk=cycle_id)
    if cycle.status != Status.SETTLING:
        return SettleOutcome(cycle, posted=False)
    ranked = ranked_positions(cycle)  # fixed since the claim: the cycle takes no more input
    result = settlement_compute(cycle, cycle.fund.balance_units, ranked)
    root = _post_apportionments(cycle=cycle, fund=cycle.fund, result=result, ranked=ranked, now=now)
    fund = lock_fund_by_id(fund_id=cycle.fund_id)
    kept = settlement_at_balance(result, balance=fund.balance_units, fund_ratio=cycle.fund_ratio)
    if kept is None:
        raise _BalanceMoved
    return _post_figures(cycle_id=cycle_id, fund=fund, result=kept, root=root, now=now)


@books_transaction
def _post_under_fund_lock(*, cycle_id: int, now: datetime) -> SettleOutcome:
    """The whole posting with the fund locked from the start (after a balance move)."""
    lock_cycle_posting(cycle_id=cycle_id)
    fund_id = SettlementCycle.objects.values_list("fund_id", flat=True).get(pk=cycle_id)
    fund = lock_fund_by_id(fund_id=fund_id)
    cycle = SettlementCycle.objects.get(pk=cycle_id)
    if cycle.status != Status.SETTLING:
        return SettleOutcome(cycle, posted=False)
    ranked = ranked_positions(cycle)
    result = settlement_compute(cycle, fund.balance_units, ranked)
    root = _post_apportionments(cycle=cycle, fund=fund, result=result, ranked=ranked, now=now)
    return _post_figures(cycle_id=cycle_id, fund=fund, result=result, root=root, now=now)


def _post_apportionments(*, cycle, fund: Fund, result: SettlementResult, ranked, now) -> str:
    """One statement and one apportionment per participant, written set-based; returns the
    Merkle root over them (fund/merkle.py)."""
    count = len(result.participants)
    amounts = result.amounts
    if count:
        # The database ranks exactly as compute_settlement does, so row i is participant i.
        assert ranked[count - 1][0] == result.participants[-1]
        assert ranked[0][0] == result.participants[0]
        statement_ids = reserve_ids(Statement, count)
        description = (
            f"Loss apportionment, {fund.asset.code} cycle {cycle.starts_at:%Y-%m-%d %H:%M} UTC"
        )
        insert_rows(
            Statement,
            ["id", "account_id", "asset_id", "type", "amount_units", "description", "created_at"],
            (
                (statement_ids[i], ranked[i][3], fund.asset_id, Statement.Type.APPORTIONMENT,
                 -amounts[i], description, now)
                for i in range(count)
            ),
        )  # fmt: skip
        insert_rows(
            Apportionment,
            ["cycle_id", "position_id", "statement_id", "rank", "amount_units", "rounding_unit"],
            (
                (cycle.id, ranked[i][2], statement_ids[i], i + 1, amounts[i],
                 result.rounding_units[i])
                for i in range(count)
            ),
        )  # fmt: skip
    return cycle_root(fund.asset.code, cycle.id, ranked, amounts)


def cycle_root(asset: str, cycle_id: int, ranked, amounts: list[int]) -> str:
    """The cycle's Merkle root of form 2 (fund/merkle.py): every ranked position through its
    salted commitment, with its apportionment (0 below the threshold). Built leaf by leaf: a
    million positions need no list of their leaves."""
    count, tree = len(amounts), RootBuilder()
    for i, (position_id, profit, _, _, salt) in enumerate(ranked):
        if salt is None:
            raise ValueError(f"position {position_id} of cycle {cycle_id} has no salt")
        commitment = position_commitment(salt=salt, cycle_id=cycle_id, position_id=position_id)
        amount = amounts[i] if i < count else 0
        tree.append(position_leaf(asset, cycle_id, i + 1, commitment, profit, amount))
    return tree.root().hex() if tree.count else ""


def _post_figures(*, cycle_id: int, fund: Fund, result: SettlementResult, root, now):
    """The end of a posting, the fund locked: the coverage record and the cycle's figures."""
    cycle = lock_cycle(cycle_id=cycle_id)
    if cycle.status != Status.SETTLING:  # only a failure recorded around the posting lock
        raise ConflictError(
            f"Cycle {cycle_id} changed status during its posting.", code="cycle_settled"
        )
    # B is the balance after the fund's newest record, under the fund's lock: published with the
    # cycle, so anyone can find B in the hash-chained ledger (docs/check_ledger.py --cycle).
    cycle.balance_seq = (
        FundRecord.objects.filter(fund=fund).order_by("-seq").values_list("seq", flat=True).first()
        or 0
    )
    if result.fund_total:
        coverage = Entry(
            FundRecord.Kind.SETTLEMENT_COVERAGE, -result.fund_total, now, cycle_id=cycle.id
        )
        ledger_append(fund=fund, entries=[coverage])
    cycle.apportionment_root = root
    cycle.root_format = 2
    cycle.status = Status.SETTLED
    cycle.settled_at = now
    cycle.loss_units = result.loss
    cycle.balance_before_units = result.balance
    cycle.fund_share_units = result.fund_share
    cycle.users_share_units = result.users_share
    cycle.total_profit_units = result.total_profit
    cycle.participants_profit_units = result.participants_profit
    cycle.threshold_profit_units = result.threshold_profit
    cycle.apportioned_units = result.apportioned
    cycle.backstop_units = result.backstop
    cycle.uncovered_units = result.uncovered
    cycle.profitable_count = result.profitable_count
    cycle.participant_count = len(result.participants)
    cycle.save()
    units = fund.asset.format
    event_emit(
        Event.Kind.CYCLE_SETTLED,
        fund=fund,
        cycle=cycle,
        data={
            **cycle_event_data(cycle),
            "loss": units(result.loss),
            "fund_share": units(result.fund_share),
            "users_share": units(result.users_share),
            "apportioned": units(result.apportioned),
            "backstop": units(result.backstop),
            "uncovered": units(result.uncovered),
            "participant_count": len(result.participants),
            "profitable_count": result.profitable_count,
            "apportionment_root": root,
            "root_format": cycle.root_format,
        },
    )
    books_changed()
    logger.info(
        "settled cycle %s: L=%s F=%s U=%s participants=%s uncovered=%s",
        cycle.id, result.loss, result.fund_share, result.users_share,
        len(result.participants), result.uncovered,
    )  # fmt: skip
    return SettleOutcome(cycle, posted=True, result=result)
