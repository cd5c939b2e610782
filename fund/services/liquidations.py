"""Intake from the trading engine: closed liquidation takeovers and position profits.

Both take batches, all or nothing, exactly once by the engine's ids: an item seen before with
the same content is answered as existing; with different content the whole batch is refused.
"""

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from fund.errors import ConflictError
from fund.merkle import SALT_BYTES
from fund.models import (
    Contract,
    FundRecord,
    LiquidationTakeover,
    PositionProfit,
)
from fund.services.bulk import insert_rows, reserve_ids
from fund.services.cycles import cycle_first_start, cycles_for_takeovers
from fund.services.ledger import Entry, ledger_append
from fund.services.locks import books_transaction, lock_cycle, lock_fund_of_cycle, lock_funds
from statements.models import TraderAccount
from statements.money import MAX_UNITS, MoneyError, parse_decimal, to_units

# Engine clocks may run a little ahead of ours; anything later than this is refused.
CLOCK_TOLERANCE = timedelta(seconds=2)
QUANTITY_PLACES, PRICE_PLACES, MAX_DIGITS = 6, 8, 15
MAX_BATCH = 10_000
# The most items whose errors one answer lists; the others are counted (bounded answers).
MAX_ITEM_ERRORS = 100
# The engine's ids in their one canonical form: stored and echoed exactly as sent, so an id
# never has two spellings (no spaces around it, no control or non-ASCII characters).
IDENTIFIER = re.compile(r"[!-~]{1,64}")
IDENTIFIER_FORM = "1 to 64 printable ASCII characters, no spaces"


def is_identifier(value) -> bool:
    return isinstance(value, str) and IDENTIFIER.fullmatch(value) is not None


def batch_check(items) -> None:
    """A batch's size, checked before any of its items is looked at."""
    if not items:
        raise ValidationError({"items": "Send at least one item."})
    if len(items) > MAX_BATCH:
        raise ValidationError(
            {"items": f"A batch carries at most {MAX_BATCH:,} items; this one has {len(items):,}."}
        )


@dataclass(slots=True)
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


@dataclass(slots=True)
class PositionProfitInput:
    position_id: int
    account: str
    contract: str
    profit: Any


@dataclass(frozen=True)
class Intake:
    """What a batch did: each item's row id, and whether it was new (False: it existed)."""

    model: type
    ids: list[int]
    created: list[bool]

    @property
    def created_count(self) -> int:
        return sum(self.created)

    @property
    def rows(self) -> list:
        """The items' rows, loaded on demand (the API answers from ids and flags alone)."""
        found = self.model.objects.in_bulk(self.ids)
        return [found[i] for i in self.ids]


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
    for a long. The PnL is computed exactly (in integers) and rounded down, toward −∞, so the
    fund never books more than the engine made.
    """
    size_num, size_den = _ratio(quantity * multiplier)
    t_num, t_den = _ratio(takeover_price)
    c_num, c_den = _ratio(close_price)
    if kind == Contract.Kind.LINEAR:  # size × (c − t)
        num = size_num * (c_num * t_den - t_num * c_den)
        den = size_den * c_den * t_den
    else:  # size × (1/t − 1/c) = size × (c − t) / (t × c)
        num = size_num * (c_num * t_den - t_num * c_den)
        den = size_den * t_num * c_num
    if side == LiquidationTakeover.Side.SHORT:
        num = -num
    return remaining_margin_units + (num * 10**precision) // den


def _ratio(value: Decimal) -> tuple[int, int]:
    return value.as_integer_ratio()  # exact


def _bounded_decimal(value, *, places: int, positive: bool) -> Decimal:
    """A price or quantity: at most `places` decimals and MAX_DIGITS digits in all."""
    parts = _UNSIGNED_PARTS.fullmatch(value) if type(value) is str else None
    if parts is not None:  # plain text: its digits counted as written (the usual case)
        whole, fraction = parts.groups()
        if (
            len(whole.lstrip("0")) <= MAX_DIGITS - places
            and len((fraction or "").rstrip("0")) <= places
        ):
            number = Decimal(value)
            if positive and not number:
                raise MoneyError("must be greater than zero")
            return number
    number = parse_decimal(value)
    if positive and number <= 0:
        raise MoneyError("must be greater than zero")
    if number and number.adjusted() >= MAX_DIGITS - places:
        raise MoneyError(f"is too large (at most {MAX_DIGITS - places} digits before the point)")
    exact = number.quantize(_STEPS[places], rounding=ROUND_DOWN)  # within 28 digits: checked above
    if exact != number:
        raise MoneyError(f"has more than {places} decimal places")
    return exact


_UNSIGNED_PARTS = re.compile(r"([0-9]{1,40})(?:\.([0-9]{1,40}))?")
_STEPS = {places: Decimal(1).scaleb(-places) for places in (QUANTITY_PLACES, PRICE_PLACES)}
_SIDES = frozenset(LiquidationTakeover.Side.values)


def _aware(value) -> datetime:
    if not isinstance(value, datetime):
        raise MoneyError("must be a date and time")
    if value.utcoffset() is None:
        raise MoneyError("must carry a time zone (for example 2026-11-25T10:00:00Z)")
    return value


_PLACES = (
    ("quantity", "The quantity", QUANTITY_PLACES),
    ("takeover_price", "The takeover price", PRICE_PLACES),
    ("close_price", "The close price", PRICE_PLACES),
)


def _clean_takeover(item: TakeoverInput, contracts: dict, latest: datetime) -> tuple[dict, dict]:
    """A takeover's values checked, and its result computed; `contracts` maps each symbol to
    (contract, its margin asset's precision), `latest` is the latest time accepted."""
    errors: dict[str, str] = {}
    external_id = item.external_id if is_identifier(item.external_id) else ""
    if not external_id:
        errors["external_id"] = f"Give the engine's id of the takeover ({IDENTIFIER_FORM})."
    contract, precision = (
        contracts.get(item.contract, (None, 0)) if isinstance(item.contract, str) else (None, 0)
    )
    if contract is None:
        errors["contract"] = f"Unknown contract {item.contract!r}."
    side = item.side
    if not isinstance(side, str) or side not in _SIDES:
        errors["side"] = "Must be 'long' or 'short'."
    data: dict[str, Any] = {"external_id": external_id, "contract": contract, "side": side}
    for name, label, places in _PLACES:
        try:
            data[name] = _bounded_decimal(getattr(item, name), places=places, positive=True)
        except MoneyError as exc:
            errors[name] = f"{label} {exc}."
    if contract is not None:
        try:
            margin = data["remaining_margin_units"] = to_units(item.remaining_margin, precision)
            if margin < 0:
                errors["remaining_margin"] = "The remaining margin must not be negative."
        except MoneyError as exc:
            errors["remaining_margin"] = f"The remaining margin {exc}."
    for name in ("taken_over_at", "closed_at"):
        try:
            moment = data[name] = _aware(getattr(item, name))
            if moment > latest:
                errors[name] = "Must not be in the future."
        except MoneyError as exc:
            errors[name] = f"The time {exc}."
    if (
        "taken_over_at" in data
        and "closed_at" in data
        and data["closed_at"] < data["taken_over_at"]
    ):
        errors["closed_at"] = "The takeover cannot close before it was taken over."
    if not errors:
        result = data["engine_result_units"] = engine_result_units(
            kind=contract.kind,
            side=side,
            quantity=data["quantity"],
            multiplier=contract.multiplier,
            takeover_price=data["takeover_price"],
            close_price=data["close_price"],
            remaining_margin_units=data["remaining_margin_units"],
            precision=precision,
        )
        if abs(result) > MAX_UNITS:
            errors["quantity"] = "The takeover's result is larger than the system books."
    return data, errors


def _raise_item_errors(errors: dict[int, dict[str, str]], ids: Sequence[str]) -> None:
    item_errors_raise(
        {
            index: {
                f"items[{index}].{name}": f"Item {index} ({ids[index]!r}): {message}"
                for name, message in fields.items()
            }
            for index, fields in errors.items()
        }
    )


def item_errors_raise(errors: dict[int, dict[str, str]]) -> None:
    """Raises the ValidationError of a batch's item errors (item index → {key: message}):
    the first MAX_ITEM_ERRORS items' messages, and how many more items have errors."""
    if not errors:
        return
    listed = sorted(errors)[:MAX_ITEM_ERRORS]
    body = {key: message for index in listed for key, message in errors[index].items()}
    if len(errors) > len(listed):
        body["items"] = (
            f"{len(errors) - len(listed):,} more items have errors; the first "
            f"{len(listed)} are listed."
        )
    raise ValidationError(body)


def _check_cycle_totals(what: str, cycle_ids, existing, field: str, additions) -> None:
    """A cycle's total loss and total profit must stay within MAX_UNITS, like every figure the
    settlement stores: refuses, naming the item, the one that would cross it."""
    if not additions:
        return
    totals = dict(
        existing.filter(cycle_id__in=cycle_ids)
        .values_list("cycle_id")
        .annotate(total=Sum(field))
        .values_list("cycle_id", "total")
    )
    totals = {cycle_id: abs(total or 0) for cycle_id, total in totals.items()}
    for index, ident, cycle_id, amount in additions:
        totals[cycle_id] = totals.get(cycle_id, 0) + amount
        if totals[cycle_id] > MAX_UNITS:
            raise ValidationError(
                {
                    f"items[{index}]": f"Item {index} ({ident!r}): the cycle's total {what} "
                    "would exceed the largest amount the system books."
                }
            )


_TAKEOVER_FIELDS = (
    "side",
    "quantity",
    "takeover_price",
    "close_price",
    "remaining_margin_units",
    "taken_over_at",
    "closed_at",
)
# A conflict names the field as the engine sends it (TakeoverInput), not the model's column.
_API_FIELD = {"remaining_margin_units": "remaining_margin"}
TAKEOVER_COLUMNS = [
    "id",
    "external_id",
    "contract_id",
    "fund_id",
    "side",
    "quantity",
    "takeover_price",
    "close_price",
    "remaining_margin_units",
    "engine_result_units",
    "taken_over_at",
    "closed_at",
    "cycle_id",
    "late",
    "received_at",
]


def _takeovers_by_external_id(external_ids: list[str]):
    """(external id, id, contract id, *_TAKEOVER_FIELDS) of the takeovers booked with these ids."""
    columns = ["external_id", "id", "contract_id", *_TAKEOVER_FIELDS]
    return LiquidationTakeover.objects.filter(external_id__any=external_ids).values_list(*columns)


def liquidations_record(*, items: Sequence[TakeoverInput], now: datetime | None = None) -> Intake:
    """Books closed takeovers: a profit goes to the fund at once, a loss to its cycle.

    Each fund's lock orders the batches of one fund. A new external id sent at the same moment
    for two funds' contracts meets the unique key instead: the batch that loses is run once
    more, and then sees the other's takeover like any booked one (409, naming the item)."""
    try:
        return _liquidations_record(items=items, now=now)
    except IntegrityError as exc:
        if not _is_external_id_clash(exc):
            raise
        return _liquidations_record(items=items, now=now)


def _is_external_id_clash(exc: IntegrityError) -> bool:
    text = str(exc)
    return "external_id" in text or "fund_liquidationtakeover_external_id" in text


@books_transaction
def _liquidations_record(*, items: Sequence[TakeoverInput], now: datetime | None) -> Intake:
    batch_check(items)
    now = now or timezone.now()
    symbols = {item.contract for item in items if isinstance(item.contract, str)}
    contracts = {
        c.symbol: (c, c.margin_asset.precision)
        for c in Contract.objects.select_related("margin_asset").filter(symbol__in=symbols)
    }
    cleaned, errors, seen = [], {}, {}
    latest = now + CLOCK_TOLERANCE
    for index, item in enumerate(items):
        data, item_errors = _clean_takeover(item, contracts, latest)
        if data["external_id"] in seen:
            item_errors["external_id"] = f"Repeats item {seen[data['external_id']]} of this batch."
        seen.setdefault(data["external_id"], index)
        if item_errors:
            errors[index] = item_errors
        cleaned.append(data)
    _raise_item_errors(errors, [item.external_id for item in items])

    funds = lock_funds(asset_ids={data["contract"].margin_asset_id for data in cleaned})
    first_start = {fund.id: cycle_first_start(fund=fund) for fund in funds.values()}
    for index, data in enumerate(cleaned):
        fund = funds[data["contract"].margin_asset_id]
        if data["closed_at"] < first_start[fund.id]:
            errors[index] = {
                "closed_at": f"{data['closed_at']:%Y-%m-%d %H:%M:%S} UTC is before the fund's "
                f"first settlement cycle ({first_start[fund.id]:%Y-%m-%d %H:%M:%S} UTC)."
            }
    _raise_item_errors(errors, [item.external_id for item in items])

    def as_booked():
        for fund in funds.values():  # as the savepoint left them (the ledger moves them)
            fund.refresh_from_db(fields=["balance_units", "head_hash"])
        existing = {row[0]: row[1:] for row in _takeovers_by_external_id(list(seen))}
        return _takeovers_book(cleaned, funds, now, existing=existing)

    return _optimistically(
        lambda: _takeovers_book(cleaned, funds, now, existing={}),
        as_booked,
        clash=lambda exc: _is_external_id_clash(exc),
    )


def _optimistically(all_new, as_booked, *, clash):
    """Books a batch as if none of its items were booked before (the usual case: no lookup of
    ten thousand ids), in a savepoint; when that fails (an id is booked already, so its unique
    key refuses the row: `clash(exc)`, or a check failed that might have passed with some items
    existing), goes back to the savepoint and books it the careful way, which gives the exact
    answer. Funds and cycles are locked already: nothing else moves in between."""
    savepoint = transaction.savepoint_create()
    try:
        intake = all_new()
    except (IntegrityError, ValidationError) as exc:
        transaction.savepoint_rollback(savepoint)
        if isinstance(exc, IntegrityError) and not clash(exc):
            raise
        return as_booked()
    transaction.savepoint_commit(savepoint)
    return intake


def _takeovers_book(cleaned: list[dict], funds: dict, now: datetime, existing: dict) -> Intake:
    """Writes the batch's new takeovers and the fund's records of their profits, given the
    `existing` takeovers booked with its ids (external id → the row's values)."""
    ids: list[int | None] = [None] * len(cleaned)
    created, new = [], []
    for index, data in enumerate(cleaned):
        old = existing.get(data["external_id"])
        if old is None:
            new.append(index)
            created.append(True)
            continue
        ids[index] = old[0]
        differs = [
            _API_FIELD.get(f, f) for f, value in zip(_TAKEOVER_FIELDS, old[2:]) if value != data[f]
        ]
        if old[1] != data["contract"].id:
            differs.insert(0, "contract")
        if differs:
            raise ConflictError(
                f"Item {index} ({data['external_id']!r}) was booked before with a different "
                f"{differs[0]}.",
                code="id_reused",
                details={"index": index, "id": data["external_id"], "field": differs[0]},
            )
        created.append(False)

    placed: dict[int, tuple] = {}  # item index → (fund, cycle, late)
    for fund in funds.values():
        mine = [
            index for index in new if cleaned[index]["contract"].margin_asset_id == fund.asset_id
        ]
        cycles = cycles_for_takeovers(
            fund=fund, closed_at=[cleaned[index]["closed_at"] for index in mine]
        )
        for index, (cycle, late) in zip(mine, cycles):
            placed[index] = (fund, cycle, late)
    new.sort(
        key=lambda index: cleaned[index]["closed_at"]
    )  # the ledger's profit records in time order
    _check_cycle_totals(
        "losses",
        {placed[i][1].id for i in new},
        LiquidationTakeover.objects.filter(engine_result_units__lt=0),
        "engine_result_units",
        [
            (i, cleaned[i]["external_id"], placed[i][1].id, -cleaned[i]["engine_result_units"])
            for i in new
            if cleaned[i]["engine_result_units"] < 0
        ],
    )
    for index, takeover_id in zip(new, reserve_ids(LiquidationTakeover, len(new))):
        ids[index] = takeover_id
    insert_rows(
        LiquidationTakeover,
        TAKEOVER_COLUMNS,
        (
            (
                ids[i],
                d["external_id"],
                d["contract"].id,
                placed[i][0].id,
                d["side"],
                d["quantity"],
                d["takeover_price"],
                d["close_price"],
                d["remaining_margin_units"],
                d["engine_result_units"],
                d["taken_over_at"],
                d["closed_at"],
                placed[i][1].id,
                placed[i][2],
                now,
            )
            for i in new
            for d in (cleaned[i],)
        ),
    )
    for fund in funds.values():
        ledger_append(
            fund=fund,
            entries=[
                Entry(
                    FundRecord.Kind.LIQUIDATION_PROFIT,
                    cleaned[i]["engine_result_units"],
                    now,
                    takeover_id=ids[i],
                    cycle_id=placed[i][1].id,
                    takeover_external_id=cleaned[i]["external_id"],
                )
                for i in new
                if placed[i][0] is fund and cleaned[i]["engine_result_units"] > 0
            ],
        )
    return Intake(model=LiquidationTakeover, ids=ids, created=created)


@books_transaction
def position_profits_record(
    *, cycle_id: int, items: Sequence[PositionProfitInput], now: datetime | None = None
) -> Intake:
    """Books the engine's position profits for a cycle; accepted until the cycle settles."""
    batch_check(items)
    fund = lock_fund_of_cycle(cycle_id=cycle_id)
    cycle = lock_cycle(cycle_id=cycle_id)
    if not cycle.is_accepting:
        raise ConflictError(
            f"Cycle {cycle.id} is {cycle.get_status_display().lower()}: it takes no more "
            "position profits.",
            code="cycle_settled",
        )
    precision = fund.asset.precision
    contracts = {
        c.symbol: c
        for c in Contract.objects.filter(
            symbol__in={item.contract for item in items if isinstance(item.contract, str)}
        )
    }
    cleaned, errors, seen = [], {}, {}
    for index, item in enumerate(items):
        item_errors: dict[str, str] = {}
        position_id = item.position_id
        if (
            isinstance(position_id, bool)
            or not isinstance(position_id, int)
            or not 0 < position_id < 2**63
        ):
            item_errors["position_id"] = "Give the engine's position id, a positive whole number."
        elif position_id in seen:
            item_errors["position_id"] = f"Repeats item {seen[position_id]} of this batch."
        else:
            seen[position_id] = index
        account = item.account if is_identifier(item.account) else ""
        if not account:
            item_errors["account"] = f"Give the engine's account id ({IDENTIFIER_FORM})."
        contract = contracts.get(item.contract) if isinstance(item.contract, str) else None
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
    return _optimistically(
        lambda: _profits_book(cycle, cleaned, accounts, now, existing={}),
        lambda: _profits_book(cycle, cleaned, accounts, now, existing=_profits_booked(cycle, seen)),
        clash=_is_position_clash,
    )


def _is_position_clash(exc: IntegrityError) -> bool:
    text = str(exc)
    return "position_profit_unique" in text or "fund_positionprofit.position_id" in text


def _profits_booked(cycle, position_ids) -> dict:
    """position id → (row id, account's external id, contract id, profit) of the cycle's
    position profits with these ids."""
    return {
        row[0]: row[1:]
        for row in PositionProfit.objects.filter(
            cycle=cycle, position_id__any=list(position_ids)
        ).values_list("position_id", "id", "account__external_id", "contract_id", "profit_units")
    }


def _profits_book(cycle, cleaned: list[tuple], accounts: dict, now, existing: dict) -> Intake:
    """Writes the batch's new position profits, given the `existing` ones of its ids."""
    ids: list[int | None] = [None] * len(cleaned)
    created, new = [], []
    for index, (position_id, account, contract, profit) in enumerate(cleaned):
        old = existing.get(position_id)
        if old is None:
            new.append(index)
            created.append(True)
        elif old[1:] != (account, contract.id, profit):
            raise ConflictError(
                f"Item {index} (position {position_id}) was reported before for this cycle "
                "with other values.",
                code="id_reused",
                details={"index": index, "id": position_id},
            )
        else:
            ids[index] = old[0]
            created.append(False)
    _check_cycle_totals(
        "profits",
        {cycle.id},
        PositionProfit.objects.filter(profit_units__gt=0),
        "profit_units",
        [(i, cleaned[i][0], cycle.id, cleaned[i][3]) for i in new if cleaned[i][3] > 0],
    )
    for index, row_id in zip(new, reserve_ids(PositionProfit, len(new))):
        ids[index] = row_id
    received_at = now or timezone.now()
    salts = os.urandom(SALT_BYTES * len(new))  # one call: each position's own 16 random bytes
    insert_rows(
        PositionProfit,
        [
            "id",
            "cycle_id",
            "position_id",
            "account_id",
            "contract_id",
            "profit_units",
            "salt",
            "received_at",
        ],
        (
            (
                ids[i],
                cycle.id,
                cleaned[i][0],
                accounts[cleaned[i][1]],
                cleaned[i][2].id,
                cleaned[i][3],
                salts[n * SALT_BYTES : (n + 1) * SALT_BYTES],
                received_at,
            )
            for n, i in enumerate(new)
        ),
    )
    return Intake(model=PositionProfit, ids=ids, created=created)


def _accounts(external_ids: set[str]) -> dict[str, int]:
    """Trader account ids by the engine's account id, created on first sight."""
    found = dict(
        TraderAccount.objects.filter(external_id__any=external_ids).values_list("external_id", "id")
    )
    missing = external_ids - set(found)
    if missing:
        TraderAccount.objects.bulk_create(
            [TraderAccount(external_id=e) for e in missing], ignore_conflicts=True
        )
        found.update(
            TraderAccount.objects.filter(external_id__any=missing).values_list("external_id", "id")
        )
    return found
