"""The trading engine's index prices: each asset's price in US dollars at a moment, exactly once
per (asset, moment), all or nothing. The portal shows each fund's value in USD with them; the
ledger and the settlement never use them."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from fund.errors import ConflictError
from fund.models import IndexPrice
from fund.services.liquidations import Intake, batch_check, item_errors_raise
from statements.models import Asset
from statements.money import MoneyError, parse_decimal

# A price's largest value and its places (the column holds 18 digits before the point).
PRICE_MAX = Decimal(10) ** 15
PRICE_PLACES = 12
# How far ahead of the server's clock a price's moment may lie (the engine's clock may run a
# little fast); a moment further ahead is a mistake.
FUTURE_SLACK = timedelta(minutes=5)


@dataclass(slots=True)
class IndexPriceInput:
    asset: str
    price: object  # decimal text, as the engine sends it
    at: object  # an aware datetime


def _price(value) -> Decimal:
    number = parse_decimal(value)
    if number <= 0:
        raise MoneyError("must be greater than zero")
    if number >= PRICE_MAX:
        raise MoneyError(f"must be below {PRICE_MAX:,}")
    if -number.as_tuple().exponent > PRICE_PLACES:
        raise MoneyError(f"has more than {PRICE_PLACES} decimal places")
    return number


def index_prices_record(*, items: list, now: datetime | None = None) -> Intake:
    """Books a batch of index prices. An (asset, moment) booked before with the same price is
    "existing"; with another price, the whole batch is refused (ConflictError, nothing booked).
    Every item's problems are named at once (ValidationError, nothing booked)."""
    batch_check(items)
    now = now or timezone.now()
    codes = {i.asset for i in items if isinstance(i.asset, str)}
    assets = {a.code: a for a in Asset.objects.filter(code__in=codes)}
    errors: dict[int, dict[str, str]] = {}
    cleaned: list[tuple[Asset, datetime, Decimal]] = []
    seen: dict[tuple[int, datetime], int] = {}
    for index, item in enumerate(items):
        mine = {}
        asset = assets.get(item.asset) if isinstance(item.asset, str) else None
        if not isinstance(item.asset, str):
            mine[f"items[{index}].asset"] = f"Item {index}: give the asset's code as text."
        elif asset is None:
            shown = item.asset if len(item.asset) <= 32 else f"{item.asset[:32]}…"
            mine[f"items[{index}].asset"] = f"Item {index}: there is no asset {shown!r}."
        try:
            price = _price(item.price)
        except MoneyError as exc:
            mine[f"items[{index}].price"] = f"Item {index}: the price {exc}."
        at = item.at
        if not isinstance(at, datetime) or timezone.is_naive(at):
            mine[f"items[{index}].at"] = (
                f"Item {index}: give the moment as ISO 8601 with a time zone."
            )
        elif at > now + FUTURE_SLACK:
            mine[f"items[{index}].at"] = f"Item {index}: the moment lies in the future."
        if not mine:
            key = (asset.pk, at)
            if key in seen:
                mine[f"items[{index}].at"] = (
                    f"Item {index}: {asset.code} at {at.isoformat()} is item {seen[key]} too."
                )
            seen[key] = index
        if mine:
            errors[index] = mine
        else:
            cleaned.append((asset, at, price))
    item_errors_raise(errors)
    try:
        return _book(cleaned)
    except IntegrityError:  # the same moment booked by a concurrent batch (SQLite): read again
        return _book(cleaned)


def _book(cleaned: list[tuple[Asset, datetime, Decimal]]) -> Intake:
    with transaction.atomic():
        # One writer per asset at a time: a batch sent twice at once books once.
        list(
            Asset.objects.select_for_update()
            .filter(pk__in={a.pk for a, _, _ in cleaned})
            .order_by("pk")
        )
        existing = {
            (p.asset_id, p.at): p
            for p in IndexPrice.objects.filter(
                asset__in={a for a, _, _ in cleaned}, at__in={at for _, at, _ in cleaned}
            )
        }
        ids, created, new = [], [], []
        for index, (asset, at, price) in enumerate(cleaned):
            old = existing.get((asset.pk, at))
            if old is not None and old.price != price:
                raise ConflictError(
                    f"Item {index}: {asset.code} at {at.isoformat()} was booked before at "
                    f"{old.price.normalize():f} USD, not {price.normalize():f}.",
                    code="index_price_conflict",
                    details={"index": index, "asset": asset.code, "at": at.isoformat()},
                )
            created.append(old is None)
            if old is None:
                new.append(IndexPrice(asset=asset, at=at, price=price))
        made = iter(IndexPrice.objects.bulk_create(new))
        for (asset, at, _), is_new in zip(cleaned, created):
            row = next(made) if is_new else existing[(asset.pk, at)]
            ids.append(row.pk)
    return Intake(IndexPrice, ids, created)


def index_prices_latest() -> dict[int, IndexPrice]:
    """Each asset's latest index price (asset id → price), in one query (each asset's newest
    row through the (asset, at) unique index)."""
    newest = IndexPrice.objects.filter(asset_id=OuterRef("pk")).order_by("-at").values("pk")[:1]
    ids = Asset.objects.annotate(latest=Subquery(newest)).values("latest")
    return {p.asset_id: p for p in IndexPrice.objects.filter(pk__in=ids)}
