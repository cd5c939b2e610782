"""The fund ledger: appending records, deposits and withdrawals."""

from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import F
from django.utils import timezone

from fund.chain import GENESIS, chain_next, record_entry
from fund.models import AdminAction, Event, Fund, FundBalanceHour, FundKindTotal, FundRecord
from fund.pagecache import books_changed
from fund.services.audit import Audit, admin_action_record
from fund.services.bulk import insert_rows, reserve_ids
from fund.services.locks import books_transaction, lock_fund, lock_fund_by_id
from fund.services.outbox import event_emit
from fund.services.transparency import log_append
from fund.tlog import leaf_hash
from statements.money import MAX_UNITS, MoneyError, to_units


@dataclass(frozen=True)
class Entry:
    kind: str
    amount_units: int
    created_at: datetime
    takeover_id: int | None = None
    cycle_id: int | None = None
    reason: str = ""
    actor_id: int | None = None
    corrects_id: int | None = None
    takeover_external_id: str = ""


@dataclass(frozen=True)
class Posted:
    """A record as appended: enough to fold it into the running aggregates."""

    id: int
    kind: str
    amount_units: int
    balance_after_units: int
    created_at: datetime


MAX_REASON = 2000  # characters: the API's and the console's limit too
RECORD_COLUMNS = [
    "id",
    "fund_id",
    "seq",
    "kind",
    "amount_units",
    "balance_after_units",
    "created_at",
    "takeover_id",
    "cycle_id",
    "corrects_id",
    "reason",
    "actor_id",
    "hash",
]


def ledger_append(*, fund: Fund, entries: list[Entry]) -> list[int]:
    """Appends records to a fund's ledger and moves its balance; the fund row must be locked.
    Returns the new records' ids. Written set-based: a batch of ten thousand liquidation
    profits is one COPY, not ten thousand saves.

    The balance never goes below zero nor above MAX_UNITS: a record that would break either
    raises ValidationError before anything is written.
    """
    assert connection.in_atomic_block, "ledger_append must run inside the caller's transaction"
    if not entries:
        return []
    last = (
        FundRecord.objects.filter(fund=fund)
        .order_by("-seq")
        .values_list("seq", "created_at", "hash")
        .first()
    )
    last_seq, not_before, head = last or (0, None, GENESIS)
    balance = fund.balance_units
    if any(len(entry.reason) > MAX_REASON for entry in entries):
        # A record's entry stays within what a tlog entry bundle can carry (2**16 − 1 bytes).
        raise ValidationError(
            {"reason": f"Give a reason of at most {MAX_REASON} characters."}, code="max_length"
        )
    ids = reserve_ids(FundRecord, len(entries))
    rows, posted, leaves = [], [], []
    for offset, (record_id, entry) in enumerate(zip(ids, entries), start=1):
        # Records are in time order: a record is never dated before the one it follows (clocks
        # of two app servers may differ by a little).
        created_at = entry.created_at if not_before is None else max(entry.created_at, not_before)
        not_before = created_at
        balance += entry.amount_units
        if balance < 0:
            raise ValidationError(
                {
                    "amount": f"The fund holds {fund.asset.format(balance - entry.amount_units)} "
                    f"{fund.asset.code}; it cannot go below zero."
                },
                code="insufficient_balance",
            )
        if balance > MAX_UNITS:
            raise ValidationError(
                {"amount": "The fund's balance would exceed the largest amount the system books."}
            )
        entry_bytes = record_entry(
            asset=fund.asset.code,
            precision=fund.asset.precision,
            seq=last_seq + offset,
            kind=entry.kind,
            amount_units=entry.amount_units,
            balance_after_units=balance,
            created_at=created_at,
            takeover=entry.takeover_external_id,
            cycle_id=entry.cycle_id,
            corrects_id=entry.corrects_id,
            reason=entry.reason,
        )
        head = chain_next(head, entry_bytes)
        leaves.append(leaf_hash(entry_bytes))
        rows.append(
            (
                record_id,
                fund.id,
                last_seq + offset,
                entry.kind,
                entry.amount_units,
                balance,
                created_at,
                entry.takeover_id,
                entry.cycle_id,
                entry.corrects_id,
                entry.reason,
                entry.actor_id,
                head,
            )
        )
        posted.append(Posted(record_id, entry.kind, entry.amount_units, balance, created_at))
    insert_rows(FundRecord, RECORD_COLUMNS, rows)
    log_append(fund=fund, size=last_seq, leaves=leaves)  # the fund's transparency log
    _balance_hours_add(fund=fund, records=posted, balance_before=fund.balance_units)
    _kind_totals_add(fund=fund, records=posted)
    fund.balance_units, fund.head_hash = balance, head
    Fund.objects.filter(pk=fund.pk).update(
        balance_units=balance, head_hash=head, updated_at=timezone.now()
    )
    event_emit(
        Event.Kind.RECORDS_APPENDED,
        fund=fund,
        data={
            "asset": fund.asset.code,
            "first_seq": last_seq + 1,
            "last_seq": last_seq + len(entries),
            "count": len(entries),
            "balance": fund.asset.format(balance),
            "head": head,
        },
    )
    books_changed()
    return ids


def _balance_hours_add(*, fund: Fund, records: list[Posted], balance_before: int) -> None:
    """Folds new records into the fund's hourly balance rows (records come in time order, so
    only the newest existing hour can need an update)."""
    hours: dict = {}
    balance = balance_before
    for record in records:
        hour = record.created_at.replace(minute=0, second=0, microsecond=0)
        row = hours.get(hour)
        if row is None:
            row = hours[hour] = FundBalanceHour(
                fund=fund,
                hour=hour,
                open_units=balance,
                close_units=balance,
                low_units=balance,
                high_units=balance,
            )
        balance = record.balance_after_units
        row.close_units = balance
        row.low_units, row.high_units = min(row.low_units, balance), max(row.high_units, balance)
        if record.amount_units > 0:
            row.inflow_units += record.amount_units
        else:
            row.outflow_units -= record.amount_units
        row.records += 1
    first_hour = min(hours)
    existing = FundBalanceHour.objects.filter(fund=fund, hour=first_hour).first()
    if existing is not None:
        new = hours.pop(first_hour)
        existing.close_units = new.close_units
        existing.low_units = min(existing.low_units, new.low_units)
        existing.high_units = max(existing.high_units, new.high_units)
        existing.inflow_units += new.inflow_units
        existing.outflow_units += new.outflow_units
        existing.records += new.records
        existing.save()
    FundBalanceHour.objects.bulk_create(hours.values())


def _kind_totals_add(*, fund: Fund, records: list[Posted]) -> None:
    sums: dict[str, list[int]] = {}
    for record in records:
        total = sums.setdefault(record.kind, [0, 0])
        total[0] += record.amount_units
        total[1] += 1
    for kind, (amount, count) in sums.items():
        updated = FundKindTotal.objects.filter(fund=fund, kind=kind).update(
            total_units=F("total_units") + amount, records=F("records") + count
        )
        if not updated:
            FundKindTotal.objects.create(fund=fund, kind=kind, total_units=amount, records=count)


def manual_amount_and_reason(fund: Fund, amount, reason: str, *, signed: bool) -> tuple[int, dict]:
    """A manual record's amount in units (positive, or with `signed` any but zero) and the
    field errors of the amount and the written reason."""
    errors = {}
    try:
        units = to_units(amount, fund.asset.precision)
        if signed and units == 0:
            errors["amount"] = "Enter an amount other than zero."
        elif not signed and units <= 0:
            errors["amount"] = "Enter an amount greater than zero."
    except MoneyError as exc:
        errors["amount"] = f"The amount {exc}."
        units = 0
    if not (reason or "").strip():
        errors["reason"] = "Give a written reason; it is published with the record."
    return units, errors


def correction_errors(*, record: FundRecord, units: int) -> dict:
    """Why `units` cannot correct `record` (field errors, empty when it can): a correction or a
    settlement's coverage is never corrected, and a record with its corrections stays on its own
    side of zero."""
    fund = record.fund
    if record.kind == FundRecord.Kind.CORRECTION:
        return {
            "record": f"#{record.seq} is itself a correction: correct the original record "
            f"#{record.corrects.seq} instead."
        }
    if record.kind not in CORRECTABLE:
        return {
            "record": f"#{record.seq} is a settlement's coverage: it follows from the cycle's "
            "published figures and is not corrected by hand."
        }
    net = record.amount_units + sum(record.corrections.values_list("amount_units", flat=True))
    after = net + units
    if units and after != 0 and (after > 0) != (record.amount_units > 0):
        return {
            "amount": f"#{record.seq} and its corrections would come to "
            f"{fund.asset.format(after)} {fund.asset.code}: a correction does not turn a "
            f"{record.get_kind_display().lower()} into its opposite (the limit here is "
            f"{fund.asset.format(-net)})."
        }
    return {}


@books_transaction
def fund_deposit(
    *, asset_code: str, amount, reason: str, actor=None, now=None, audit: Audit | None = None
) -> FundRecord:
    """The exchange adds money to a fund; the reason is published with the record."""
    return _manual_move(FundRecord.Kind.DEPOSIT, asset_code, amount, reason, actor, now, audit)


@books_transaction
def fund_withdraw(
    *, asset_code: str, amount, reason: str, actor=None, now=None, audit: Audit | None = None
) -> FundRecord:
    """The exchange takes money out of a fund, never below zero; the reason is published."""
    return _manual_move(FundRecord.Kind.WITHDRAWAL, asset_code, amount, reason, actor, now, audit)


def _manual_move(kind, asset_code, amount, reason, actor, now, audit) -> FundRecord:
    fund = lock_fund(asset_code=asset_code)
    units, errors = manual_amount_and_reason(fund, amount, reason, signed=False)
    if errors:
        raise ValidationError(errors)
    actor = audit.actor if audit else actor
    signed = units if kind == FundRecord.Kind.DEPOSIT else -units
    entry = Entry(
        kind,
        signed,
        now or timezone.now(),
        reason=reason.strip(),
        actor_id=getattr(actor, "pk", None),
    )
    record = FundRecord.objects.get(pk=ledger_append(fund=fund, entries=[entry])[0])
    if audit:
        action = (
            AdminAction.Action.DEPOSIT
            if kind == FundRecord.Kind.DEPOSIT
            else AdminAction.Action.WITHDRAW
        )
        admin_action_record(
            audit=audit,
            action=action,
            fund=fund,
            record=record,
            details={"amount": fund.asset.format(units), "reason": entry.reason},
        )
    return record


CORRECTABLE = (
    FundRecord.Kind.DEPOSIT,
    FundRecord.Kind.WITHDRAWAL,
    FundRecord.Kind.LIQUIDATION_PROFIT,
)


@books_transaction
def fund_record_correct(
    *, record_id: int, amount, reason: str, audit: Audit, now=None
) -> FundRecord:
    """Corrects a record with a new one of kind "correction" that references it; the original
    stays as it is (docs/rules.md §4). `amount` is signed: what the correction adds to the fund.
    Deposits, withdrawals and liquidation profits can be corrected, never a settlement's
    coverage (it follows from its cycle's figures) nor a correction (correct the original
    again); the original and its corrections together stay on the original's side of zero, and
    the fund never goes below zero. Audited."""
    fund_id = FundRecord.objects.filter(pk=record_id).values_list("fund_id", flat=True).first()
    if fund_id is None:
        raise ValidationError({"record": f"There is no fund record {record_id}."})
    fund = lock_fund_by_id(fund_id=fund_id)
    record = FundRecord.objects.get(pk=record_id)
    units, errors = manual_amount_and_reason(fund, amount, reason, signed=True)
    errors = {**errors, **correction_errors(record=record, units=units)}
    if errors:
        raise ValidationError(errors)
    entry = Entry(
        FundRecord.Kind.CORRECTION,
        units,
        now or timezone.now(),
        reason=reason.strip(),
        actor_id=audit.actor.pk,
        corrects_id=record.id,
    )
    correction = FundRecord.objects.get(pk=ledger_append(fund=fund, entries=[entry])[0])
    event_emit(
        Event.Kind.RECORD_CORRECTED,
        fund=fund,
        data={
            "asset": fund.asset.code,
            "seq": correction.seq,
            "corrects_seq": record.seq,
            "amount": fund.asset.format(units),
        },
    )
    admin_action_record(
        audit=audit,
        action=AdminAction.Action.CORRECT,
        fund=fund,
        record=correction,
        details={
            "corrects": record.seq,
            "amount": fund.asset.format(units),
            "reason": entry.reason,
        },
    )
    return correction
