"""Intake from the trading engine: closed liquidation takeovers and position profits.

Both take batches, all or nothing, exactly once by the engine's ids: an item seen before with
the same content is answered as existing; with different content the whole batch is refused.
"""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any, Sequence

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from fund.errors import ConflictError
from fund.models import Contract, Fund, FundRecord, LiquidationTakeover, PositionProfit, SettlementCycle
from fund.services.cycles import cycle_first_start, cycles_for_takeovers
from fund.services.ledger import Entry, ledger_append
from statements.models import TraderAccount
from statements.money import MAX_UNITS, MoneyError, parse_decimal, to_units

# Engine clocks may run a little ahead of ours; anything later than this is refused.
CLOCK_TOLERANCE = timedelta(seconds=2)
QUANTITY_PLACES, PRICE_PLACES, MAX_DIGITS = 6, 8, 15
MAX_BATCH = 10_000


class BatchTooLarge(Exception):
    """More items than one batch may carry (HTTP 413)."""


def _check_batch(items) -> None:
    if not items:
        raise ValidationError({"items": "Send at least one item."})
    if len(items) > MAX_BATCH:
        raise BatchTooLarge(f"A batch carries at most {MAX_BATCH:,} items; this one has {len(items):,}.")


@dataclass(frozen=True)
class TakeoverInput:
    external_id: str
    contract: str
    side: str
    quantity: Any
    takeover_price: Any
    close_price: Any
    remaining_margin: Any
    taken_over_at: datetime
    closed_at: datetime


@dataclass(frozen=True)
class PositionProfitInput:
    position_id: int
    account: str
    contract: str
    profit: Any


@dataclass(frozen=True)
class Intake:
    """What a batch did: each item's row, and whether it was new (False: it existed already)."""

    rows: list
    created: list[bool]

    @property
    def created_count(self) -> int:
        return sum(self.created)


def engine_result_units(
    *,
    kind: str,
    side: str,
    quantity: Decimal,
    multiplier: Decimal,
    takeover_price: Decimal,
    close_price: Decimal,
    remaining_margin_units: int,
    precision: int,
) -> int:
    """remaining margin + PnL from the takeover price to the close price, in smallest units.

    Linear: qty × multiplier × price move. Inverse: qty × multiplier × (1/takeover − 1/close)
    for a long. The PnL is computed exactly and rounded down (toward −∞), so the fund never
    books more than the engine made.
    """
    size = Fraction(quantity) * Fraction(multiplier)
    if kind == Contract.Kind.LINEAR:
        move = Fraction(close_price) - Fraction(takeover_price)
    else:
        move = 1 / Fraction(takeover_price) - 1 / Fraction(close_price)
    if side == LiquidationTakeover.Side.SHORT:
        move = -move
    return remaining_margin_units + math.floor(size * move * 10**precision)


def _bounded_decimal(value, *, places: int, positive: bool) -> Decimal:
    """A price or quantity: at most `places` decimals and MAX_DIGITS digits in all."""
    number = parse_decimal(value)
    if positive and number <= 0:
        raise MoneyError("must be greater than zero")
    if number and number.adjusted() >= MAX_DIGITS - places:
        raise MoneyError(f"is too large (at most {MAX_DIGITS - places} digits before the point)")
    step = Decimal(1).scaleb(-places)
    if number.as_tuple().exponent < -places:
        if number != number.quantize(step, rounding="ROUND_DOWN"):
            raise MoneyError(f"has more than {places} decimal places")
        number = number.quantize(step)
    return number


def _aware(value, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise MoneyError("must be a date and time")
    if timezone.is_naive(value):
        raise MoneyError("must carry a time zone (for example 2026-11-25T10:00:00Z)")
    return value


def _clean_takeover(item: TakeoverInput, contracts: dict, now: datetime) -> tuple[dict, dict]:
    errors: dict[str, str] = {}
    data: dict[str, Any] = {"external_id": (item.external_id or "").strip()}
    if not data["external_id"] or len(data["external_id"]) > 64:
        errors["external_id"] = "Give the engine's id of the takeover (1 to 64 characters)."
    contract = contracts.get(item.contract)
    if contract is None:
        errors["contract"] = f"Unknown contract {item.contract!r}."
    data["contract"] = contract
    if item.side not in LiquidationTakeover.Side.values:
        errors["side"] = "Must be 'long' or 'short'."
    data["side"] = item.side
    for name, places in (("quantity", QUANTITY_PLACES), ("takeover_price", PRICE_PLACES), ("close_price", PRICE_PLACES)):
        try:
            data[name] = _bounded_decimal(getattr(item, name), places=places, positive=True)
        except MoneyError as exc:
            errors[name] = f"The {name.replace('_', ' ')} {exc}."
    if contract is not None:
        try:
            data["remaining_margin_units"] = to_units(item.remaining_margin, contract.margin_asset.precision)
            if data["remaining_margin_units"] < 0:
                errors["remaining_margin"] = "The remaining margin must not be negative."
        except MoneyError as exc:
            errors["remaining_margin"] = f"The remaining margin {exc}."
    for name in ("taken_over_at", "closed_at"):
        try:
            data[name] = _aware(getattr(item, name), name)
            if data[name] > now + CLOCK_TOLERANCE:
                errors[name] = "Must not be in the future."
        except MoneyError as exc:
            errors[name] = f"The time {exc}."
    if "taken_over_at" in data and "closed_at" in data and data["closed_at"] < data["taken_over_at"]:
        errors["closed_at"] = "The takeover cannot close before it was taken over."
    if not errors:
        data["engine_result_units"] = engine_result_units(
            kind=contract.kind,
            side=data["side"],
            quantity=data["quantity"],
            multiplier=contract.multiplier,
            takeover_price=data["takeover_price"],
            close_price=data["close_price"],
            remaining_margin_units=data["remaining_margin_units"],
            precision=contract.margin_asset.precision,
        )
        if abs(data["engine_result_units"]) > MAX_UNITS:
            errors["quantity"] = "The takeover's result is larger than the system books."
    return data, errors


def _raise_item_errors(errors: dict[int, dict[str, str]], ids: Sequence[str]) -> None:
    if errors:
        raise ValidationError(
            {f"items[{index}].{name}": f"Item {index} ({ids[index]!r}): {message}"
             for index, fields in sorted(errors.items()) for name, message in fields.items()}
        )


def _check_cycle_totals(what: str, cycle_ids, existing, field: str, additions) -> None:
    """A cycle's total loss and total profit must stay within MAX_UNITS, like every figure the
    settlement stores: refuses, naming the item, the one that would cross it."""
    if not additions:
        return
    totals = dict(
        existing.filter(cycle_id__in=cycle_ids).values_list("cycle_id").annotate(total=Sum(field)).values_list("cycle_id", "total")
    )
    totals = {cycle_id: abs(total or 0) for cycle_id, total in totals.items()}
    for index, ident, cycle_id, amount in additions:
        totals[cycle_id] = totals.get(cycle_id, 0) + amount
        if totals[cycle_id] > MAX_UNITS:
            raise ValidationError({f"items[{index}]": f"Item {index} ({ident!r}): the cycle's total {what} would exceed "
                                                      "the largest amount the system books."})


def _lock_funds(asset_ids) -> dict[int, Fund]:
    funds = Fund.objects.select_for_update().select_related("asset").filter(asset_id__in=asset_ids).order_by("id")
    locked = {fund.asset_id: fund for fund in funds}
    missing = set(asset_ids) - set(locked)
    if missing:
        raise ValidationError({"contract": "The contract's margin asset has no insurance fund."})
    return locked


_TAKEOVER_FIELDS = ("side", "quantity", "takeover_price", "close_price", "remaining_margin_units", "taken_over_at", "closed_at")


@transaction.atomic(durable=True)
def liquidations_record(*, items: Sequence[TakeoverInput], now: datetime | None = None) -> Intake:
    """Books closed takeovers: a profit goes to the fund at once, a loss to its cycle."""
    _check_batch(items)
    now = now or timezone.now()
    symbols = {item.contract for item in items}
    contracts = {c.symbol: c for c in Contract.objects.select_related("margin_asset").filter(symbol__in=symbols)}
    cleaned, errors, seen = [], {}, {}
    for index, item in enumerate(items):
        data, item_errors = _clean_takeover(item, contracts, now)
        if data["external_id"] in seen:
            item_errors["external_id"] = f"Repeats item {seen[data['external_id']]} of this batch."
        seen.setdefault(data["external_id"], index)
        if item_errors:
            errors[index] = item_errors
        cleaned.append(data)
    _raise_item_errors(errors, [item.external_id for item in items])

    funds = _lock_funds({data["contract"].margin_asset_id for data in cleaned})
    first_start = {fund.id: cycle_first_start(fund=fund) for fund in funds.values()}
    for index, data in enumerate(cleaned):
        fund = funds[data["contract"].margin_asset_id]
        if data["closed_at"] < first_start[fund.id]:
            errors[index] = {"closed_at": f"{data['closed_at']:%Y-%m-%d %H:%M:%S} UTC is before the fund's first "
                                          f"settlement cycle ({first_start[fund.id]:%Y-%m-%d %H:%M:%S} UTC)."}
    _raise_item_errors(errors, [item.external_id for item in items])
    existing = {
        t.external_id: t
        for t in LiquidationTakeover.objects.filter(external_id__in=list(seen)).select_related("contract")
    }
    rows, created, new = [], [], []
    for index, data in enumerate(cleaned):
        old = existing.get(data["external_id"])
        if old is None:
            new.append((index, data))
            rows.append(None)
            created.append(True)
            continue
        differs = [f for f in _TAKEOVER_FIELDS if getattr(old, f) != data[f]]
        if old.contract_id != data["contract"].id:
            differs.insert(0, "contract")
        if differs:
            raise ConflictError(
                f"Item {index} ({data['external_id']!r}) was booked before with a different {differs[0]}.",
                code="id_reused",
                details={"index": index, "id": data["external_id"], "field": differs[0]},
            )
        rows.append(old)
        created.append(False)

    takeovers = []
    for fund in funds.values():
        mine = [(index, data) for index, data in new if data["contract"].margin_asset_id == fund.asset_id]
        placed = cycles_for_takeovers(fund=fund, closed_at=[data["closed_at"] for _, data in mine])
        for (index, data), (cycle, late) in zip(mine, placed):
            rows[index] = LiquidationTakeover(fund=fund, cycle=cycle, late=late, **data)
            takeovers.append(rows[index])
    index_of = {id(rows[index]): index for index, _ in new}
    takeovers.sort(key=lambda t: t.closed_at)  # the ledger's profit records in time order
    _check_cycle_totals(
        "losses",
        {t.cycle_id for t in takeovers},
        LiquidationTakeover.objects.filter(engine_result_units__lt=0),
        "engine_result_units",
        [(index_of[id(t)], t.external_id, t.cycle_id, -t.engine_result_units) for t in takeovers if t.engine_result_units < 0],
    )
    LiquidationTakeover.objects.bulk_create(takeovers)

    for fund in funds.values():
        entries = [
            Entry(FundRecord.Kind.LIQUIDATION_PROFIT, t.engine_result_units, now, takeover=t, cycle=t.cycle)
            for t in takeovers
            if t.fund_id == fund.id and t.engine_result_units > 0
        ]
        ledger_append(fund=fund, entries=entries)
    return Intake(rows=rows, created=created)


@transaction.atomic(durable=True)
def position_profits_record(
    *, cycle_id: int, items: Sequence[PositionProfitInput], now: datetime | None = None
) -> Intake:
    """Books the engine's position profits for a cycle; accepted until the cycle settles."""
    _check_batch(items)
    try:
        fund_id = SettlementCycle.objects.values_list("fund_id", flat=True).get(pk=cycle_id)
    except SettlementCycle.DoesNotExist:
        raise ValidationError({"cycle": f"There is no settlement cycle {cycle_id}."}) from None
    fund = Fund.objects.select_for_update().select_related("asset").get(pk=fund_id)
    cycle = SettlementCycle.objects.select_for_update().get(pk=cycle_id)
    if not cycle.is_accepting:
        raise ConflictError(
            f"Cycle {cycle.id} is {cycle.get_status_display().lower()}: it takes no more position profits.",
            code="cycle_settled",
        )
    precision = fund.asset.precision
    contracts = {
        c.symbol: c for c in Contract.objects.filter(symbol__in={item.contract for item in items})
    }
    cleaned, errors, seen = [], {}, {}
    for index, item in enumerate(items):
        item_errors: dict[str, str] = {}
        position_id = item.position_id
        if isinstance(position_id, bool) or not isinstance(position_id, int) or not 0 < position_id < 2**63:
            item_errors["position_id"] = "Give the engine's position id, a positive whole number."
        elif position_id in seen:
            item_errors["position_id"] = f"Repeats item {seen[position_id]} of this batch."
        else:
            seen[position_id] = index
        account = (item.account or "").strip() if isinstance(item.account, str) else ""
        if not account or len(account) > 64:
            item_errors["account"] = "Give the engine's account id (1 to 64 characters)."
        contract = contracts.get(item.contract)
        if contract is None:
            item_errors["contract"] = f"Unknown contract {item.contract!r}."
        elif contract.margin_asset_id != fund.asset_id:
            item_errors["contract"] = f"{contract.symbol} is not margined in {fund.asset.code}."
        try:
            profit = to_units(item.profit, precision)
        except MoneyError as exc:
            item_errors["profit"] = f"The profit {exc}."
            profit = None
        if item_errors:
            errors[index] = item_errors
        cleaned.append((position_id, account, contract, profit))
    _raise_item_errors(errors, [item.position_id for item in items])

    accounts = _accounts({account for _, account, _, _ in cleaned})
    existing = {
        p.position_id: p
        for p in PositionProfit.objects.filter(cycle=cycle, position_id__in=list(seen)).select_related("account")
    }
    rows, created, new = [], [], []
    for index, (position_id, account, contract, profit) in enumerate(cleaned):
        old = existing.get(position_id)
        if old is None:
            row = PositionProfit(
                cycle=cycle, position_id=position_id, account=accounts[account], contract=contract, profit_units=profit
            )
            new.append(row)
            rows.append(row)
            created.append(True)
        elif (old.account.external_id, old.contract_id, old.profit_units) != (account, contract.id, profit):
            raise ConflictError(
                f"Item {index} (position {position_id}) was reported before for this cycle with other values.",
                code="id_reused",
                details={"index": index, "id": position_id},
            )
        else:
            rows.append(old)
            created.append(False)
    _check_cycle_totals(
        "profits", {cycle.id}, PositionProfit.objects.filter(profit_units__gt=0), "profit_units",
        [(index, p.position_id, cycle.id, p.profit_units) for index, p in enumerate(rows) if created[index] and p.profit_units > 0],
    )
    PositionProfit.objects.bulk_create(new)
    return Intake(rows=rows, created=created)


def _accounts(external_ids: set[str]) -> dict[str, TraderAccount]:
    """Trader accounts by the engine's id, created on first sight."""
    found = {a.external_id: a for a in TraderAccount.objects.filter(external_id__in=external_ids)}
    missing = external_ids - set(found)
    if missing:
        TraderAccount.objects.bulk_create([TraderAccount(external_id=e) for e in missing], ignore_conflicts=True)
        found.update({a.external_id: a for a in TraderAccount.objects.filter(external_id__in=missing)})
    return found
