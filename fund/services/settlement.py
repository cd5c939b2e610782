"""Settling a cycle: gather its inputs, compute (fund.computation), post all or nothing.

Exactly once: the cycle moves open → closed → settling → settled (or failed, which keeps the
error and can be retried). Posting runs in one transaction under the fund's and the cycle's row
locks and re-checks the status there, so a second or concurrent settle is a no-op and a crash
mid-posting leaves nothing behind.
"""

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from fund.computation import SettlementResult, compute_settlement, fund_share_of
from fund.errors import ConflictError
from fund.merkle import cycle_leaves, merkle_root
from fund.models import AdminAction, Apportionment, Fund, FundRecord, SettlementCycle
from fund.pagecache import books_changed
from fund.services.audit import Audit, admin_action_record
from fund.services.bulk import insert_rows, reserve_ids
from fund.services.ledger import Entry, ledger_append
from statements.models import Statement

logger = logging.getLogger(__name__)
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


def _ranked_positions(cycle: SettlementCycle) -> list[tuple[int, int, int, int]]:
    """(position id, profit, row id, account id) of the cycle's profitable positions, in rank
    order: profit descending, then position id ascending (RULES.md step 3)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT position_id, profit_units, id, account_id FROM fund_positionprofit "
            "WHERE cycle_id = %s AND profit_units > 0 ORDER BY profit_units DESC, position_id ASC",
            [cycle.pk],
        )
        return cursor.fetchall()


def _compute(cycle: SettlementCycle, balance: int, ranked) -> SettlementResult:
    return compute_settlement(
        loss=cycle_loss_units(cycle),
        balance=balance,
        fund_ratio=cycle.fund_ratio,
        screening_ratio=cycle.screening_ratio,
        positions=((row[0], row[1]) for row in ranked),
    )


def settlement_preview(*, cycle_id: int) -> SettlementResult:
    """The result of settling the cycle now, computed by the same function; writes nothing."""
    cycle = SettlementCycle.objects.select_related("fund").get(pk=cycle_id)
    return _compute(cycle, cycle.fund.balance_units, _ranked_positions(cycle))


def settlement_cycle_settle(
    *, cycle_id: int, now: datetime | None = None, ignore_grace: bool = False
) -> SettleOutcome:
    """Settles one cycle once. Returns posted=False when it was settled already."""
    now = now or timezone.now()
    if not _settlement_claim(cycle_id=cycle_id, now=now, ignore_grace=ignore_grace):
        return SettleOutcome(SettlementCycle.objects.get(pk=cycle_id), posted=False)
    try:
        return _settlement_post(cycle_id=cycle_id, now=now)
    except Exception as exc:
        _settlement_fail(cycle_id=cycle_id, error=exc)
        raise


@transaction.atomic(durable=True)
def _settlement_claim(*, cycle_id: int, now: datetime, ignore_grace: bool) -> bool:
    """Moves the cycle to "settling" under the fund's and the cycle's locks (the order intake
    takes them in): once this commits no takeover or position profit enters the cycle any more,
    so its inputs are fixed for the posting."""
    _lock_fund_of(cycle_id)
    cycle = SettlementCycle.objects.select_for_update().get(pk=cycle_id)
    if cycle.status == Status.SETTLED:
        return False
    if cycle.status == Status.OPEN:
        if cycle.ends_at > now:
            raise ValidationError(
                {
                    "cycle": f"Cycle {cycle.id} runs until {cycle.ends_at:%Y-%m-%d %H:%M:%S} UTC; close it first."
                },
                code="cycle_open",
            )
        cycle.closed_at = now
    if (
        cycle.status in (Status.OPEN, Status.CLOSED)
        and cycle.settle_after > now
        and not ignore_grace
    ):
        raise ValidationError(
            {
                "cycle": f"Cycle {cycle.id} is in its grace period until {cycle.settle_after:%Y-%m-%d %H:%M:%S} UTC."
            },
            code="grace_period",
        )
    cycle.status = Status.SETTLING
    cycle.settling_started_at = now
    cycle.attempts += 1
    cycle.error = ""
    cycle.save(update_fields=["status", "closed_at", "settling_started_at", "attempts", "error"])
    books_changed()
    return True


def _lock_fund_of(cycle_id: int) -> Fund:
    """Locks the fund of a cycle (the first lock of every change to a cycle: fund, then cycle)."""
    fund_id = SettlementCycle.objects.filter(pk=cycle_id).values_list("fund_id", flat=True).first()
    if fund_id is None:
        raise ValidationError({"cycle": f"There is no settlement cycle {cycle_id}."})
    return Fund.objects.select_for_update().get(pk=fund_id)


class _BalanceMoved(Exception):
    """The fund's balance changed during the posting in a way that changes the result."""


def _settlement_post(*, cycle_id: int, now: datetime) -> SettleOutcome:
    """Posts the settlement in one transaction. The long part (a statement and an apportionment per
    participant) runs without the fund's lock, so that the engine's intake into the fund's other
    cycles goes on meanwhile; the fund is locked for the end only: the coverage record and the
    cycle's figures. The result depends on the balance only through F = min(L × ratio, B) and the
    backstop; should a deposit, withdrawal or liquidation profit in the meantime change either,
    the posting is rolled back and done again with the fund locked throughout."""
    try:
        return _settlement_post_once(cycle_id=cycle_id, now=now, lock_fund_first=False)
    except _BalanceMoved:
        logger.info(
            "cycle %s: the fund's balance moved during posting; posting again under the fund's lock",
            cycle_id,
        )
        return _settlement_post_once(cycle_id=cycle_id, now=now, lock_fund_first=True)


@transaction.atomic(durable=True)
def _settlement_post_once(*, cycle_id: int, now: datetime, lock_fund_first: bool) -> SettleOutcome:
    # Locks in one order everywhere: this cycle's posting (advisory), then the fund, then the cycle.
    _exclusive(
        cycle_id
    )  # one posting of a cycle at a time, without holding a row lock intake waits for
    fund_id = SettlementCycle.objects.values_list("fund_id", flat=True).get(pk=cycle_id)
    if lock_fund_first:
        fund = Fund.objects.select_for_update().select_related("asset").get(pk=fund_id)
    cycle = SettlementCycle.objects.get(pk=cycle_id)
    if cycle.status != Status.SETTLING:
        return SettleOutcome(cycle, posted=False)
    if not lock_fund_first:
        fund = Fund.objects.select_related("asset").get(pk=fund_id)

    ranked = _ranked_positions(cycle)  # fixed since the claim: the cycle takes no more input
    result = _compute(cycle, fund.balance_units, ranked)
    _post_apportionments(cycle=cycle, fund=fund, result=result, ranked=ranked, now=now)
    amounts = result.amounts
    root = merkle_root(
        cycle_leaves(
            fund.asset.code,
            cycle.id,
            ((i + 1, ranked[i][0], ranked[i][1], amounts[i]) for i in range(len(amounts))),
        )
    )

    if not lock_fund_first:
        fund = Fund.objects.select_for_update().select_related("asset").get(pk=fund_id)
        result = _with_balance(result, fund.balance_units, cycle.fund_ratio)
    cycle = SettlementCycle.objects.select_for_update().get(pk=cycle_id)
    if cycle.status != Status.SETTLING:  # only a failure recorded around _exclusive could do it
        raise ConflictError(
            f"Cycle {cycle_id} changed status during its posting.", code="cycle_settled"
        )
    if result.fund_total:
        ledger_append(
            fund=fund,
            entries=[
                Entry(
                    FundRecord.Kind.SETTLEMENT_COVERAGE, -result.fund_total, now, cycle_id=cycle.id
                )
            ],
        )
    cycle.apportionment_root = root
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
    books_changed()
    logger.info(
        "settled cycle %s: L=%s F=%s U=%s participants=%s uncovered=%s",
        cycle.id,
        result.loss,
        result.fund_share,
        result.users_share,
        len(result.participants),
        result.uncovered,
    )
    return SettleOutcome(cycle, posted=True, result=result)


def _exclusive(cycle_id: int) -> None:
    """A transaction-scoped lock on posting this cycle (PostgreSQL advisory lock; SQLite lets one
    writer in at a time anyway). A second posting waits here, then finds the cycle settled."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [ADVISORY_SETTLE, cycle_id])


ADVISORY_SETTLE = 7_117_001  # the first key of the settlement's advisory locks


def _with_balance(result: SettlementResult, balance: int, fund_ratio) -> SettlementResult:
    """The result for the balance read under the fund's lock: the same figures when the balance
    moved in a way that changes neither F nor the backstop; otherwise _BalanceMoved."""
    if balance == result.balance:
        return result
    fund_share = fund_share_of(loss=result.loss, balance=balance, fund_ratio=fund_ratio)
    rest = result.users_share - result.apportioned
    if fund_share != result.fund_share or min(rest, balance - fund_share) != result.backstop:
        raise _BalanceMoved
    return replace(result, balance=balance)


def _post_apportionments(*, cycle, fund, result: SettlementResult, ranked, now: datetime) -> None:
    """One statement and one apportionment per participant, written set-based."""
    count = len(result.participants)
    if not count:
        return
    # The database ranks exactly as compute_settlement does, so row i is participant i.
    assert (
        ranked[count - 1][0] == result.participants[-1] and ranked[0][0] == result.participants[0]
    )
    statement_ids = reserve_ids(Statement, count)
    description = (
        f"Loss apportionment, {fund.asset.code} cycle {cycle.starts_at:%Y-%m-%d %H:%M} UTC"
    )
    created_at = now
    insert_rows(
        Statement,
        ["id", "account_id", "asset_id", "type", "amount_units", "description", "created_at"],
        (
            (
                statement_ids[i],
                ranked[i][3],
                fund.asset_id,
                Statement.Type.APPORTIONMENT,
                -result.amounts[i],
                description,
                created_at,
            )
            for i in range(count)
        ),
    )
    insert_rows(
        Apportionment,
        ["cycle_id", "position_id", "statement_id", "rank", "amount_units", "rounding_unit"],
        (
            (
                cycle.id,
                ranked[i][2],
                statement_ids[i],
                i + 1,
                result.amounts[i],
                result.rounding_units[i],
            )
            for i in range(count)
        ),
    )


def _settlement_fail(*, cycle_id: int, error: Exception) -> None:
    """Marks the cycle failed with its error, so that it shows up for a retry."""
    try:
        with transaction.atomic(durable=True):
            _exclusive(cycle_id)  # after a concurrent healthy posting, which leaves it settled
            updated = SettlementCycle.objects.filter(pk=cycle_id, status=Status.SETTLING).update(
                status=Status.FAILED, error=f"{type(error).__name__}: {error}"[:4000]
            )
            books_changed()
    except Exception:  # the database itself may be what failed; the beat retries stale cycles
        logger.exception("could not record the failure of cycle %s", cycle_id)
        return
    if updated:
        logger.error("settling cycle %s failed: %s", cycle_id, error)


@transaction.atomic(durable=True)
def settlement_cycle_close_now(
    *, cycle_id: int, audit: Audit, now: datetime | None = None
) -> SettlementCycle:
    """An admin's "settle now": an open cycle ends now and the next cycle takes the rest of its
    period (the schedule keeps its grid); a closed or failed cycle is taken as it is. The
    settlement itself runs afterwards (settle_cycle with ignore_grace), once this has committed.
    """
    now = now or timezone.now()
    fund = _lock_fund_of(cycle_id)
    cycle = SettlementCycle.objects.select_for_update().get(pk=cycle_id)
    if cycle.status in (Status.SETTLING, Status.SETTLED):
        raise ConflictError(
            f"Cycle {cycle.id} is {cycle.get_status_display().lower()} already.",
            code="cycle_settled",
        )
    details = {"status_before": cycle.status, "ends_at_before": cycle.ends_at.isoformat()}
    if cycle.status == Status.OPEN:
        if cycle.starts_at >= now:
            raise ValidationError({"cycle": f"Cycle {cycle.id} has not started yet."})
        # Takeovers may close up to a second or two ahead of this clock: the cycle keeps them.
        latest = cycle.takeovers.order_by("-closed_at").values_list("closed_at", flat=True).first()
        if latest is not None and latest >= now:
            now = latest + timedelta(microseconds=1)
        if cycle.ends_at > now:
            rest_ends_at = cycle.ends_at
            cycle.ends_at = now
            cycle.save(update_fields=["ends_at"])
            SettlementCycle.objects.create(
                fund=fund,
                starts_at=now,
                ends_at=rest_ends_at,
                grace_seconds=fund.grace_seconds,
                fund_ratio=fund.fund_ratio,
                screening_ratio=fund.screening_ratio,
            )
            details["closed_early"] = True
        cycle.status = Status.CLOSED
        cycle.closed_at = now
        cycle.save(update_fields=["status", "closed_at"])
    admin_action_record(
        audit=audit, action=AdminAction.Action.SETTLE, fund=fund, cycle=cycle, details=details
    )
    books_changed()
    return cycle
