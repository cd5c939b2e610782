"""Chart series for the pages' plotly charts: the only place where amounts become floats."""

from datetime import datetime, timedelta

from django.db.models import F, Max, Min, Q, Sum
from django.db.models.functions import TruncDay
from django.utils import timezone

from fund.models import Fund, FundBalanceHour, FundRecord, IndexPrice, SettlementCycle
from statements.money import format_grouped, format_usd, usd_value

# The flows chart's kinds: inflows first, then outflows, each with its colour family in
# static/js/charts.js. Deposits and withdrawals (the exchange's own money moves, an opening deposit
# among them) start hidden behind their legend entries, so that they do not dwarf the trading flows.
FLOW_KINDS_HIDDEN = {FundRecord.Kind.DEPOSIT, FundRecord.Kind.WITHDRAWAL}


def balance_series(*, fund: Fund) -> dict:
    """The fund's balance after each hour with records, for a chart: y as floats (for drawing
    only), text as the exact figure the hover shows."""
    rows = list(
        FundBalanceHour.objects.filter(fund=fund)
        .order_by("hour")
        .values_list("hour", "close_units")
    )
    precision = fund.asset.precision
    scale = 10**precision
    series = {
        "x": [hour.isoformat() for hour, _ in rows],
        "y": [units / scale for _, units in rows],
        "text": [format_grouped(units, precision) for _, units in rows],
    }
    prices = list(
        IndexPrice.objects.filter(asset_id=fund.asset_id).order_by("at").values_list("at", "price")
    )
    if prices:
        # Each hour's close in dollars at the latest index price by the hour's end (the first
        # known price for the hours before it).
        usd, text, k = [], [], 0
        for hour, units in rows:
            end = hour + timedelta(hours=1)
            while k + 1 < len(prices) and prices[k + 1][0] <= end:
                k += 1
            value = usd_value(units, precision, prices[k][1])
            usd.append(float(value))
            text.append(format_usd(value))
        series["usd"], series["usd_text"] = usd, text
    return series


def flows_by_kind(*, fund: Fund, days: int = 90, now: datetime | None = None) -> dict:
    """Each kind of record's daily inflows and outflows over the last `days` days, for a
    relative bar chart: a kind with both (corrections) gives one series each way, so that an
    outflow is always drawn as one. Exact totals ride along as hover text."""
    now = now or timezone.now()
    since = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    inflow = Q(amount_units__gt=0)
    rows = (
        FundRecord.objects.filter(fund=fund, created_at__gte=since)
        .annotate(day=TruncDay("created_at"))
        .values("day", "kind")
        .annotate(
            into=Sum("amount_units", filter=inflow, default=0),
            out=Sum("amount_units", filter=~inflow, default=0),
        )
        .order_by("day", "kind")
    )
    precision = fund.asset.precision
    scale = 10**precision
    series: dict[tuple[str, str], dict] = {}
    labels = dict(FundRecord.Kind.choices)
    for row in rows:
        for direction, total in (("in", row["into"]), ("out", row["out"])):
            if not total:
                continue
            kind = row["kind"]
            entry = series.setdefault(
                (direction, kind),
                {
                    "name": labels[kind]
                    + (" (out)" if kind == "correction" and direction == "out" else ""),
                    "kind": kind,
                    "direction": direction,
                    "hidden": kind in FLOW_KINDS_HIDDEN,
                    "x": [],
                    "y": [],
                    "text": [],
                },
            )
            entry["x"].append(row["day"].date().isoformat())
            entry["y"].append(total / scale)
            entry["text"].append(format_grouped(total, precision))
    ordered = sorted(series.values(), key=lambda s: (s["direction"] != "in", s["kind"]))
    return {"series": ordered}


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
        "text": [
            format_grouped(max(amounts[i : i + group]), precision)
            for i in range(0, len(amounts), group)
        ],
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
        "text": [format_grouped(row[2], cycle.fund.asset.precision) for row in rows],
        "group": group,
    }
