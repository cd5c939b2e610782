"""The public transparency portal: server-rendered pages, each a selector call and a template."""

import base64
import hashlib
from decimal import Decimal
from functools import lru_cache
from urllib.parse import urlencode

from django.conf import settings
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from fund import charts, selectors
from fund.computation import compute_settlement
from fund.filters import DIGITS, CycleFilter, DailyForm, RecordFilter
from fund.lookups import cycle_or_404, fund_or_404
from fund.models import Fund, FundRecord, SettlementCycle
from fund.pagecache import cached_page
from fund.presentation import (
    RUNNING_SECONDS,
    cycle_running_figures,
    share_of_profit,
    usd_values,
)
from fund.services.prices import index_prices_latest
from fund.services.transparency import LogKeyError, checkpoint_latest, log_vkey
from statements.money import format_units

RECORDS_PER_PAGE = 50


@cached_page
def overview(request):
    now = timezone.now()
    funds = selectors.fund_overview()
    totals = usd_values(funds, index_prices_latest())
    for row in funds:
        row["changes"] = selectors.fund_changes(fund=row["fund"], now=now)
        row["series"] = charts.balance_series(fund=row["fund"])
    # The chart opens on the largest fund by its value in dollars (the first without prices).
    largest = max(funds, key=lambda r: r["usd"] or 0, default=None)
    return render(
        request,
        "fund/overview.html",
        {
            "funds": funds,
            "totals": totals,
            "largest": largest["fund"].asset.code if largest else None,
            "charts": {row["fund"].asset.code: row["series"] for row in funds},
            "records": selectors.records_latest(limit=10),
            "cycles": selectors.cycles_latest_settled(limit=8),
        },
    )


def query_without(request, name: str) -> str:
    """The page's query string less one parameter (the pager's own), for links that keep the
    filters."""
    query = request.GET.copy()
    query.pop(name, None)
    return query.urlencode()


def csv_query(filterset) -> str:
    """The query of the API's CSV download for the filters that hold on this page."""
    params = [("format", "csv")]
    for name, value in filterset.form.cleaned_data.items():
        if name in filterset.errors or value in (None, "", []):
            continue
        raw = filterset.data.getlist(name)
        params += [(name, v) for v in raw if v]
    return urlencode(params)


def filter_errors(filterset) -> dict[str, str]:
    """A filter form's errors, one line per field (the filters that are valid still apply)."""
    return {name: " ".join(messages) for name, messages in filterset.errors.items()}


def verifying(request, fund=None) -> dict:
    """What pages say about checking the books: the script's SHA-256, the site's address, the
    verifier key and, for a fund, its latest signed checkpoint."""
    try:
        vkey = log_vkey()
    except LogKeyError:  # logged where it is used; the pages still render, without the key
        vkey = ""
    host = request.get_host()
    context = {
        "script_sha256": check_ledger_file()[1],
        "site": f"{request.scheme}://{host}",
        "vkey": vkey,
        # The monitor's --origin, when the logs are named after another host than this URL's.
        "origin_host": settings.LOG_ORIGIN_HOST if settings.LOG_ORIGIN_HOST != host else "",
    }
    if fund is not None:
        checkpoint = checkpoint_latest(fund)
        context["checkpoint"] = checkpoint
        if checkpoint is not None:
            root = bytes.fromhex(checkpoint.root_hash)
            context["checkpoint_root"] = base64.b64encode(root).decode()
    return context


@cached_page
def fund_detail(request, asset):
    fund = fund_or_404(asset_code=asset)
    filters = RecordFilter(request.GET, queryset=selectors.fund_records(fund=fund))
    records = filters.qs
    before = request.GET.get("before", "")
    paged = bool(DIGITS.fullmatch(before))
    if paged:
        records = records.filter(seq__lt=int(before))
    page = list(records[: RECORDS_PER_PAGE + 1])
    older = page[RECORDS_PER_PAGE - 1].seq if len(page) > RECORDS_PER_PAGE else None
    return render(
        request,
        "fund/fund_detail.html",
        {
            "fund": fund,
            "changes": selectors.fund_changes(fund=fund, now=timezone.now()),
            "charts": {fund.asset.code: charts.balance_series(fund=fund)},
            "flows": charts.flows_by_kind(fund=fund),
            "records": page[:RECORDS_PER_PAGE],
            "older": older,
            "paged": paged,
            "query": query_without(request, "before"),
            "kinds": FundRecord.Kind.choices,
            "selected_kinds": filters.form.cleaned_data.get("kind") or [],
            "errors": filter_errors(filters),
            "csv_query": csv_query(filters),
            "cycles": selectors.cycles_public().filter(fund=fund)[:5],
            **verifying(request, fund),
        },
    )


def cycle_list(request):
    filters = CycleFilter(request.GET, queryset=selectors.cycles_public())
    page = Paginator(filters.qs, 30).get_page(request.GET.get("page"))
    return render(
        request,
        "fund/cycle_list.html",
        {
            "page": page,
            "assets": Fund.objects.values_list("asset__code", flat=True).order_by("asset__code"),
            "asset": request.GET.get("asset", ""),
            "status": request.GET.get("status", ""),
            "statuses": SettlementCycle.Status.choices,
            "query": query_without(request, "page"),
            "errors": filter_errors(filters),
            "csv_query": csv_query(filters),
        },
    )


APPORTIONMENTS_PER_PAGE = 50


def cycle_detail(request, pk):
    cycle = cycle_or_404(cycle_id=pk)
    siblings = SettlementCycle.objects.filter(fund_id=cycle.fund_id)
    context = {
        "cycle": cycle,
        "asset": cycle.fund.asset,
        "previous": siblings.filter(starts_at__lt=cycle.starts_at).order_by("-starts_at").first(),
        "next": siblings.filter(starts_at__gt=cycle.starts_at).order_by("starts_at").first(),
        "charts": {},
        **verifying(request),
    }
    if cycle.status == SettlementCycle.Status.SETTLED and cycle.participant_count:
        context["charts"] = {"distribution": charts.cycle_distribution(cycle=cycle)}
        page = Paginator(
            cycle.apportionments.select_related("position").order_by("rank"),
            APPORTIONMENTS_PER_PAGE,
        ).get_page(request.GET.get("page"))
        context["page"] = page
        context["ranks"] = [
            {
                "rank": a.rank,
                "profit": a.position.profit_units,
                "amount": a.amount_units,
                "left": a.position.profit_units - a.amount_units,
                "share": share_of_profit(a.amount_units, a.position.profit_units),
            }
            for a in page.object_list
        ]
    elif cycle.status in SettlementCycle.ACCEPTING:
        context["running"] = cycle_running_figures(cycle=cycle)
        context["running_seconds"] = RUNNING_SECONDS
    return render(request, "fund/cycle_detail.html", context)


def rules(request):
    """The rules in plain words, today's parameters, and the worked example of docs/rules.md §3
    computed by the same function that settles cycles."""
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
            **verifying(request),
        },
    )


def faq(request):
    return render(
        request, "fund/faq.html", {"funds": selectors.funds_public(), **verifying(request)}
    )


CHECK_LEDGER = settings.BASE_DIR / "docs" / "check_ledger.py"


@lru_cache(maxsize=1)
def check_ledger_file() -> tuple[bytes, str]:
    """docs/check_ledger.py as the site serves it, and its SHA-256 (hex)."""
    body = CHECK_LEDGER.read_bytes()
    return body, hashlib.sha256(body).hexdigest()


@require_safe
def check_ledger_script(request):
    """The verifier and monitor, standard library only, as a download; pages show its SHA-256."""
    body, digest = check_ledger_file()
    response = HttpResponse(body, content_type="text/x-python; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="check_ledger.py"'
    response["X-Content-SHA256"] = digest
    response["Cache-Control"] = "public, max-age=300"
    return response


def fund_daily(request, asset):
    """A fund's daily history (date, balance, change, inflows, outflows) over a period, with
    the same figures as CSV from the API."""
    fund = fund_or_404(asset_code=asset)
    form = DailyForm(request.GET)
    valid = form.is_valid()
    first, last = form.cleaned_data["first"], form.cleaned_data["last"]
    rows = selectors.fund_daily(fund=fund, first=first, last=last) if valid else []
    csv_params = urlencode(
        {"bucket": "day", "from": first.isoformat(), "to": last.isoformat(), "format": "csv"}
    )
    return render(
        request,
        "fund/fund_daily.html",
        {
            "fund": fund,
            "rows": rows,
            "form": form,
            "first": first,
            "last": last,
            "errors": {name: " ".join(e) for name, e in form.errors.items()},
            "csv_query": csv_params,
        },
    )
