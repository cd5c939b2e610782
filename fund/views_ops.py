"""The settlement console (/ops/): staff with the settlement permission start, check and answer
for settlements, deposits, withdrawals and schedules. Every action goes to the audit trail."""

import functools
import re
import uuid
from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_POST

from fund import charts, selectors
from fund.api.permissions import can_settle
from fund.errors import SEND_FAILED, ConflictError
from fund.filters import AdminActionFilter
from fund.lookups import cycle_or_404, fund_or_404
from fund.models import AdminAction, Fund, SettlementCycle, WebhookEndpoint
from fund.presentation import settlement_preview_data
from fund.services.audit import Audit
from fund.services.cycles import fund_schedule_update, schedule_ratio
from fund.services.idempotency import idempotency_fingerprint, idempotency_once
from fund.services.ledger import (
    correction_errors,
    fund_deposit,
    fund_record_correct,
    fund_withdraw,
    manual_amount_and_reason,
)
from fund.services.locks import BooksBusy
from fund.services.settlement import (
    settlement_claim_alive,
    settlement_cycle_resend,
    settlement_cycle_settle_now,
    settlement_preview_record,
)
from fund.tasks import broker_unreachable
from fund.views import csv_query, filter_errors, query_without
from statements.money import format_grouped

Status = SettlementCycle.Status


def settlement_staff_required(view):
    @functools.wraps(view)
    @cache_control(private=True, no_store=True)  # staff's pages: no cache on the way keeps them
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
    unapplied = cycles.filter(
        status=Status.SETTLED, participant_count__gt=0, application__isnull=True
    ).order_by("settled_at")
    late_before = timezone.now() - timedelta(seconds=settings.APPLY_ALERT_SECONDS)
    return render(
        request,
        "ops/index.html",
        {
            "groups": groups,
            "funds": selectors.funds_public(),
            "unapplied": unapplied[:50],
            "unapplied_count": unapplied.count(),
            "late_count": unapplied.filter(settled_at__lt=late_before).count(),
            "late_before": late_before,
            "alert_seconds": settings.APPLY_ALERT_SECONDS,
            "endpoints_off": WebhookEndpoint.objects.filter(active=False)
            .exclude(disabled_reason__startswith="Switched off by")
            .order_by("-disabled_at")[:10],
            "endpoints_failing": WebhookEndpoint.objects.filter(
                active=True, failing_since__isnull=False
            ).order_by("failing_since")[:10],
        },
    )


def _render_cycle(request, cycle, preview=None):
    following = cycle.status == Status.SETTLING or (
        cycle.status == Status.CLOSED and request.GET.get("follow")
    )
    charts = preview["chart"] if preview and preview["participant_count"] else {}
    context = {"cycle": cycle, "preview": preview, "following": following, "charts": charts}
    if cycle.status == Status.SETTLING:
        context["claim_alive"] = settlement_claim_alive(cycle=cycle)
        context["resend_form"] = ResendForm()
    return render(request, "ops/cycle.html", context)


@settlement_staff_required
def cycle(request, pk):
    """The cycle's status; a preview only when staff ask for one (preview below), so that the
    page that follows a settling cycle refreshes without computing or auditing anything."""
    return _render_cycle(request, cycle_or_404(cycle_id=pk))


@require_POST
@settlement_staff_required
def preview(request, pk):
    """Computes and audits a preview of the cycle's settlement, shown on the cycle's page."""
    cycle = cycle_or_404(cycle_id=pk)
    if cycle.status == Status.SETTLED:
        return redirect("ops:cycle", pk=pk)
    try:
        result = settlement_preview_record(cycle_id=cycle.id, audit=Audit.from_request(request))
    except BooksBusy as exc:
        messages.error(request, exc.message)
        return redirect("ops:cycle", pk=pk)
    data = settlement_preview_data(cycle=cycle, result=result, grouped=True)
    data["chart"] = {
        "distribution": charts.distribution_from_amounts(result.amounts, cycle.fund.asset.precision)
    }
    return _render_cycle(request, cycle, data)


@require_POST
@settlement_staff_required
def settle(request, pk):
    if request.POST.get("confirm") != "yes":
        messages.error(request, "Tick the confirmation to settle this cycle.")
        return redirect("ops:cycle", pk=pk)
    try:
        sent = settlement_cycle_settle_now(cycle_id=pk, audit=Audit.from_request(request))
    except (ValidationError, ConflictError, BooksBusy) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
        return redirect("ops:cycle", pk=pk)
    except Exception as exc:
        if not broker_unreachable(exc):
            raise
        messages.error(request, SEND_FAILED)
        return redirect("ops:cycle", pk=pk)
    messages.success(request, f"Settlement of cycle {sent.cycle.id} sent to the workers.")
    return redirect(f"{reverse('ops:cycle', args=[pk])}?follow=1")


@require_POST
@settlement_staff_required
def resend(request, pk):
    """Sends a settling cycle's settlement again when its worker died (the beat does so within
    DEAD_CLAIM_SECONDS too); says so and sends nothing while its posting is alive. Audited; a
    one-time token, so a double click sends once."""
    cycle = cycle_or_404(cycle_id=pk)
    form = ResendForm(request.POST)
    message = None
    if form.is_valid():

        def call():
            try:
                return settlement_cycle_resend(cycle_id=cycle.id, audit=Audit.from_request(request))
            except ConflictError as exc:  # alive, or no longer settling: a message, nothing kept
                raise ValidationError({"cycle": exc.message}) from exc

        try:
            message = _once(
                request,
                form,
                call,
                lambda sent: (
                    f"Cycle {sent.cycle.id}'s worker had died: its settlement is sent to the "
                    "workers again."
                ),
            )
        except Exception as exc:
            if not broker_unreachable(exc):
                raise
            messages.error(request, SEND_FAILED)
            return redirect("ops:cycle", pk=pk)
    if message is None:
        messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
        return redirect("ops:cycle", pk=pk)
    messages.success(request, message)
    return redirect(f"{reverse('ops:cycle', args=[pk])}?follow=1")


def _money_fields(form, request) -> dict:
    """What a deposit, withdrawal or correction takes from its form: amount, reason, who."""
    return {
        "amount": form.cleaned_data["amount"],
        "reason": form.cleaned_data["reason"],
        "audit": Audit.from_request(request),
    }


def _on_form(form, call):
    """Runs a service for a form: its result, or None with the service's field errors on the
    form (fields it does not have: the form's own) or the books' "busy" message."""
    try:
        return call()
    except ValidationError as exc:
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    except BooksBusy as exc:
        form.add_error(None, exc.message)
    return None


class OnceForm(forms.Form):
    """A form that moves money carries a one-time token: sent twice (a double click, a reload),
    it books once, and the second answer says what the first did."""

    token = forms.RegexField(regex=r"^[0-9a-f]{32}$", widget=forms.HiddenInput, required=False)

    def __init__(self, data=None, **kwargs):
        kwargs.setdefault("initial", {}).setdefault("token", uuid.uuid4().hex)
        super().__init__(data, **kwargs)


def _once(request, form, call, describe):
    """Runs `call` (a service, through _on_form) once per form token, in one transaction with
    the token's claim and the message it answered with. Returns that message, or None when the
    form has errors (then nothing is kept, and the form can be sent again)."""
    if not form.cleaned_data.get("token"):  # a form sent without its page (a script): no token
        result = _on_form(form, call)
        return None if result is None else describe(result)
    fields = {k: v for k, v in form.cleaned_data.items() if k in form.fields and k != "token"}

    def work():
        result = _on_form(form, call)
        return result, None if result is None else (200, {"message": describe(result)})

    try:
        once = idempotency_once(
            user=request.user,
            key=f"console:{form.cleaned_data['token']}",
            fingerprint=idempotency_fingerprint(request.path, fields),
            work=work,
        )
    except BooksBusy as exc:
        form.add_error(None, exc.message)
        return None
    if once.previous is not None:
        return "Sent already, and done once: " + once.previous.response.get("message", "")
    return None if once.result is None else describe(once.result)


class ResendForm(OnceForm):
    """Send a settling cycle's settlement again (its worker died): the token only."""


def reason_field(help_text: str) -> forms.CharField:
    """A manual record's written reason, published with it."""
    return forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), max_length=2000, help_text=help_text
    )


class MoneyForm(OnceForm):
    """A form that moves a fund's money: its amount and reason are checked together (every
    error at once), as plain decimal text of at most the asset's places, and the amount in units
    is kept for the confirmation page."""

    signed = False

    def __init__(self, data=None, *, fund, **kwargs):
        self.fund = fund
        super().__init__(data, **kwargs)

    def clean(self):
        data = super().clean()
        if "amount" in data:
            units, errors = manual_amount_and_reason(
                self.fund, data["amount"], data.get("reason", ""), signed=self.signed
            )
            for field, message in errors.items():
                if field not in self.errors:
                    self.add_error(field, message)
            data["units"] = units
        return data


class MoneyMoveForm(MoneyForm):
    kind = forms.ChoiceField(choices=[("deposit", "Deposit"), ("withdrawal", "Withdrawal")])
    amount = forms.CharField(
        max_length=60, strip=False, help_text="A positive amount, at most the asset's decimals."
    )
    reason = reason_field("Published with the record.")

    def clean(self):
        data = super().clean()
        units, kind = data.get("units"), data.get("kind")
        if units and kind == "withdrawal" and units > self.fund.balance_units and not self.errors:
            self.add_error(
                "amount",
                f"The fund holds {_shown(self.fund, self.fund.balance_units)} "
                f"{self.fund.asset.code}: a withdrawal never takes it below zero.",
            )
        return data


def _shown(fund, units: int) -> str:
    """An amount as the pages show it (grouped thousands, every decimal of the asset)."""
    return format_grouped(units, fund.asset.precision)


def _confirmation(request, fund, form, what: str, units: int, *, record=None):
    """The page that shows a money move's exact figures before it is booked."""
    return render(
        request,
        "ops/money_confirm.html",
        {
            "fund": fund,
            "form": form,
            "what": what,
            "record": record,
            "units": units,
            "after": fund.balance_units + units,
        },
    )


def _confirmed(request) -> bool:
    """A money form is booked only from its confirmation page ("confirm"); "edit" goes back
    to the filled form."""
    return request.POST.get("step") == "confirm"


@settlement_staff_required
def fund_move(request, asset):
    fund = fund_or_404(asset_code=asset)
    form = MoneyMoveForm(request.POST or None, fund=fund)
    if request.method == "POST" and form.is_valid() and request.POST.get("step") != "edit":
        units = form.cleaned_data["units"]
        kind = form.cleaned_data["kind"]
        signed = units if kind == "deposit" else -units
        if not _confirmed(request):
            return _confirmation(request, fund, form, kind.capitalize(), signed)
        service = fund_deposit if form.cleaned_data["kind"] == "deposit" else fund_withdraw
        message = _once(
            request,
            form,
            lambda: service(asset_code=fund.asset.code, **_money_fields(form, request)),
            lambda record: (
                f"{record.get_kind_display()} of "
                f"{_shown(fund, abs(record.amount_units))} {fund.asset.code} recorded as "
                f"{fund.asset.code} #{record.seq}."
            ),
        )
        if message is not None:
            messages.success(request, message)
            return redirect("ops:fund-move", asset=fund.asset.code)
    return render(request, "ops/fund_move.html", {"fund": fund, "form": form})


UNITS = [("60", "minutes"), ("3600", "hours"), ("86400", "days")]


class DurationWidget(forms.MultiWidget):
    """A duration as a whole number and its unit (minutes, hours, days)."""

    def __init__(self):
        super().__init__(
            [
                forms.TextInput(attrs={"inputmode": "numeric", "size": 6}),
                forms.Select(choices=UNITS),
            ]
        )

    def decompress(self, value):
        if value in (None, ""):
            return [None, "3600"]
        seconds = int(value)
        for size, _ in reversed(UNITS):
            if seconds and seconds % int(size) == 0:
                return [str(seconds // int(size)), size]
        return [str(seconds / 60), "60"]  # not whole minutes: shown as minutes


class DurationField(forms.MultiValueField):
    """Seconds, entered as a whole number of minutes, hours or days (ASCII digits only)."""

    widget = DurationWidget

    def __init__(self, *, low: int, high: int, **kwargs):
        self.low, self.high = low, high
        fields = (forms.CharField(max_length=9), forms.ChoiceField(choices=UNITS))
        super().__init__(fields, require_all_fields=True, **kwargs)
        # The two inputs' names for assistive technology (the label names the field).
        number, unit = self.widget.widgets
        number.attrs["aria-label"] = f"{self.label}: how many"
        unit.attrs["aria-label"] = f"{self.label}: unit"

    def compress(self, values):
        if not values:
            return None
        number, unit = values
        if not re.fullmatch(r"[0-9]{1,9}", number or ""):
            raise ValidationError("Enter a whole number (digits 0-9).")
        seconds = int(number) * int(unit)
        if not self.low <= seconds <= self.high:
            raise ValidationError(
                f"Enter from {_duration_text(self.low)} to {_duration_text(self.high)}."
            )
        return seconds


def _duration_text(seconds: int) -> str:
    """1 minute, 366 days, 0 minutes: the largest of the form's units that is whole."""
    for size, name in reversed(UNITS):
        if seconds % int(size) == 0 and (seconds or name == "minutes"):
            count = seconds // int(size)
            return f"{count} {name[:-1] if count == 1 else name}"
    return f"{seconds} seconds"


class ScheduleForm(forms.Form):
    anchor = forms.DateTimeField(
        label="Anchor: start of the first cycle (UTC)",
        help_text="Can change only before the first cycle.",
    )
    cycle_seconds = DurationField(label="Cycle length", low=60, high=366 * 86400)
    grace_seconds = DurationField(
        label="Grace period", low=0, high=86400, help_text="Up to one day (0 for none)."
    )
    fund_ratio = forms.CharField(label="Fund share (0 to 1)")
    screening_ratio = forms.CharField(label="Screening ratio (0 to 1)")

    def clean_fund_ratio(self):
        schedule_ratio(self.cleaned_data["fund_ratio"])  # every field's error at once
        return self.cleaned_data["fund_ratio"]

    def clean_screening_ratio(self):
        schedule_ratio(self.cleaned_data["screening_ratio"])
        return self.cleaned_data["screening_ratio"]

    def __init__(self, *args, fund, **kwargs):
        super().__init__(*args, **kwargs)
        if fund.cycles.exists():
            # The first cycle exists: the anchor is history, shown but not sent.
            self.fields["anchor"].disabled = True
            self.fields[
                "anchor"
            ].help_text = "Fixed: the first cycle started then; every later cycle follows from it."


@settlement_staff_required
def fund_schedule(request, asset):
    fund = fund_or_404(asset_code=asset)
    initial = {name: getattr(fund, name) for name in ScheduleForm.base_fields}
    form = ScheduleForm(request.POST or None, initial=initial, fund=fund)
    if request.method == "POST" and form.is_valid():
        changed = _on_form(
            form,
            lambda: fund_schedule_update(
                asset_code=fund.asset.code, audit=Audit.from_request(request), **form.cleaned_data
            ),
        )
        if changed is not None:
            messages.success(
                request,
                f"The {fund.asset.code} schedule is changed; it applies from the next cycle.",
            )
            return redirect("ops:index")
    return render(request, "ops/fund_schedule.html", {"fund": fund, "form": form})


@settlement_staff_required
def audit(request):
    """The audit trail: filtered by action, who, fund and period, 50 a page, the same
    selection as CSV from the admin API."""
    filters = AdminActionFilter(request.GET, queryset=selectors.admin_actions())
    page = Paginator(filters.qs, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "ops/audit.html",
        {
            "page": page,
            "actions": AdminAction.Action.choices,
            "selected_actions": filters.form.cleaned_data.get("action") or [],
            "assets": Fund.objects.values_list("asset__code", flat=True).order_by("asset__code"),
            "errors": filter_errors(filters),
            "query": query_without(request, "page"),
            "csv_query": csv_query(filters),
        },
    )


class CorrectionForm(MoneyForm):
    signed = True
    seq = forms.IntegerField(label="Record number (#)", min_value=1)
    amount = forms.CharField(
        max_length=60,
        strip=False,
        help_text="Signed: positive adds to the fund, negative takes out; at most the asset's "
        "decimals.",
    )
    reason = reason_field("Published with the correction, beside the record it corrects.")

    def clean(self):
        data = super().clean()
        if "seq" in data:
            record = selectors.fund_records(fund=self.fund).filter(seq=data["seq"]).first()
            if record is None:
                self.add_error("seq", f"{self.fund.asset.code} has no record #{data['seq']}.")
            else:
                data["record"] = record
                for field, message in correction_errors(
                    record=record, units=data.get("units") or 0
                ).items():
                    self.add_error("seq" if field == "record" else field, message)
        return data


@settlement_staff_required
def fund_correct(request, asset):
    fund = fund_or_404(asset_code=asset)
    form = CorrectionForm(request.POST or None, fund=fund, initial={"seq": request.GET.get("seq")})
    if request.method == "POST" and form.is_valid() and request.POST.get("step") != "edit":
        record, units = form.cleaned_data["record"], form.cleaned_data["units"]
        if not _confirmed(request):
            return _confirmation(
                request, fund, form, f"Correction of #{record.seq}", units, record=record
            )
        message = _once(
            request,
            form,
            lambda: fund_record_correct(record_id=record.id, **_money_fields(form, request)),
            lambda correction: (
                f"{fund.asset.code} #{record.seq} corrected by "
                f"{fund.asset.code} #{correction.seq} "
                f"({_shown(fund, correction.amount_units)})."
            ),
        )
        if message is not None:
            messages.success(request, message)
            return redirect("ops:fund-correct", asset=fund.asset.code)
    return render(request, "ops/fund_correct.html", {"fund": fund, "form": form})
