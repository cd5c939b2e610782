"""Traders' pages: their own statements, and how each apportionment was computed."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Sum
from django.shortcuts import redirect, render
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_POST

from fund import selectors
from fund.filters import StatementFilter
from fund.lookups import statement_or_404
from fund.presentation import apportionment_computation
from fund.services import notices
from fund.views import csv_query, filter_errors, query_without
from statements.models import ApiToken, Asset, Profile, Statement
from statements.services import PERSONAL_TOKENS_MAX, api_token_create, api_token_revoke


def _account(request):
    account = getattr(request.user, "trader_account", None)
    if account is None:
        raise PermissionDenied("This login has no trading account.")
    return account


@cache_control(private=True, no_store=True)  # a trader's own page
@login_required
def my_statements(request):
    account = _account(request)
    filters = StatementFilter(request.GET, queryset=selectors.statements_of(account=account))
    rows = filters.qs
    assets = Asset.objects.in_bulk()
    totals = [
        {"asset": assets[row["asset_id"]], "units": row["total"], "count": row["count"]}
        for row in rows.order_by()
        .values("asset_id")
        .annotate(total=Sum("amount_units"), count=Count("id"))
    ]
    page = Paginator(rows, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "statements/my_statements.html",
        {
            "page": page,
            "totals": sorted(totals, key=lambda t: t["asset"].code),
            "query": query_without(request, "page"),
            "assets": Asset.objects.order_by("code"),
            "asset": request.GET.get("asset", ""),
            "types": Statement.Type.choices,
            "selected_types": filters.form.cleaned_data.get("type") or [],
            "errors": filter_errors(filters),
            "csv_query": csv_query(filters),
        },
    )


@cache_control(private=True, no_store=True)  # a trader's own page
@login_required
def my_statement(request, pk):
    statement = statement_or_404(account=_account(request), statement_id=pk)
    apportionment = getattr(statement, "apportionment", None)
    computation = apportionment_computation(apportionment=apportionment) if apportionment else None
    return render(
        request,
        "statements/statement_detail.html",
        {"statement": statement, "c": computation},
    )


@cache_control(private=True, no_store=True)  # a trader's own page
@login_required
def my_positions(request):
    """The trader's profitable positions in settled cycles, each in its cycle's Merkle root
    (apportioned or not), with its proof to download."""
    positions = selectors.positions_of(account=_account(request))
    page = Paginator(positions, 50).get_page(request.GET.get("page"))
    return render(request, "statements/my_positions.html", {"page": page})


@cache_control(private=True, no_store=True)  # a trader's own page
@login_required
def my_notifications(request):
    """Each apportionment of the trader's, newest first, linked to its computation; opening the
    page marks everything shown as read."""
    account = _account(request)
    read_at = notices.profile_of(request.user).notices_read_at
    rows = (
        Statement.objects.filter(account=account, type=Statement.Type.APPORTIONMENT)
        .select_related("asset", "apportionment__position__contract", "apportionment__cycle")
        .order_by("-created_at", "-id")
    )
    page = Paginator(rows, 30).get_page(request.GET.get("page"))
    items = [
        {"statement": s, "unread": read_at is None or s.created_at > read_at}
        for s in page.object_list
    ]
    if items and page.number == 1:
        notices.notices_mark_read(request.user, up_to=items[0]["statement"].created_at)
    return render(
        request,
        "statements/my_notifications.html",
        {"page": page, "items": items, "unread": sum(i["unread"] for i in items)},
    )


class SettingsForm(forms.ModelForm):
    class Meta:
        model = Profile
        fields = ["email_apportionments"]


@cache_control(private=True, no_store=True)  # a person's own page
@login_required
def my_settings(request):
    """The account page: who is logged in, their address, the apportionment emails' opt-out."""
    profile = notices.profile_of(request.user)
    form = SettingsForm(request.POST if request.method == "POST" else None, instance=profile)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(
            request,
            "Saved: you get an email for each settlement that apportions one of your positions."
            if form.cleaned_data["email_apportionments"]
            else "Saved: no more apportionment emails. Your notifications here go on.",
        )
        return redirect("fund:my-settings")
    return render(
        request,
        "statements/my_settings.html",
        {"form": form, "account": getattr(request.user, "trader_account", None)},
    )


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="What it is for, e.g. “tax export script”: you will see it here.",
    )


@cache_control(private=True, no_store=True)  # a trader's own page; a new token is shown once
@login_required
def my_tokens(request):
    """The trader's personal API tokens: make one (shown once, on this answer only) and revoke
    them. A token reads the trader's own statements and positions, nothing else."""
    _account(request)
    form = TokenForm(request.POST if request.method == "POST" else None)
    created = None
    if request.method == "POST" and form.is_valid():
        try:
            row, token = api_token_create(
                user=request.user, kind=ApiToken.Kind.PERSONAL, name=form.cleaned_data["name"]
            )
        except ValidationError as exc:
            for errors in exc.message_dict.values():
                form.add_error("name", errors)
        else:
            created = {"row": row, "token": token}
            form = TokenForm()
    tokens = ApiToken.objects.filter(user=request.user, kind=ApiToken.Kind.PERSONAL).order_by(
        "revoked_at", "-created_at"
    )
    return render(
        request,
        "statements/my_tokens.html",
        {"form": form, "tokens": tokens, "created": created, "limit": PERSONAL_TOKENS_MAX},
    )


@require_POST
@login_required
def my_token_revoke(request, prefix):
    _account(request)
    try:
        row = api_token_revoke(prefix=prefix, user=request.user)
    except ValidationError:
        messages.error(request, "There is no such token of yours.")
    else:
        messages.success(request, f"The token “{row.name}” ({row.prefix}…) is revoked.")
    return redirect("fund:my-tokens")
