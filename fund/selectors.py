"""Reads that feed pages, the API and commands: each query written once."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from itertools import batched

from django.core.cache import cache
from django.db.models import F, Max, Min, OuterRef, Prefetch, QuerySet, Subquery, Sum
from django.db.models.functions import TruncDay
from django.shortcuts import get_object_or_404
from django.utils import timezone

from fund.merkle import (
    BLOCK,
    block_roots,
    cycle_leaves,
    leaf_hash,
    leaf_text,
    merkle_path_in_blocks,
)
from fund.models import (
    AdminAction,
    Apportionment,
    Contract,
    Fund,
    FundBalanceHour,
    FundKindTotal,
    FundRecord,
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


def fund_get(*, asset_code: str) -> Fund:
    return get_object_or_404(funds_public(), asset__code=asset_code.upper())


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


def records_latest(*, limit: int = 12) -> list[FundRecord]:
    """The newest fund records of all funds, newest first."""
    return list(
        FundRecord.objects.select_related("fund__asset").order_by("-created_at", "-id")[:limit]
    )


def cycles_latest_settled(*, limit: int = 12) -> list[SettlementCycle]:
    return list(
        SettlementCycle.objects.select_related("fund__asset")
        .filter(status=SettlementCycle.Status.SETTLED)
        .order_by("-settled_at", "fund__asset__code")[:limit]
    )


def fund_records(
    *, fund: Fund, kinds: list[str] | None = None, start=None, end=None
) -> QuerySet[FundRecord]:
    """A fund's public records, newest first; the takeover's and cycle's ids come along."""
    records = FundRecord.objects.filter(fund=fund).select_related("fund__asset")
    if kinds:
        records = records.filter(kind__in=kinds)
    if start:
        records = records.filter(created_at__gte=start)
    if end:
        records = records.filter(created_at__lt=end)
    return records.order_by("-seq")


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


def cycles_public(
    *, asset_code: str | None = None, statuses: list[str] | None = None
) -> QuerySet[SettlementCycle]:
    cycles = SettlementCycle.objects.select_related("fund__asset")
    if asset_code:
        cycles = cycles.filter(fund__asset__code=asset_code.upper())
    if statuses:
        cycles = cycles.filter(status__in=statuses)
    return cycles.order_by("-starts_at", "-id")


def cycle_get(*, cycle_id: int) -> SettlementCycle:
    return get_object_or_404(SettlementCycle.objects.select_related("fund__asset"), pk=cycle_id)


def statements_of(
    *, account: TraderAccount, asset_code=None, types=None, cycle_id=None, start=None, end=None
) -> QuerySet[Statement]:
    """A trader's own statements, newest first, each with its apportionment and cycle if any."""
    rows = Statement.objects.filter(account=account).select_related(
        "asset", "apportionment__cycle", "apportionment__position"
    )
    if asset_code:
        rows = rows.filter(asset__code=asset_code.upper())
    if types:
        rows = rows.filter(type__in=types)
    if cycle_id is not None:
        rows = rows.filter(apportionment__cycle_id=cycle_id)
    if start:
        rows = rows.filter(created_at__gte=start)
    if end:
        rows = rows.filter(created_at__lt=end)
    return rows.order_by("-created_at", "-id")


def statement_of(*, account: TraderAccount, statement_id: int) -> Statement:
    """One of the trader's statements; any other id is a 404, whoever it belongs to."""
    return get_object_or_404(statements_of(account=account), pk=statement_id)


@dataclass(frozen=True)
class ApportionmentComputation:
    """How one apportionment was computed, in the trader's own numbers (RULES.md section 2)."""

    cycle: SettlementCycle
    loss_units: int
    fund_share_units: int
    users_share_units: int
    position_id: int
    profit_units: int
    rank: int
    participant_count: int
    threshold_profit_units: int
    participants_profit_units: int
    fraction: Fraction  # U / S, capped at 1
    exact_share: Fraction  # U × p / S, before rounding
    amount_units: int
    rounding_unit: bool
    profit_after_units: int


def apportionment_computation(*, apportionment: Apportionment) -> ApportionmentComputation:
    cycle, position = apportionment.cycle, apportionment.position
    users, participants = cycle.users_share_units, cycle.participants_profit_units
    fraction = min(Fraction(users, participants), Fraction(1)) if participants else Fraction(0)
    return ApportionmentComputation(
        cycle=cycle,
        loss_units=cycle.loss_units,
        fund_share_units=cycle.fund_share_units,
        users_share_units=users,
        position_id=position.position_id,
        profit_units=position.profit_units,
        rank=apportionment.rank,
        participant_count=cycle.participant_count,
        threshold_profit_units=cycle.threshold_profit_units,
        participants_profit_units=participants,
        fraction=fraction,
        exact_share=fraction * position.profit_units,
        amount_units=apportionment.amount_units,
        rounding_unit=apportionment.rounding_unit,
        profit_after_units=position.profit_units - apportionment.amount_units,
    )


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


def balance_series(*, fund: Fund) -> dict:
    """The fund's balance after each hour with records, for a chart (floats only here)."""
    rows = (
        FundBalanceHour.objects.filter(fund=fund)
        .order_by("hour")
        .values_list("hour", "close_units")
    )
    scale = 10**fund.asset.precision
    return {"x": [hour.isoformat() for hour, _ in rows], "y": [units / scale for _, units in rows]}


def flows_by_kind(*, fund: Fund, days: int = 90, now: datetime | None = None) -> dict:
    """Each kind of record's daily total over the last `days` days, for a stacked chart."""
    now = now or timezone.now()
    since = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    rows = (
        FundRecord.objects.filter(fund=fund, created_at__gte=since)
        .annotate(day=TruncDay("created_at"))
        .values("day", "kind")
        .annotate(total=Sum("amount_units"))
        .order_by("day", "kind")
    )
    scale = 10**fund.asset.precision
    series: dict[str, dict] = {}
    labels = dict(FundRecord.Kind.choices)
    for row in rows:
        entry = series.setdefault(row["kind"], {"name": labels[row["kind"]], "x": [], "y": []})
        entry["x"].append(row["day"].date().isoformat())
        entry["y"].append(row["total"] / scale)
    return {"series": list(series.values())}


DISTRIBUTION_BARS = 1000


def distribution_from_amounts(amounts: list[int], precision: int) -> dict:
    """The distribution chart's data from amounts in rank order: one bar per rank up to
    DISTRIBUTION_BARS participants; beyond, one bar per group of consecutive ranks showing the
    group's largest amount, so that a million participants make a page of a thousand bars."""
    group = max(1, -(-len(amounts) // DISTRIBUTION_BARS))
    scale = 10**precision
    return {
        "x": list(range(1, len(amounts) + 1, group)),
        "last": [min(i + group, len(amounts)) for i in range(0, len(amounts), group)],
        "y": [max(amounts[i : i + group]) / scale for i in range(0, len(amounts), group)],
        "group": group,
    }


def cycle_distribution(*, cycle: SettlementCycle) -> dict:
    """How the apportioned amount spread across participants, by rank (no identities); grouped
    in the database for large cycles (see distribution_from_amounts)."""
    count = cycle.participant_count or 0
    group = max(1, -(-count // DISTRIBUTION_BARS))
    scale = 10**cycle.fund.asset.precision
    rows = (
        cycle.apportionments.annotate(bucket=(F("rank") - 1) / group)
        .values("bucket")
        .annotate(first=Min("rank"), last=Max("rank"), largest=Max("amount_units"))
        .order_by("bucket")
        .values_list("first", "last", "largest")
    )
    return {
        "x": [row[0] for row in rows],
        "last": [row[1] for row in rows],
        "y": [row[2] / scale for row in rows],
        "group": group,
    }


def settlement_preview_data(*, cycle: SettlementCycle, result, largest: int = 20) -> dict:
    """A settlement preview's figures as decimal text, with the largest apportionments by rank."""
    p, fmt = cycle.fund.asset.precision, cycle.fund.asset.format
    return {
        "cycle": cycle.id,
        "asset": cycle.fund.asset.code,
        "loss": fmt(result.loss),
        "balance": fmt(result.balance),
        "fund_share": fmt(result.fund_share),
        "users_share": fmt(result.users_share),
        "total_profit": fmt(result.total_profit),
        "participants_profit": fmt(result.participants_profit),
        "threshold_profit": fmt(result.threshold_profit),
        "profitable_count": result.profitable_count,
        "participant_count": len(result.participants),
        "backstop": fmt(result.backstop),
        "uncovered": fmt(result.uncovered),
        "largest": [
            {"rank": i + 1, "position_id": pid, "amount": format_units(a, p)}
            for i, (pid, a) in enumerate(
                zip(result.participants[:largest], result.amounts[:largest])
            )
        ],
    }
