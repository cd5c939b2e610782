"""Webhooks (fund/services/webhooks.py): each event to each matching endpoint, signed per
Standard Webhooks, retried on a jittered schedule, never to a private address unless allowed,
and never lost when a worker dies half-way. The receiver is a real HTTP server on 127.0.0.1."""

import json
import time
from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.utils import timezone
from standardwebhooks import Webhook

from fund.models import AdminAction, Event, WebhookDelivery, WebhookEndpoint
from fund.services import webhook_http, webhooks
from fund.services.audit import Audit
from fund.tasks import deliver_webhooks, fan_out_events
from tests.helpers import deposit
from tests.receiver import Receiver

Status = WebhookDelivery.Status
ALL = list(Event.Kind.values)


@pytest.fixture
def audit(ops):
    ops.email = "ops@example.com"
    ops.save()
    return Audit(actor=ops, ip_address="127.0.0.1")


def endpoint_for(receiver, audit, kinds=None):
    made = webhooks.webhook_endpoint_create(
        url=receiver.url, event_types=kinds or ALL, description="the exchange", audit=audit
    )
    receiver.secret = made.secret
    return made.endpoint


def due_now():
    WebhookDelivery.objects.filter(status=Status.PENDING).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )


def test_each_event_is_posted_signed_per_standard_webhooks(receiver, audit, usdt_fund):
    endpoint = endpoint_for(receiver, audit)
    deposit(usdt_fund, "10")
    deposit(usdt_fund, "5")
    fan_out_events()
    assert len(receiver.received) == 2
    seqs = list(Event.objects.order_by("seq").values_list("seq", flat=True))
    for request, seq in zip(receiver.received, seqs):
        h = request.headers
        assert h["webhook-id"] == f"evt_{seq}" and h["webhook-sequence"] == str(seq)
        assert abs(int(h["webhook-timestamp"]) - time.time()) < 30
        assert h["webhook-signature"].startswith("v1,")
        assert h["content-type"] == "application/json"
        payload = Webhook(receiver.secret).verify(request.body, h)  # the documented scheme
        assert payload["type"] == "fund.records_appended" and payload["seq"] == seq
        assert set(payload) == {"type", "timestamp", "seq", "data"}
    assert json.loads(receiver.received[1].body)["data"]["balance"] == "15.00000000"
    rows = list(endpoint.deliveries.order_by("event_id"))
    assert [d.status for d in rows] == [Status.DELIVERED] * 2
    assert all(d.attempts == 1 and d.last_status == 200 and d.last_latency_ms is not None
               for d in rows)  # fmt: skip
    fan_out_events()  # again: nothing new is sent
    assert len(receiver.received) == 2


def test_a_forged_or_altered_request_fails_the_receivers_check(receiver, audit, usdt_fund):
    endpoint_for(receiver, audit)
    deposit(usdt_fund, "10")
    fan_out_events()
    request = receiver.received[0]
    other = Webhook(webhooks.secret_new())
    with pytest.raises(Exception, match="signature"):
        other.verify(request.body, request.headers)
    with pytest.raises(Exception, match="signature"):
        Webhook(receiver.secret).verify(request.body.replace(b"10.0", b"99.0"), request.headers)


def test_an_endpoint_gets_only_its_kinds_and_only_events_after_it_was_added(
    receiver, audit, usdt_fund
):
    deposit(usdt_fund, "1")  # before the endpoint: never sent to it
    endpoint_for(receiver, audit, kinds=["cycle.settled"])
    deposit(usdt_fund, "2")
    fan_out_events()
    assert receiver.received == []
    assert WebhookEndpoint.objects.get().cursor == Event.objects.order_by("-seq").first().seq


def test_the_receiver_down_for_a_while_is_retried_then_delivered_each_id_once(
    receiver, audit, usdt_fund
):
    endpoint = endpoint_for(receiver, audit)
    receiver.statuses = [503, 500, 502, 200]
    for i in range(3):
        deposit(usdt_fund, str(i + 1))
    started = timezone.now()
    fan_out_events()
    first = endpoint.deliveries.order_by("event_id").first()
    assert first.status == Status.PENDING and first.attempts == 1 and first.last_status == 503
    wait = (first.next_attempt_at - started).total_seconds()
    assert 30 * 0.75 - 1 <= wait <= 30 * 1.25 + 1  # the first retry's wait, jittered
    endpoint.refresh_from_db()
    assert endpoint.failing_since is not None
    for _ in range(10):
        due_now()
        deliver_webhooks(endpoint.id)
        if not endpoint.deliveries.filter(status=Status.PENDING).exists():
            break
    assert set(endpoint.deliveries.values_list("status", flat=True)) == {Status.DELIVERED}
    ids = {f"evt_{s}" for s in Event.objects.values_list("seq", flat=True)}
    assert {r.headers["webhook-id"] for r in receiver.received} == ids  # each at least once
    assert set(receiver.processed) == ids  # a receiver deduping by id processes each once
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None and endpoint.active


def test_the_retry_schedule_grows_with_jitter_and_ends_after_three_days():
    waits = [webhooks.retry_wait(n) for n in range(1, 12)]
    bases = [min(30 * 4 ** (n - 1), 12 * 3600) for n in range(1, 12)]
    for wait, base in zip(waits, bases):
        assert 0.75 * base <= wait <= 1.25 * base
    assert sum(bases) < 3 * 24 * 3600 < sum(bases) + 3 * 12 * 3600
    draws = {round(webhooks.retry_wait(3), 3) for _ in range(20)}
    assert len(draws) > 10  # jittered: failed deliveries do not all come back at once


def test_a_delivery_failing_for_three_days_fails_and_its_endpoint_is_switched_off(
    receiver, audit, usdt_fund, django_capture_on_commit_callbacks
):
    endpoint = endpoint_for(receiver, audit)
    receiver.statuses = [500]
    deposit(usdt_fund, "1")
    fan_out_events()
    delivery = endpoint.deliveries.get()
    three_days_ago = timezone.now() - timedelta(days=3, seconds=1)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(retry_from=three_days_ago)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=three_days_ago)
    due_now()
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        deliver_webhooks(endpoint.id)
    delivery.refresh_from_db()
    endpoint.refresh_from_db()
    assert delivery.status == Status.FAILED and delivery.next_attempt_at is None
    assert not endpoint.active and "Every attempt failed" in endpoint.disabled_reason
    # The notice: by email to the settlement staff (the console shows it too).
    assert [m.to for m in mail.outbox] == [["ops@example.com"]]
    assert endpoint.url in mail.outbox[0].body
    deposit(usdt_fund, "2")
    fan_out_events()  # switched off: no new delivery, nothing sent
    assert endpoint.deliveries.count() == 1 and len(receiver.received) == 2


def test_a_410_switches_the_endpoint_off_at_once(receiver, audit, usdt_fund):
    endpoint = endpoint_for(receiver, audit)
    receiver.statuses = [410]
    deposit(usdt_fund, "1")
    fan_out_events()
    endpoint.refresh_from_db()
    assert not endpoint.active and "410" in endpoint.disabled_reason
    assert endpoint.deliveries.get().status == Status.FAILED


def test_redirects_are_not_followed(receiver, audit, usdt_fund):
    target = Receiver().start()
    try:
        receiver.statuses, receiver.redirect_to = [302], target.url
        endpoint = endpoint_for(receiver, audit)
        deposit(usdt_fund, "1")
        fan_out_events()
        delivery = endpoint.deliveries.get()
        assert delivery.status == Status.PENDING and delivery.last_status == 302
        assert target.received == []
    finally:
        target.stop()


@override_settings(WEBHOOK_TIMEOUT_SECONDS=0.3)
def test_a_slow_receiver_times_out_and_is_retried(receiver, audit, usdt_fund):
    endpoint = endpoint_for(receiver, audit)
    receiver.delay = 6
    deposit(usdt_fund, "1")
    started = time.monotonic()
    fan_out_events()
    assert time.monotonic() - started < 4  # cut at 0.3 s, not after the receiver's 6 s
    delivery = endpoint.deliveries.get()
    assert delivery.status == Status.PENDING and delivery.last_status is None
    assert "timed out" in delivery.last_error


def test_a_receiver_that_is_not_listening_is_a_failed_attempt(audit, usdt_fund):
    r = Receiver().start()
    endpoint = endpoint_for(r, audit)
    r.stop()  # nothing listens on that port any more
    deposit(usdt_fund, "1")
    fan_out_events()
    delivery = endpoint.deliveries.get()
    assert delivery.status == Status.PENDING and "Connection" in delivery.last_error


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1/x", "http://localhost:8000/", "http://10.1.2.3/", "http://192.168.0.1/",
     "http://172.16.0.1/", "http://169.254.169.254/latest/meta-data/", "http://[::1]/",
     "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/", "http://100.64.0.1/", "http://[fd00::1]/",
     "http://224.0.0.1/", "http://2130706433/", "http://[::127.0.0.1]/",
     "http://[::169.254.169.254]/", "http://[::ffff:0:7f00:1]/", "http://[64:ff9b::a9fe:a9fe]/",
     "http://[64:ff9b:1::a00:1]/", "http://[2002:a9fe:a9fe::1]/", "http://[fec0::1]/",
     "http://[2001:db8::1]/", "http://192.0.0.8/", "http://198.18.0.1/", "http://0x7f000001/",
     "http://[fe80::1%25eth0]/"],
)  # fmt: skip
@override_settings(WEBHOOK_ALLOW_PRIVATE=False)
def test_private_loopback_and_reserved_targets_are_refused(url, audit):
    with pytest.raises(ValidationError) as refused:
        webhooks.webhook_endpoint_create(url=url, event_types=ALL, audit=audit)
    assert "url" in refused.value.message_dict
    assert not WebhookEndpoint.objects.exists() and not AdminAction.objects.exists()


@override_settings(WEBHOOK_ALLOW_PRIVATE=False)
def test_a_public_address_is_allowed():
    target = webhook_http.target_parse("https://8.8.8.8:8443/hook?x=1")
    assert webhook_http.target_addresses(target) == ["8.8.8.8"]
    assert target.path == "/hook?x=1" and target.port == 8443


def test_a_target_that_turns_private_after_it_was_added_is_refused_at_delivery(
    receiver, audit, usdt_fund
):
    endpoint = endpoint_for(receiver, audit)
    deposit(usdt_fund, "1")
    with override_settings(WEBHOOK_ALLOW_PRIVATE=False):
        fan_out_events()
    delivery = endpoint.deliveries.get()
    assert receiver.received == [] and delivery.last_error.startswith("refused:")


@pytest.mark.parametrize(
    "url, words",
    [("ftp://example.com/x", "https://"), ("https://user:pw@example.com/", "password"),
     ("https://exa mple.com/", "spaces"), ("https://example.com/\x00", "control"),
     ("https://\ud800.com/", "ASCII"), ("https://例え.jp/", "ASCII"),
     ("https://example.com:99999/", "Not a URL"), ("https://example.com/#f", "fragment"),
     ("https:///path", "no host"), ("https://x/" + "a" * 500, "500"), (12, "text")],
)  # fmt: skip
def test_malformed_urls_are_refused_with_a_reason(url, words, audit):
    with pytest.raises(ValidationError) as refused:
        webhooks.webhook_endpoint_create(url=url, event_types=ALL, audit=audit)
    assert words in " ".join(refused.value.message_dict["url"])


@pytest.mark.parametrize(
    "kinds, words",
    [([], "at least one"), (["cycle.nope"], "Unknown"), ("cycle.settled", "at least one"),
     ([1], "list of names"), (ALL * 2, "list of names")],
)  # fmt: skip
def test_bad_event_types_are_refused(kinds, words, receiver, audit):
    with pytest.raises(ValidationError) as refused:
        webhooks.webhook_endpoint_create(url=receiver.url, event_types=kinds, audit=audit)
    assert words in " ".join(refused.value.message_dict["event_types"])


def test_a_worker_killed_during_the_fan_out_loses_nothing_and_doubles_nothing(
    receiver, audit, usdt_fund, monkeypatch
):
    endpoint = endpoint_for(receiver, audit)
    for i in range(5):
        deposit(usdt_fund, str(i + 1))
    real_save = WebhookEndpoint.save

    def die(self, *args, **kwargs):
        raise SystemExit("killed between the deliveries' insert and the cursor's move")

    monkeypatch.setattr(WebhookEndpoint, "save", die)
    with pytest.raises(SystemExit):
        webhooks.webhooks_fan_out()
    monkeypatch.setattr(WebhookEndpoint, "save", real_save)
    assert endpoint.deliveries.count() == 0  # rolled back with the cursor
    endpoint.refresh_from_db()
    assert endpoint.cursor < Event.objects.order_by("-seq").first().seq
    webhooks.webhooks_fan_out()
    webhooks.webhooks_fan_out()
    assert endpoint.deliveries.count() == 5


def test_a_worker_killed_while_posting_leaves_the_delivery_to_be_sent_again(
    receiver, audit, usdt_fund, monkeypatch
):
    endpoint = endpoint_for(receiver, audit)
    deposit(usdt_fund, "1")
    webhooks.webhooks_fan_out()
    monkeypatch.setattr(webhooks, "_record", lambda *a: (_ for _ in ()).throw(SystemExit("killed")))
    with pytest.raises(SystemExit):
        webhooks.webhook_endpoint_deliver(endpoint_id=endpoint.id)
    monkeypatch.undo()
    delivery = endpoint.deliveries.get()
    assert delivery.status == Status.PENDING and delivery.leased_until > timezone.now()
    assert webhooks.webhook_endpoint_deliver(endpoint_id=endpoint.id).delivered == 0  # leased
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        leased_until=timezone.now() - timedelta(seconds=1)
    )
    assert webhooks.webhook_endpoint_deliver(endpoint_id=endpoint.id).delivered == 1
    assert len(receiver.received) == 2 and len(receiver.processed) == 1  # at least once


def test_send_again_and_switching_back_on(receiver, audit, usdt_fund):
    endpoint = endpoint_for(receiver, audit)
    deposit(usdt_fund, "1")
    fan_out_events()
    delivery = endpoint.deliveries.get()
    webhooks.webhook_delivery_resend(delivery_id=delivery.id, endpoint_id=endpoint.id, audit=audit)
    deliver_webhooks(endpoint.id)
    assert len(receiver.received) == 2
    assert AdminAction.objects.filter(action="webhook_resend").count() == 1
    webhooks.webhook_endpoint_update(endpoint_id=endpoint.id, active=False, audit=audit)
    deposit(usdt_fund, "2")
    fan_out_events()
    assert len(receiver.received) == 2
    webhooks.webhook_endpoint_update(endpoint_id=endpoint.id, active=True, audit=audit)
    fan_out_events()  # events while it was off are delivered once it is on again
    assert len(receiver.received) == 3
    actions = AdminAction.objects.filter(action="webhook_update").order_by("id")
    assert [a.details["after"] for a in actions] == [{"active": False}, {"active": True}]
    assert "secret" not in json.dumps(list(AdminAction.objects.values_list("details", flat=True)))


def test_a_new_secret_signs_every_later_attempt(receiver, audit, usdt_fund):
    endpoint = endpoint_for(receiver, audit)
    old = receiver.secret
    made = webhooks.webhook_endpoint_new_secret(endpoint_id=endpoint.id, audit=audit)
    assert made.secret != old and made.secret.startswith("whsec_")
    receiver.secret = made.secret
    deposit(usdt_fund, "1")
    fan_out_events()
    assert len(receiver.processed) == 1
    with pytest.raises(Exception, match="signature"):
        Webhook(old).verify(receiver.received[0].body, receiver.received[0].headers)


@override_settings(WEBHOOK_ALLOW_PRIVATE=False)
def test_public_ipv6_is_allowed():
    assert webhook_http.address_allowed("2606:4700:4700::1111")
    assert webhook_http.address_allowed("1.1.1.1")


@override_settings(WEBHOOK_TIMEOUT_SECONDS=0.5)
def test_a_receiver_that_drips_its_answer_is_cut_at_the_deadline(audit, usdt_fund):
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def drip():
        conn, _ = server.accept()
        conn.recv(65536)
        try:
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100:
                conn.sendall(bytes([byte]))
                time.sleep(0.1)  # each byte well within the socket timeout
        except OSError:
            pass
        conn.close()

    threading.Thread(target=drip, daemon=True).start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/h"
    started = time.monotonic()
    answer = webhook_http.post(url, b"{}", {})
    assert time.monotonic() - started < 6  # cut at 0.5 s, not after the 10 s of the drip
    assert answer.status is None and "timed out" in answer.error
    server.close()


def test_an_attempt_overtaken_by_send_again_is_dropped(receiver, audit, usdt_fund, monkeypatch):
    endpoint = endpoint_for(receiver, audit)
    deposit(usdt_fund, "1")
    webhooks.webhooks_fan_out()
    delivery = endpoint.deliveries.get()
    real_post = webhook_http.post

    def post_then_resend(*args):
        answer = webhook_http.Answer(500, 3, "")
        webhooks.webhook_delivery_resend(
            delivery_id=delivery.id, endpoint_id=endpoint.id, audit=audit
        )
        return answer

    monkeypatch.setattr(webhook_http, "post", post_then_resend)
    webhooks.webhook_endpoint_deliver(endpoint_id=endpoint.id)
    monkeypatch.setattr(webhook_http, "post", real_post)
    delivery.refresh_from_db()
    endpoint.refresh_from_db()
    # The stale 500 changed nothing: due now, a fresh schedule, the endpoint not failing.
    assert delivery.status == Status.PENDING and delivery.attempts == 0
    assert delivery.next_attempt_at <= timezone.now() and endpoint.failing_since is None
    webhooks.webhook_endpoint_deliver(endpoint_id=endpoint.id)
    delivery.refresh_from_db()
    assert delivery.status == Status.DELIVERED and delivery.attempts == 1


def test_send_again_starts_a_new_schedule(receiver, audit, usdt_fund):
    endpoint = endpoint_for(receiver, audit)
    receiver.statuses = [500]
    deposit(usdt_fund, "1")
    fan_out_events()
    delivery = endpoint.deliveries.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(attempts=9)
    webhooks.webhook_delivery_resend(delivery_id=delivery.id, endpoint_id=endpoint.id, audit=audit)
    started = timezone.now()
    deliver_webhooks(endpoint.id)
    delivery.refresh_from_db()
    assert delivery.attempts == 1
    assert (delivery.next_attempt_at - started).total_seconds() < 30 * 1.25 + 1


def test_one_delivery_failing_through_its_three_days_switches_the_endpoint_off(
    receiver, audit, usdt_fund
):
    endpoint = endpoint_for(receiver, audit)
    receiver.statuses = [500]
    deposit(usdt_fund, "1")
    webhooks.webhooks_fan_out()
    delivery = endpoint.deliveries.get()
    start = timezone.now() - timedelta(days=3, seconds=5)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(retry_from=start, created_at=start)
    deliver_webhooks(endpoint.id)  # its last attempt, at the end of its three days
    endpoint.refresh_from_db()
    delivery.refresh_from_db()
    assert delivery.status == Status.FAILED and not endpoint.active
