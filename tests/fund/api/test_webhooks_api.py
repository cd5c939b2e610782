"""Webhook endpoints through the admin API and the console: settlement staff only, every change
audited, the secret shown once, field errors as 400s (or form errors) that change nothing."""

import re

import pytest
from django.test import Client

from fund.models import AdminAction, Event, WebhookDelivery, WebhookEndpoint
from fund.tasks import fan_out_events
from tests.helpers import deposit

ALL = list(Event.Kind.values)


def make(client, receiver, **fields):
    body = {"url": receiver.url, "event_types": ["fund.records_appended"], **fields}
    return client.post("/api/v1/admin/webhooks", body, format="json")


def test_settlement_staff_add_list_change_and_resend(
    settlement_staff, receiver, usdt_fund, django_capture_on_commit_callbacks
):
    made = make(settlement_staff, receiver, description="wallet")
    assert made.status_code == 201, made.content
    body = made.json()
    assert body["secret"].startswith("whsec_") and body["active"] is True
    assert made["Cache-Control"] == "private, no-store"
    listed = settlement_staff.get("/api/v1/admin/webhooks").json()
    assert [e["id"] for e in listed] == [body["id"]] and "secret" not in listed[0]
    assert "secret" not in settlement_staff.get(f"/api/v1/admin/webhooks/{body['id']}").json()
    receiver.secret = body["secret"]
    deposit(usdt_fund, "3")
    fan_out_events()
    log = settlement_staff.get(f"/api/v1/admin/webhooks/{body['id']}/deliveries").json()
    (row,) = log["results"]
    assert row["status"] == "delivered" and row["attempts"] == 1 and row["last_status"] == 200
    assert row["event_type"] == "fund.records_appended"
    with django_capture_on_commit_callbacks(execute=True):
        again = settlement_staff.post(
            f"/api/v1/admin/webhooks/{body['id']}/deliveries/{row['id']}/resend"
        )
    assert again.status_code == 202 and len(receiver.received) == 2
    changed = settlement_staff.patch(
        f"/api/v1/admin/webhooks/{body['id']}", {"active": False}, format="json"
    )
    assert changed.status_code == 200 and changed.json()["active"] is False
    secret = settlement_staff.post(f"/api/v1/admin/webhooks/{body['id']}/secret")
    assert secret.status_code == 200 and secret.json()["secret"] != body["secret"]
    actions = list(AdminAction.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["webhook_create", "webhook_resend", "webhook_update", "webhook_secret"]


@pytest.mark.parametrize(
    "fields, field",
    [({"url": "ftp://x"}, "url"), ({"url": "http://a/\x00"}, "url"), ({"url": 5}, "url"),
     ({"url": None}, "url"), ({"event_types": []}, "event_types"),
     ({"event_types": ["nope"]}, "event_types"), ({"event_types": "cycle.settled"}, "event_types"),
     ({"event_types": [["x"]]}, "event_types"), ({"description": "x" * 201}, "description"),
     ({"description": 3}, "description"), ({"active": False}, "active"), ({"extra": 1}, "extra")],
)  # fmt: skip
def test_bad_endpoints_are_a_400_naming_the_field(settlement_staff, receiver, fields, field):
    answer = make(settlement_staff, receiver, **fields)
    assert answer.status_code == 400 and field in answer.content.decode(), answer.content
    assert not WebhookEndpoint.objects.exists() and not AdminAction.objects.exists()


def test_missing_fields_and_bodies_that_are_not_objects(settlement_staff):
    surrogate = '{"url": "http://\\ud800/", "event_types": ["cycle.settled"]}'
    answer = settlement_staff.post(
        "/api/v1/admin/webhooks", surrogate, content_type="application/json"
    )
    assert answer.status_code == 400 and "url" in answer.content.decode()
    answer = settlement_staff.post("/api/v1/admin/webhooks", {}, format="json")
    assert answer.status_code == 400 and {"url", "event_types"} <= set(answer.json())
    assert settlement_staff.post("/api/v1/admin/webhooks", [1], format="json").status_code == 400
    deep = "[" * 10_000 + "]" * 10_000
    answer = settlement_staff.post("/api/v1/admin/webhooks", deep, content_type="application/json")
    assert answer.status_code == 400


def test_unknown_endpoints_and_deliveries_are_404(settlement_staff, receiver):
    assert settlement_staff.get("/api/v1/admin/webhooks/99").status_code == 404
    assert settlement_staff.patch("/api/v1/admin/webhooks/99", {}, format="json").status_code == 404
    endpoint = make(settlement_staff, receiver).json()["id"]
    resend = settlement_staff.post(f"/api/v1/admin/webhooks/{endpoint}/deliveries/5/resend")
    assert resend.status_code == 404
    bad = settlement_staff.get(f"/api/v1/admin/webhooks/{endpoint}/deliveries?status=x")
    assert bad.status_code == 400 and "status" in bad.json()


def test_only_settlement_staff_manage_webhooks(anonymous, trader, staff, engine, receiver):
    for client in (anonymous, trader, staff, engine):
        assert make(client, receiver).status_code in (401, 403)
        assert client.get("/api/v1/admin/webhooks").status_code in (401, 403)
    assert not WebhookEndpoint.objects.exists()


def test_the_console_adds_an_endpoint_shows_its_secret_once_and_its_log(
    ops, receiver, usdt_fund, django_capture_on_commit_callbacks
):
    console = Client()
    console.force_login(ops)
    page = console.get("/ops/webhooks/")
    assert page.status_code == 200 and "Add an endpoint" in page.content.decode()
    answer = console.post(
        "/ops/webhooks/",
        {"url": receiver.url, "event_types": ["fund.records_appended"], "description": "w"},
    )
    endpoint = WebhookEndpoint.objects.get()
    assert answer.status_code == 302 and answer["Location"] == f"/ops/webhooks/{endpoint.id}/"
    first = console.get(answer["Location"]).content.decode()
    assert endpoint.secret in first and "shown this once" in first
    assert endpoint.secret not in console.get(answer["Location"]).content.decode()
    receiver.statuses = [500]
    deposit(usdt_fund, "1")
    fan_out_events()
    log = console.get(f"/ops/webhooks/{endpoint.id}/").content.decode()
    assert "HTTP 500" in log and "pending" in log and "Send again" in log
    assert "failed every attempt since" in console.get("/ops/").content.decode()
    delivery = WebhookDelivery.objects.get()
    receiver.statuses = [200]
    with django_capture_on_commit_callbacks(execute=True):
        sent = console.post(f"/ops/webhooks/{endpoint.id}/deliveries/{delivery.id}/resend/")
    assert sent.status_code == 302
    delivery.refresh_from_db()
    assert delivery.status == "delivered"


def test_console_form_errors_change_nothing(ops):
    console = Client()
    console.force_login(ops)
    answer = console.post("/ops/webhooks/", {"url": "ftp://x", "event_types": []})
    page = answer.content.decode()
    assert answer.status_code == 200
    assert "https://" in page and re.search(r"This field is required|at least one", page)
    assert not WebhookEndpoint.objects.exists()
    assert console.post("/ops/webhooks/9/deliveries/1/resend/").status_code == 404


def test_the_console_needs_the_settlement_permission(world, receiver):
    from tests.factories import UserFactory

    staff = Client()
    staff.force_login(UserFactory(is_staff=True))
    assert staff.get("/ops/webhooks/").status_code == 403
    assert Client().get("/ops/webhooks/").status_code == 302
