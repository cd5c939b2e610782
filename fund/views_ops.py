"""The settlement console (/ops/): staff with the settlement permission start, check and answer
for settlements, deposits, withdrawals and schedules. Every action goes to the audit trail."""

import functools

from django import forms
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from fund import selectors
from fund.api.permissions import can_settle
from fund.errors import ConflictError
from fund.models import AdminAction, SettlementCycle
from fund.services.audit import Audit, admin_action_record
from fund.services.cycles import fund_schedule_update
from fund.services.ledger import fund_deposit, fund_withdraw
from fund.services.settlement import settlement_cycle_close_now, settlement_preview
from fund.tasks import settle_cycle

Status = SettlementCycle.Status


def settlement_staff_required(view):
    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not can_settle(request.user):
            raise PermissionDenied(
                "The settlement console needs staff with the settlement permission."
            )
        return view(request, *args, **kwargs)

    return wrapper


@settlement_staff_required
def index(request):
    cycles = SettlementCycle.objects.select_related("fund__asset")
    groups = [
        ("Failed", cycles.filter(status=Status.FAILED).order_by("starts_at")),
        ("Settling", cycles.filter(status=Status.SETTLING).order_by("starts_at")),
        (
            "Closed, waiting for the grace period",
            cycles.filter(status=Status.CLOSED).order_by("starts_at"),
        ),
        ("Open", cycles.filter(status=Status.OPEN).order_by("fund__asset__code", "starts_at")),
        ("Recently settled", cycles.filter(status=Status.SETTLED).order_by("-settled_at")[:12]),
    ]
    return render(request, "ops/index.html", {"groups": groups, "funds": selectors.funds_public()})


@settlement_staff_required
def cycle(request, pk):
    cycle = selectors.cycle_get(cycle_id=pk)
    preview = None
    if cycle.status != Status.SETTLED:
        result = settlement_preview(cycle_id=cycle.id)
        admin_action_record(
            audit=Audit.from_request(request),
            action=AdminAction.Action.PREVIEW,
            fund=cycle.fund,
            cycle=cycle,
            details={"loss": cycle.fund.asset.format(result.loss)},
        )
        preview = selectors.settlement_preview_data(cycle=cycle, result=result)
        preview["chart"] = {
            "distribution": selectors.distribution_from_amounts(
                result.amounts, cycle.fund.asset.precision
            )
        }
    following = cycle.status in (Status.SETTLING,) or (
        cycle.status == Status.CLOSED and request.GET.get("follow")
    )
    return render(
        request,
        "ops/cycle.html",
        {
            "cycle": cycle,
            "preview": preview,
            "following": following,
            "charts": preview["chart"] if preview and preview["participant_count"] else {},
        },
    )


@require_POST
@settlement_staff_required
def settle(request, pk):
    if request.POST.get("confirm") != "yes":
        messages.error(request, "Tick the confirmation to settle this cycle.")
        return redirect("ops:cycle", pk=pk)
    try:
        cycle = settlement_cycle_close_now(cycle_id=pk, audit=Audit.from_request(request))
    except (ValidationError, ConflictError) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
        return redirect("ops:cycle", pk=pk)
    settle_cycle.delay(cycle.id, ignore_grace=True)
    messages.success(request, f"Settlement of cycle {cycle.id} sent to the workers.")
    return redirect(f"{request.path.rsplit('settle/', 1)[0]}?follow=1")


class MoneyMoveForm(forms.Form):
    kind = forms.ChoiceField(choices=[("deposit", "Deposit"), ("withdrawal", "Withdrawal")])
    amount = forms.CharField(
        max_length=60, help_text="A positive amount, at most the asset's decimals."
    )
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=2000,
        help_text="Published with the record.",
    )


@settlement_staff_required
def fund_move(request, asset):
    fund = selectors.fund_get(asset_code=asset)
    form = MoneyMoveForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        service = fund_deposit if form.cleaned_data["kind"] == "deposit" else fund_withdraw
        try:
            record = service(
                asset_code=fund.asset.code,
                amount=form.cleaned_data["amount"],
                reason=form.cleaned_data["reason"],
                audit=Audit.from_request(request),
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(
                request,
                f"{record.get_kind_display()} of {fund.asset.format(abs(record.amount_units))} "
                f"{fund.asset.code} recorded as {fund.asset.code} #{record.seq}.",
            )
            return redirect("ops:fund-move", asset=fund.asset.code)
    return render(request, "ops/fund_move.html", {"fund": fund, "form": form})


class ScheduleForm(forms.Form):
    anchor = forms.DateTimeField(
        label="Anchor: start of the first cycle (UTC)",
        help_text="Can change only before the first cycle.",
    )
    cycle_seconds = forms.CharField(label="Cycle length (seconds)")
    grace_seconds = forms.CharField(label="Grace period (seconds)")
    fund_ratio = forms.CharField(label="Fund share (0 to 1)")
    screening_ratio = forms.CharField(label="Screening ratio (0 to 1)")


@settlement_staff_required
def fund_schedule(request, asset):
    fund = selectors.fund_get(asset_code=asset)
    initial = {name: getattr(fund, name) for name in ScheduleForm.base_fields}
    form = ScheduleForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            fund_schedule_update(
                asset_code=fund.asset.code, audit=Audit.from_request(request), **form.cleaned_data
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(
                request,
                f"The {fund.asset.code} schedule is changed; it applies from the next cycle.",
            )
            return redirect("ops:index")
    return render(request, "ops/fund_schedule.html", {"fund": fund, "form": form})


@settlement_staff_required
def audit(request):
    return render(request, "ops/audit.html", {"actions": selectors.admin_actions()[:200]})
