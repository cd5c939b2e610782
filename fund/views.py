"""The public transparency portal: server-rendered pages, each a selector call and a template."""

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.core.paginator import Paginator
from django.shortcuts import render
from django.utils import timezone
from django.utils.dateparse import parse_date

from fund import selectors
from fund.computation import compute_settlement
from fund.models import Fund, FundRecord, SettlementCycle
from fund.pagecache import cached_page
from statements.money import format_units

RECORDS_PER_PAGE = 50


@cached_page
def overview(request):
    now = timezone.now()
    funds = selectors.fund_overview()
    for row in funds:
        row["changes"] = selectors.fund_changes(fund=row["fund"], now=now)
        row["series"] = selectors.balance_series(fund=row["fund"])
    return render(
        request,
        "fund/overview.html",
        {
            "funds": funds,
            "charts": {row["fund"].asset.code: row["series"] for row in funds},
            "records": selectors.records_latest(limit=10),
            "cycles": selectors.cycles_latest_settled(limit=8),
        },
    )


@cached_page
def fund_detail(request, asset):
    fund = selectors.fund_get(asset_code=asset)
    kinds = [k for k in request.GET.getlist("kind") if k in FundRecord.Kind.values]
    start, end, errors = _day(request, "from"), _day(request, "to"), {}
    if request.GET.get("from") and start is None:
        errors["from"] = "Use a date like 2026-11-01."
    if request.GET.get("to") and end is None:
        errors["to"] = "Use a date like 2026-11-30."
    records = selectors.fund_records(fund=fund, kinds=kinds, start=start, end=end).select_related(
        "takeover"
    )
    before = request.GET.get("before", "")
    paged = bool(re.fullmatch(r"[0-9]{1,18}", before))
    if paged:
        records = records.filter(seq__lt=int(before))
    page = list(records[: RECORDS_PER_PAGE + 1])
    older = page[RECORDS_PER_PAGE - 1].seq if len(page) > RECORDS_PER_PAGE else None
    query = request.GET.copy()
    query.pop("before", None)
    return render(
        request,
        "fund/fund_detail.html",
        {
            "fund": fund,
            "changes": selectors.fund_changes(fund=fund, now=timezone.now()),
            "charts": {fund.asset.code: selectors.balance_series(fund=fund)},
            "flows": selectors.flows_by_kind(fund=fund),
            "records": page[:RECORDS_PER_PAGE],
            "older": older,
            "paged": paged,
            "query": query.urlencode(),
            "kinds": FundRecord.Kind.choices,
            "selected_kinds": kinds,
            "errors": errors,
            "cycles": selectors.cycles_public(asset_code=fund.asset.code)[:5],
        },
    )


def _day(request, name):
    """A date from the query; `from` is its start, `to` its end (the whole day counts)."""
    raw = request.GET.get(name, "")
    try:
        day = parse_date(raw) if raw else None
        if day is None:
            return None
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return start + timedelta(days=1) if name == "to" else start
    except (ValueError, OverflowError):
        return None


def cycle_list(request):
    asset = request.GET.get("asset", "")
    status = request.GET.get("status", "")
    cycles = selectors.cycles_public(
        asset_code=asset or None,
        statuses=[status] if status in SettlementCycle.Status.values else None,
    )
    page = Paginator(cycles, 30).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "fund/cycle_list.html",
        {
            "page": page,
            "assets": Fund.objects.values_list("asset__code", flat=True).order_by("asset__code"),
            "asset": asset,
            "status": status,
            "statuses": SettlementCycle.Status.choices,
            "query": query.urlencode(),
        },
    )


def cycle_detail(request, pk):
    cycle = selectors.cycle_get(cycle_id=pk)
    return render(
        request,
        "fund/cycle_detail.html",
        {
            "cycle": cycle,
            "asset": cycle.fund.asset,
            "charts": {"distribution": selectors.cycle_distribution(cycle=cycle)}
            if cycle.participant_count
            else {},
        },
    )


def rules(request):
    """The rules in plain words, today's parameters, and RULES.md's worked example computed by
    the same function that settles cycles."""
    p = 8
    positions = {"A": 600, "B": 300, "C": 80, "D": 20}
    ids = {name: i for i, name in enumerate(positions, start=1)}
    example = compute_settlement(
        loss=500 * 10**p,
        balance=1000 * 10**p,
        fund_ratio=Decimal("0.2"),
        screening_ratio=Decimal("0.9"),
        positions=[(ids[name], profit * 10**p) for name, profit in positions.items()],
    )
    names = {i: name for name, i in ids.items()}
    fmt = lambda units: format_units(units, p)  # noqa: E731
    shares = [
        {
            "name": names[pid],
            "profit": fmt(positions[names[pid]] * 10**p),
            "amount": fmt(amount),
            "rounding": rounding,
            "left": fmt(positions[names[pid]] * 10**p - amount),
        }
        for pid, amount, rounding in zip(
            example.participants, example.amounts, example.rounding_units
        )
    ]
    return render(
        request,
        "fund/rules.html",
        {
            "funds": selectors.funds_public(),
            "example": example,
            "fmt": {
                k: fmt(getattr(example, k))
                for k in (
                    "loss",
                    "balance",
                    "fund_share",
                    "users_share",
                    "total_profit",
                    "participants_profit",
                    "threshold_profit",
                    "backstop",
                    "uncovered",
                )
            },
            "balance_after": fmt(example.balance - example.fund_total),
            "shares": shares,
            "outsiders": [n for n in positions if ids[n] not in example.participants],
        },
    )


def faq(request):
    return render(request, "fund/faq.html", {"funds": selectors.funds_public()})
