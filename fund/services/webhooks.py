"""Webhooks: every event of the outbox, posted to every active endpoint that asked for its kind,
signed per Standard Webhooks (the `standardwebhooks` package), at least once.

How an event travels (all of it after the event's own commit, none of it in the change's
transaction):
1. **Fan-out** (`webhooks_fan_out`): for each active endpoint, under its row lock, the events after
   its cursor become delivery rows (one per endpoint and event, unique), and the cursor moves on,
   in one transaction: a worker killed half-way leaves the cursor where it was, and the next run
   writes the same rows (the unique key keeps them once).
2. **Delivery** (`webhook_endpoint_deliver`): a worker leases the endpoint's oldest due delivery
   (WEBHOOK_LEASE_SECONDS, at least twice the POST's deadline), posts it
   (fund/services/webhook_http.py: the whole exchange within WEBHOOK_TIMEOUT_SECONDS, no
   redirects, public addresses only), and writes what came back if the lease is still its own
   (an attempt that outlived its lease, or one overtaken by "send again", is dropped). A worker
   killed while posting leaves the lease to run out; the delivery is then due again and sent
   again, so receivers dedupe by `webhook-id`. Two runs for one endpoint may overlap (each takes
   other deliveries): receivers order by `webhook-sequence`, not by arrival.
3. **Retries**: a failed attempt (no answer, a redirect, any status but 2xx) is tried again after
   WEBHOOK_RETRY_BASE_SECONDS × 4^(attempts − 1), capped at WEBHOOK_RETRY_MAX_WAIT_SECONDS, each
   wait drawn between 0.75× and 1.25× of that before the cap (jitter, so that many failed
   deliveries do not come back at once); no try is scheduled more than WEBHOOK_RETRY_FOR_SECONDS
   (three days) after the delivery was made, sent again or its endpoint switched back on: the one
   that would be is the last, at the three-day mark.
   A 410 Gone switches the endpoint off at once; an endpoint that has failed every attempt for
   WEBHOOK_RETRY_FOR_SECONDS is switched off too, with a notice in the console and an email to
   the settlement staff.

Each request carries `webhook-id` (`evt_<seq>`, the same for every attempt), `webhook-timestamp`
(the attempt's Unix time), `webhook-signature` (`v1,<base64 HMAC-SHA256>` of
`id.timestamp.body` under the endpoint's secret) and `webhook-sequence` (the event's seq, which
receivers can order by); the body is `{"type", "timestamp", "seq", "data"}`.
"""

import base64
import json
import logging
import random
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone
from standardwebhooks import Webhook

from config.celery import dispatch_or_log
from fund.models import AdminAction, Event, WebhookDelivery, WebhookEndpoint
from fund.services import webhook_http
from fund.services.audit import Audit, admin_action_record

logger = logging.getLogger(__name__)
Status = WebhookDelivery.Status
FAN_OUT_BATCH = 2000
EVENT_KINDS = tuple(Event.Kind.values)


# --- Endpoints (staff with the settlement permission; every change audited) ----------------------


def secret_new() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _event_types(value) -> list[str]:
    if not isinstance(value, list | tuple) or not value:
        raise ValidationError({"event_types": "Choose at least one event type."})
    if len(value) > len(EVENT_KINDS) or not all(isinstance(v, str) for v in value):
        raise ValidationError({"event_types": "Give the event types as a list of names."})
    unknown = [v for v in value if v not in EVENT_KINDS]
    if unknown:
        raise ValidationError(
            {
                "event_types": f"Unknown event type {unknown[0][:40]!r}: choose from "
                + ", ".join(EVENT_KINDS)
                + "."
            }
        )
    return [kind for kind in EVENT_KINDS if kind in value]


def _description(value) -> str:
    if not isinstance(value, str) or len(value) > 200:
        raise ValidationError({"description": "Give the description as text of at most 200 "
                                              "characters."})  # fmt: skip
    return value


def _endpoint_view(endpoint: WebhookEndpoint) -> dict:
    """What the audit trail keeps of an endpoint (never its secret)."""
    return {
        "endpoint": endpoint.id,
        "url": endpoint.url,
        "event_types": endpoint.event_types,
        "description": endpoint.description,
        "active": endpoint.active,
    }


@dataclass(frozen=True)
class EndpointMade:
    endpoint: WebhookEndpoint
    secret: str  # shown once


def webhook_endpoint_create(*, url, event_types, description="", audit: Audit) -> EndpointMade:
    """A new endpoint, hearing of every event from now on; its secret is returned once."""
    webhook_http.url_check(url)
    kinds = _event_types(event_types)
    description = _description(description)
    secret = secret_new()
    with transaction.atomic():
        last = Event.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
        endpoint = WebhookEndpoint.objects.create(
            url=url, event_types=kinds, description=description, secret=secret, cursor=last,
            created_by=audit.actor,
        )  # fmt: skip
        admin_action_record(
            audit=audit, action=AdminAction.Action.WEBHOOK_CREATE, details=_endpoint_view(endpoint)
        )
    return EndpointMade(endpoint, secret)


def webhook_endpoint_update(
    *, endpoint_id: int, audit: Audit, url=None, event_types=None, description=None, active=None
) -> WebhookEndpoint:
    """Changes what is given; switching an endpoint back on clears its failure and makes its
    pending deliveries due now."""
    if url is not None:
        webhook_http.url_check(url)
    kinds = None if event_types is None else _event_types(event_types)
    if description is not None:
        description = _description(description)
    if active is not None and not isinstance(active, bool):
        raise ValidationError({"active": "Give active as true or false."})
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint_id)
        before = _endpoint_view(endpoint)
        if url is not None:
            endpoint.url = url
        if kinds is not None:
            endpoint.event_types = kinds
        if description is not None:
            endpoint.description = description
        if active is not None and active != endpoint.active:
            endpoint.active = active
            if active:
                endpoint.disabled_reason, endpoint.disabled_at = "", None
                endpoint.failing_since = None
                now = timezone.now()  # each pending delivery: due now, a new three-day schedule
                endpoint.deliveries.filter(status=Status.PENDING).update(
                    next_attempt_at=now, retry_from=now, attempts=0
                )
            else:
                endpoint.disabled_reason = f"Switched off by {audit.actor}."
                endpoint.disabled_at = timezone.now()
        endpoint.save()
        after = _endpoint_view(endpoint)
        changed = {k: after[k] for k in after if after[k] != before[k]}
        if changed:
            admin_action_record(
                audit=audit,
                action=AdminAction.Action.WEBHOOK_UPDATE,
                details={"endpoint": endpoint.id, "before": {k: before[k] for k in changed},
                         "after": changed},
            )  # fmt: skip
    return endpoint


def webhook_endpoint_new_secret(*, endpoint_id: int, audit: Audit) -> EndpointMade:
    """Replaces the endpoint's secret (shown once); every later attempt is signed with it."""
    secret = secret_new()
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint_id)
        endpoint.secret = secret
        endpoint.save(update_fields=["secret"])
        admin_action_record(
            audit=audit, action=AdminAction.Action.WEBHOOK_SECRET, details={"endpoint": endpoint.id}
        )
    return EndpointMade(endpoint, secret)


def webhook_delivery_resend(*, delivery_id: int, endpoint_id: int, audit: Audit) -> WebhookDelivery:
    """Sends a delivery again ("send again"), whatever became of it: due now, with a new
    three-day schedule."""
    now = timezone.now()
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().filter(pk=delivery_id).first()
        if delivery is None or delivery.endpoint_id != endpoint_id:
            raise WebhookDelivery.DoesNotExist
        delivery.status = Status.PENDING
        delivery.next_attempt_at = now
        delivery.retry_from = now
        delivery.attempts = 0  # a new schedule: its first retry comes 30 s after
        delivery.leased_until = None
        delivery.lease = ""  # an attempt under way now is not this one's
        delivery.save(
            update_fields=["status", "next_attempt_at", "retry_from", "attempts", "leased_until",
                           "lease"]
        )  # fmt: skip
        admin_action_record(
            audit=audit,
            action=AdminAction.Action.WEBHOOK_RESEND,
            details={"endpoint": endpoint_id, "delivery": delivery.id, "event": delivery.event_id},
        )
    transaction.on_commit(lambda: _send_later(endpoint_id))
    return delivery


# --- Fan-out and delivery (Celery) ---------------------------------------------------------------


def webhooks_fan_out(*, batch: int = FAN_OUT_BATCH) -> dict[int, int]:
    """Writes the deliveries of every event after each active endpoint's cursor; returns how many
    each endpoint got. Idempotent, and safe beside another run (the endpoint's row lock)."""
    made = {}
    for endpoint_id in WebhookEndpoint.objects.filter(active=True).values_list("id", flat=True):
        made[endpoint_id] = 0
        while True:
            count, more = _fan_out_one(endpoint_id, batch)
            made[endpoint_id] += count
            if not more:
                break
    return made


def _fan_out_one(endpoint_id: int, batch: int) -> tuple[int, bool]:
    now = timezone.now()
    with transaction.atomic():
        endpoint = (
            WebhookEndpoint.objects.select_for_update().filter(pk=endpoint_id, active=True).first()
        )
        if endpoint is None:
            return 0, False
        events = list(
            Event.objects.filter(seq__gt=endpoint.cursor)
            .order_by("seq")
            .values_list("id", "seq", "kind")[:batch]
        )
        if not events:
            return 0, False
        kinds = set(endpoint.event_types)
        rows = [
            WebhookDelivery(
                endpoint_id=endpoint_id,
                event_id=event_id,
                next_attempt_at=now,
                created_at=now,
                retry_from=now,
            )  # fmt: skip
            for event_id, _seq, kind in events
            if kind in kinds
        ]
        WebhookDelivery.objects.bulk_create(rows, ignore_conflicts=True)
        endpoint.cursor = events[-1][1]
        endpoint.save(update_fields=["cursor"])
    return len(rows), len(events) == batch


def endpoints_due(now: datetime | None = None) -> list[int]:
    """The active endpoints with a delivery due (not leased)."""
    now = now or timezone.now()
    return list(
        WebhookDelivery.objects.filter(_due(now), endpoint__active=True)
        .values_list("endpoint_id", flat=True)
        .distinct()
    )


def _due(now) -> Q:
    return Q(status=Status.PENDING, next_attempt_at__lte=now) & (
        Q(leased_until__isnull=True) | Q(leased_until__lt=now)
    )


@dataclass(frozen=True)
class Run:
    delivered: int
    failed: int
    more: bool  # deliveries still due when the run's time was up


def webhook_endpoint_deliver(*, endpoint_id: int, budget_seconds: float = 60) -> Run:
    """Sends the endpoint's due deliveries in event order, one at a time, for at most about
    `budget_seconds`; stops at the first failure (the others keep their own schedule)."""
    deadline = time.monotonic() + budget_seconds
    delivered = failed = 0
    while True:
        if time.monotonic() >= deadline:
            return Run(delivered, failed, more=True)
        claimed = _claim(endpoint_id)
        if claimed is None:
            return Run(delivered, failed, more=False)
        delivery, endpoint, event = claimed
        answer = webhook_http.post(endpoint.url, *_request(endpoint, event))
        if _record(delivery.id, endpoint.id, delivery.lease, answer):
            delivered += 1
        else:
            failed += 1
            return Run(delivered, failed, more=False)


def lease_seconds() -> float:
    """How long a delivery being sent is its worker's: never less than twice the POST's
    deadline, so that no other worker sends it while an attempt can still be under way."""
    return max(settings.WEBHOOK_LEASE_SECONDS, 2 * settings.WEBHOOK_TIMEOUT_SECONDS)


def _claim(endpoint_id: int):
    now = timezone.now()
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(_due(now), endpoint_id=endpoint_id, endpoint__active=True)
            .order_by("event_id")
            .first()
        )
        if delivery is None:
            return None
        delivery.leased_until = now + timedelta(seconds=lease_seconds())
        delivery.lease = secrets.token_hex(8)
        delivery.attempts += 1
        delivery.save(update_fields=["leased_until", "lease", "attempts"])
        endpoint = WebhookEndpoint.objects.get(pk=endpoint_id)
        event = Event.objects.select_related("fund__asset").get(pk=delivery.event_id)
    return delivery, endpoint, event


def event_payload(event: Event) -> dict:
    return {
        "type": event.kind,
        "timestamp": event.created_at.isoformat(),
        "seq": event.seq,
        "data": event.data,
    }


def _request(endpoint: WebhookEndpoint, event: Event) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event_payload(event), separators=(",", ":"), sort_keys=True)
    msg_id = f"evt_{event.seq}"
    now = timezone.now()
    return body.encode(), {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(endpoint.secret).sign(msg_id, now, body),
        "webhook-sequence": str(event.seq),
        "User-Agent": "InsuranceFundPortal-Webhooks/1",
    }


def retry_wait(attempts: int) -> float:
    """Seconds before the next try after `attempts` failed ones: jittered, then capped."""
    base = settings.WEBHOOK_RETRY_BASE_SECONDS * 4 ** min(attempts - 1, 30)
    return min(base * random.uniform(0.75, 1.25), settings.WEBHOOK_RETRY_MAX_WAIT_SECONDS)


def _record(delivery_id: int, endpoint_id: int, lease: str, answer: webhook_http.Answer) -> bool:
    """Writes an attempt's outcome, if the delivery is still this attempt's (its lease: sent
    again meanwhile, or taken by another worker after the lease ran out, it is not, and the
    outcome is dropped); True when delivered."""
    now = timezone.now()
    ok = answer.status is not None and 200 <= answer.status < 300
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint_id)
        delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
        if delivery.lease != lease or delivery.status != Status.PENDING:
            logger.info("delivery %s: a stale attempt's outcome dropped", delivery_id)
            return ok
        delivery.last_attempt_at = now
        delivery.last_status = answer.status
        delivery.last_latency_ms = answer.latency_ms
        delivery.last_error = answer.error or (
            "" if ok or answer.status is None else f"HTTP {answer.status}"
        )
        delivery.leased_until = None
        delivery.lease = ""
        if ok:
            delivery.status = Status.DELIVERED
            delivery.delivered_at = now
            delivery.next_attempt_at = None
        elif answer.status == 410:
            delivery.status = Status.FAILED
            delivery.next_attempt_at = None
            _switch_off(endpoint, f"The endpoint answered 410 Gone at {now:%Y-%m-%d %H:%M:%S} "
                                  "UTC: it is switched off.")  # fmt: skip
        else:
            deadline = delivery.retry_from + timedelta(seconds=settings.WEBHOOK_RETRY_FOR_SECONDS)
            if now >= deadline:
                delivery.status = Status.FAILED
                delivery.next_attempt_at = None
            else:
                delivery.next_attempt_at = min(
                    now + timedelta(seconds=retry_wait(delivery.attempts)), deadline
                )
        delivery.save()
        if ok:
            if endpoint.failing_since is not None:
                endpoint.failing_since = None
                endpoint.save(update_fields=["failing_since"])
        elif endpoint.active:
            # The failure is counted from this delivery's start at the latest: a delivery that
            # spends its three days failing switches the endpoint off at its last attempt.
            endpoint.failing_since = endpoint.failing_since or min(now, delivery.retry_from)
            failing = (now - endpoint.failing_since).total_seconds()
            if failing >= settings.WEBHOOK_RETRY_FOR_SECONDS:
                _switch_off(
                    endpoint,
                    f"Every attempt failed from {endpoint.failing_since:%Y-%m-%d %H:%M:%S} to "
                    f"{now:%Y-%m-%d %H:%M:%S} UTC: the endpoint is switched off.",
                )
            else:
                endpoint.save(update_fields=["failing_since"])
    return ok


def url_shown(url: str) -> str:
    """An endpoint's URL for logs and emails: without its query, which may carry a token."""
    return url.split("?", 1)[0] + ("?…" if "?" in url else "")


def _switch_off(endpoint: WebhookEndpoint, reason: str) -> None:
    endpoint.active = False
    endpoint.disabled_reason = reason[:300]
    endpoint.disabled_at = timezone.now()
    endpoint.save(update_fields=["active", "disabled_reason", "disabled_at", "failing_since"])
    logger.warning("webhook endpoint %s (%s): %s", endpoint.id, url_shown(endpoint.url), reason)
    endpoint_id = endpoint.id
    transaction.on_commit(lambda: _notify_switched_off(endpoint_id))


def _notify_switched_off(endpoint_id: int) -> None:
    from fund.tasks import notify_webhook_switched_off  # the tasks call the services

    dispatch_or_log(
        notify_webhook_switched_off,
        endpoint_id,
        failed=f"the notice of endpoint {endpoint_id} switched off was not sent",
    )


def _send_later(endpoint_id: int) -> None:
    from fund.tasks import deliver_webhooks

    dispatch_or_log(
        deliver_webhooks,
        endpoint_id,
        failed=f"endpoint {endpoint_id}'s deliveries were not sent: the sweep sends them",
    )


def delivery_stats(endpoints) -> dict[int, dict[str, int]]:
    """Counts for the console, in one query: each endpoint's pending, delivered and failed
    deliveries."""
    stats = {endpoint.id: {} for endpoint in endpoints}
    rows = (
        WebhookDelivery.objects.filter(endpoint_id__in=stats)
        .order_by()
        .values_list("endpoint_id", "status")
        .annotate(n=Count("id"))
    )
    for endpoint_id, status, n in rows:
        stats[endpoint_id][status] = n
    return stats


def switched_off_notice_send(*, endpoint_id: int) -> int:
    """Emails every active settlement staff member with an address that the endpoint was
    switched off; the console shows the same notice. Returns how many were sent."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission
    from django.core.mail import send_mass_mail

    endpoint = WebhookEndpoint.objects.get(pk=endpoint_id)
    permission = Permission.objects.filter(
        codename="settle_cycles", content_type__app_label="fund"
    ).first()
    users = get_user_model().objects.filter(is_active=True, is_staff=True).exclude(email="")
    users = users.filter(
        Q(is_superuser=True) | Q(user_permissions=permission) | Q(groups__permissions=permission)
    ).distinct()
    site = settings.SITE_URL.rstrip("/")
    body = (
        f"The webhook endpoint {url_shown(endpoint.url)} (#{endpoint.id}) is switched off.\n\n"
        f"{endpoint.disabled_reason}\n\nIts pending deliveries wait; switch it on again in the "
        "console when the receiver is back, and they are sent:\n"
        f"{site}/ops/webhooks/{endpoint.id}/\n"
    )
    subject = f"Webhook endpoint #{endpoint.id} switched off"
    return send_mass_mail([(subject, body, None, [u.email]) for u in users], fail_silently=False)
