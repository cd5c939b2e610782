"""Chart series for the pages' plotly charts: the only place where amounts become floats."""

from datetime import datetime, timedelta

from django.db.models import F, Max, Min, Sum
from django.db.models.functions import TruncDay
from django.utils import timezone

from fund.models import Fund, FundBalanceHour, FundRecord, SettlementCycle


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
