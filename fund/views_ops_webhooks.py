"""The console's webhooks (/ops/webhooks/): staff with the settlement permission add endpoints
(the secret shown once), change or switch them off, read each one's delivery log and send a
delivery again. Every change goes to the audit trail (fund/services/webhooks.py)."""

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from fund.models import Event, WebhookDelivery, WebhookEndpoint
from fund.services import webhooks
from fund.services.audit import Audit
from fund.views_ops import _on_form, settlement_staff_required

SECRET_KEY = "webhook-secret-once"


class EndpointForm(forms.Form):
    url = forms.CharField(
        label="URL", max_length=500, help_text="https://… on a public address; redirects are not "
        "followed."
    )  # fmt: skip
    description = forms.CharField(max_length=200, required=False)
    event_types = forms.MultipleChoiceField(
        choices=Event.Kind.choices, widget=forms.CheckboxSelectMultiple, label="Event types"
    )


class EndpointEditForm(EndpointForm):
    active = forms.BooleanField(
        required=False, help_text="Switched on again, its pending deliveries are sent at once."
    )


@settlement_staff_required
def webhooks_index(request):
    form = EndpointForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        made = _on_form(
            form,
            lambda: webhooks.webhook_endpoint_create(
                audit=Audit.from_request(request), **form.cleaned_data
            ),
        )
        if made is not None:
            request.session[SECRET_KEY] = [made.endpoint.id, made.secret]
            return redirect("ops:webhook", pk=made.endpoint.id)
    endpoints = list(WebhookEndpoint.objects.order_by("-active", "id"))
    stats = webhooks.delivery_stats(endpoints)
    endpoints = [{"endpoint": e, "stats": stats[e.id]} for e in endpoints]
    return render(request, "ops/webhooks.html", {"endpoints": endpoints, "form": form})


def _secret_once(request, endpoint_id: int) -> str | None:
    shown = request.session.get(SECRET_KEY)
    if shown and shown[0] == endpoint_id:
        del request.session[SECRET_KEY]
        return shown[1]
    return None


@settlement_staff_required
def webhook(request, pk):
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    initial = {
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": endpoint.event_types,
        "active": endpoint.active,
    }
    form = EndpointEditForm(request.POST if request.method == "POST" else None, initial=initial)
    if request.method == "POST" and form.is_valid():
        changed = _on_form(
            form,
            lambda: webhooks.webhook_endpoint_update(
                endpoint_id=endpoint.id, audit=Audit.from_request(request), **form.cleaned_data
            ),
        )
        if changed is not None:
            messages.success(request, f"Endpoint #{endpoint.id} saved.")
            return redirect("ops:webhook", pk=endpoint.id)
    status = request.GET.get("status", "")
    deliveries = endpoint.deliveries.select_related("event").order_by("-event_id")
    if status in WebhookDelivery.Status.values:
        deliveries = deliveries.filter(status=status)
    page = Paginator(deliveries, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "ops/webhook.html",
        {
            "endpoint": endpoint,
            "form": form,
            "page": page,
            "status": status,
            "statuses": WebhookDelivery.Status.choices,
            "stats": webhooks.delivery_stats([endpoint])[endpoint.id],
            "secret": _secret_once(request, endpoint.id),
        },
    )


@require_POST
@settlement_staff_required
def webhook_secret(request, pk):
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    made = webhooks.webhook_endpoint_new_secret(
        endpoint_id=endpoint.id, audit=Audit.from_request(request)
    )
    request.session[SECRET_KEY] = [made.endpoint.id, made.secret]
    messages.success(request, "A new secret: every later attempt is signed with it.")
    return redirect("ops:webhook", pk=endpoint.id)


@require_POST
@settlement_staff_required
def webhook_resend(request, pk, delivery):
    get_object_or_404(WebhookEndpoint, pk=pk)
    try:
        sent = webhooks.webhook_delivery_resend(
            delivery_id=delivery, endpoint_id=pk, audit=Audit.from_request(request)
        )
    except WebhookDelivery.DoesNotExist:
        raise Http404("No such delivery.") from None
    messages.success(request, f"Event {sent.event_id}'s delivery is sent again.")
    return redirect("ops:webhook", pk=pk)
