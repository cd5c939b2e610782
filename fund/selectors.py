"""Reads that feed pages, the API and commands: each query written once. What a URL names is
looked up (404) in fund/lookups.py; charts, proofs and display figures have modules of their own."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.db.models import F, OuterRef, Prefetch, QuerySet, Subquery

from fund.merkle import position_commitment
from fund.models import (
    AdminAction,
    Contract,
    Fund,
    FundBalanceHour,
    FundKindTotal,
    FundRecord,
    PositionProfit,
    SettlementCycle,
)
from statements.models import Statement, TraderAccount
from statements.money import format_units

BUCKETS = ("hour", "day", "week")


def funds_public() -> QuerySet[Fund]:
    """Every fund with its asset, the contracts sharing it and its totals by kind (3 queries)."""
    return Fund.objects.select_related("asset").prefetch_related(
        Prefetch("asset__contracts", queryset=Contract.objects.order_by("symbol")),
        Prefetch("kind_totals", queryset=FundKindTotal.objects.order_by("kind")),
    )


def fund_overview() -> list[dict]:
    """Each fund with its contracts, its current cycle and its latest settled cycle (5 queries)."""
    cycles = SettlementCycle.objects.filter(fund=OuterRef("pk")).values("id")
    funds = list(
        funds_public().annotate(
            current_id=Subquery(
                cycles.filter(status=SettlementCycle.Status.OPEN).order_by("starts_at")[:1]
            ),
            latest_id=Subquery(
                cycles.filter(status=SettlementCycle.Status.SETTLED).order_by("-starts_at")[:1]
            ),
        )
    )
    found = SettlementCycle.objects.in_bulk(
        [i for f in funds for i in (f.current_id, f.latest_id) if i]
    )
    return [
        {
            "fund": fund,
            "current": found.get(fund.current_id),
            "latest_settled": found.get(fund.latest_id),
        }
        for fund in funds
    ]


def records_public() -> QuerySet[FundRecord]:
    """Public records with what a row shows: the fund's asset, the takeover's id, the seq of
    the record a correction corrects and the corrections of a corrected record."""
    return (
        FundRecord.objects.select_related("fund__asset", "takeover")
        .annotate(corrects_seq=F("corrects__seq"))
        .prefetch_related(
            Prefetch(
                "corrections",
                queryset=FundRecord.objects.only("id", "seq", "corrects_id").order_by("seq"),
            )
        )
    )


def records_latest(*, limit: int = 12) -> list[FundRecord]:
    """The newest fund records of all funds, newest first."""
    return list(records_public().order_by("-created_at", "-id")[:limit])


def cycles_latest_settled(*, limit: int = 12) -> list[SettlementCycle]:
    return list(
        SettlementCycle.objects.select_related("fund__asset")
        .filter(status=SettlementCycle.Status.SETTLED)
        .order_by("-settled_at", "fund__asset__code")[:limit]
    )


def fund_records(*, fund: Fund) -> QuerySet[FundRecord]:
    """A fund's public records, newest first (filters: fund.filters.RecordFilter)."""
    return records_public().filter(fund=fund).order_by("-seq")


@dataclass(frozen=True)
class Bucket:
    start: datetime
    open_units: int
    close_units: int
    low_units: int
    high_units: int
    inflow_units: int
    outflow_units: int
    records: int


def bucket_start(moment: datetime, bucket: str) -> datetime:
    hour = moment.replace(minute=0, second=0, microsecond=0)
    if bucket == "hour":
        return hour
    day = hour.replace(hour=0)
    return day if bucket == "day" else day - timedelta(days=day.weekday())


def fund_history(*, fund: Fund, bucket: str = "day", start=None, end=None) -> list[Bucket]:
    """The fund's balance in hour, day or week buckets (weeks start on Monday, UTC), read from
    the hourly rows the ledger keeps, so the cost does not grow with the number of records.
    Only buckets with at least one record appear; in between, the balance is the last close."""
    assert bucket in BUCKETS
    hours = FundBalanceHour.objects.filter(fund=fund)
    if start:
        hours = hours.filter(hour__gte=bucket_start(start, "hour"))
    if end:
        hours = hours.filter(hour__lt=end)
    merged: dict[datetime, list[int]] = {}
    for row in hours.order_by("hour").values_list(
        "hour",
        "open_units",
        "close_units",
        "low_units",
        "high_units",
        "inflow_units",
        "outflow_units",
        "records",
    ):
        key = bucket_start(row[0], bucket)
        acc = merged.get(key)
        if acc is None:
            merged[key] = list(row[1:])
        else:
            acc[1] = row[2]
            acc[2], acc[3] = min(acc[2], row[3]), max(acc[3], row[4])
            acc[4] += row[5]
            acc[5] += row[6]
            acc[6] += row[7]
    return [Bucket(key, *values) for key, values in merged.items()]


def cycles_public() -> QuerySet[SettlementCycle]:
    """Every cycle, newest first (filters: fund.filters.CycleFilter)."""
    return SettlementCycle.objects.select_related("fund__asset", "application").order_by(
        "-starts_at", "-id"
    )


def statements_of(*, account: TraderAccount) -> QuerySet[Statement]:
    """A trader's own statements, newest first, each with its apportionment and cycle if any
    (filters: fund.filters.StatementFilter)."""
    return (
        Statement.objects.filter(account=account)
        .select_related("asset", "apportionment__cycle", "apportionment__position__contract")
        .order_by("-created_at", "-id")
    )


def cycle_losses_public(*, cycle: SettlementCycle) -> Iterator[dict]:
    """A settled cycle's system losses, anonymised: contract, closed at (UTC), the loss as a
    positive amount; in the order they closed."""
    places = cycle.fund.asset.precision
    rows = (
        cycle.takeovers.filter(engine_result_units__lt=0)
        .order_by("closed_at", "id")
        .values_list("contract__symbol", "closed_at", "engine_result_units")
    )
    for symbol, closed_at, result in rows.iterator(chunk_size=10_000):
        yield {
            "contract": symbol,
            "closed_at": closed_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "loss": format_units(-result, places),
        }


def cycle_positions_public(*, cycle: SettlementCycle) -> Iterator[dict]:
    """A settled cycle's profitable positions in rank order, anonymised: rank, the commitment to
    the position (form 2; None for a cycle of form 1), its profit and its apportionment (0 below
    the threshold)."""
    places, form2 = cycle.fund.asset.precision, cycle.root_format != 1
    rows = (
        PositionProfit.objects.filter(cycle=cycle, profit_units__gt=0)
        .order_by("-profit_units", "position_id")
        .values_list("position_id", "profit_units", "salt", "apportionment__amount_units")
    )
    for rank, (position_id, profit, salt, amount) in enumerate(
        rows.iterator(chunk_size=10_000), start=1
    ):
        yield {
            "rank": rank,
            "commitment": position_commitment(salt=salt, cycle_id=cycle.id, position_id=position_id)
            if form2
            else None,
            "profit": format_units(profit, places),
            "amount": format_units(amount or 0, places),
        }


def positions_of(*, account: TraderAccount) -> QuerySet[PositionProfit]:
    """A trader's profitable positions in settled cycles, newest cycle first: each is in its
    cycle's Merkle root (form 2) whether it was apportioned or not."""
    return (
        PositionProfit.objects.filter(
            account=account, profit_units__gt=0, cycle__status=SettlementCycle.Status.SETTLED
        )
        .select_related("cycle__fund__asset", "contract", "apportionment__statement")
        .order_by("-cycle__ends_at", "-id")
    )


def admin_actions() -> QuerySet[AdminAction]:
    return AdminAction.objects.select_related("actor", "fund__asset", "cycle", "record").order_by(
        "-created_at", "-id"
    )


def balance_at(*, fund: Fund, moment: datetime) -> int | None:
    """The fund's balance at the end of the last full hour before `moment` (hourly rows);
    None when the fund had no record yet then."""
    return (
        FundBalanceHour.objects.filter(fund=fund, hour__lte=moment - timedelta(hours=1))
        .order_by("-hour")
        .values_list("close_units", flat=True)
        .first()
    )


def fund_changes(*, fund: Fund, now: datetime) -> list[dict]:
    """The balance's change over 24 hours, 7 and 30 days (from the hourly rows)."""
    changes = []
    for label, delta in (
        ("24 h", timedelta(hours=24)),
        ("7 days", timedelta(days=7)),
        ("30 days", timedelta(days=30)),
    ):
        before = balance_at(fund=fund, moment=now - delta)
        if before is None:  # the fund is younger than that
            changes.append({"label": label, "units": None, "percent": None})
            continue
        change = fund.balance_units - before
        changes.append(
            {
                "label": label,
                "units": change,
                "percent": (change * 100 / before) if before else None,
            }
        )
    return changes


def fund_daily(*, fund: Fund, first: date, last: date) -> list[dict]:
    """The fund's day by day history from `first` to `last` (UTC, newest first): closing
    balance, change, inflows, outflows and record count. A day without records repeats the
    balance before it; days before the fund's first record are left out."""
    start = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    buckets = {
        b.start.date(): b for b in fund_history(fund=fund, bucket="day", start=start, end=end)
    }
    before = (
        FundBalanceHour.objects.filter(fund=fund, hour__lt=start)
        .order_by("-hour")
        .values_list("close_units", flat=True)
        .first()
    )
    balance, rows, day = before, [], first
    while day <= last:
        bucket = buckets.get(day)
        if bucket is not None:
            opening = balance if balance is not None else bucket.open_units
            balance = bucket.close_units
            rows.append(
                {"day": day, "close": balance, "change": balance - opening,
                 "inflow": bucket.inflow_units, "outflow": bucket.outflow_units,
                 "records": bucket.records}
            )  # fmt: skip
        elif balance is not None:
            rows.append(
                {"day": day, "close": balance, "change": 0, "inflow": 0, "outflow": 0, "records": 0}
            )
        day += timedelta(days=1)
    return rows[::-1]
