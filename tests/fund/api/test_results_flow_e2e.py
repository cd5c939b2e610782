"""Settlement results flowing back, end to end on PostgreSQL and Redis with real Celery worker
and beat processes and a real HTTP receiver on 127.0.0.1: the engine's intake over HTTP, the
settlement on the worker, a signed webhook received and checked with the documented scheme, the
feed pulled completely, the acknowledgement, and "applied" on the report and in the console.
Then the receiver down for a while, and the worker killed while it delivers."""

import json
import urllib.request
import uuid
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from config.celery import app
from fund.models import SettlementCycle
from fund.services.audit import Audit
from fund.services.webhooks import webhook_endpoint_create
from statements.models import ApiToken
from statements.services import api_token_create
from tests.factories import UserFactory
from tests.helpers import deposit, takeover_item
from tests.workers import beat, wait_for, worker

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

FAST = {
    "WEBHOOK_ALLOW_PRIVATE": "true",
    "WEBHOOK_RETRY_BASE_SECONDS": "0.5",
    "WEBHOOK_RETRY_MAX_WAIT_SECONDS": "1",
    "WEBHOOK_LEASE_SECONDS": "2",
    "WEBHOOK_SWEEP_SECONDS": "0.5",
}


@pytest.fixture
def celery(tmp_path):
    """A worker and a beat on a queue of their own; this process sends its tasks there too."""
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {**FAST, "CELERY_QUEUE": queue}
    processes = {
        "worker": worker(queue, tmp_path / "worker.log", env=env),
        "beat": beat(tmp_path / "beat.log", tmp_path / "beat-schedule", env=env),
    }
    previous = app.conf.task_always_eager, app.conf.task_default_queue
    app.conf.task_always_eager, app.conf.task_default_queue = False, queue
    try:
        yield processes, queue, env, tmp_path
    finally:
        app.conf.task_always_eager, app.conf.task_default_queue = previous
        for process in processes.values():
            process.stop()


def call(base, token, method, path, body=None):
    request = urllib.request.Request(
        base + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Idempotency-Key": uuid.uuid4().hex,
        },
    )
    return urllib.request.urlopen(request, timeout=60)


def logs(processes) -> str:
    return "\n".join(f"--- {n}\n{p.output()}" for n, p in processes.items())


def test_intake_settlement_webhook_feed_acknowledgement_and_applied(
    live_server, celery, receiver, recent, linear, ops
):
    processes, _queue, _env, _ = celery
    base = live_server.url
    _, engine = api_token_create(user=UserFactory(), kind=ApiToken.Kind.ENGINE, name="engine")
    made = webhook_endpoint_create(
        url=receiver.url, event_types=["cycle.settled", "cycle.applied"], audit=Audit(actor=ops)
    )
    receiver.secret = made.secret
    deposit(recent, "1000")
    # The engine's intake, over HTTP: a loss, and the cycle's profitable positions.
    loss = takeover_item("lq-1", close_price="59700", remaining_margin="100")
    with call(base, engine, "POST", "/api/v1/ingest/liquidations", {"items": [loss]}) as answer:
        assert answer.status == 201
    now = timezone.now()
    cycle = SettlementCycle.objects.get(fund=recent, starts_at__lte=now, ends_at__gt=now)
    profits = [
        {"position_id": i, "account": f"acct-{i}", "contract": "BTCUSDT", "profit": p}
        for i, p in ((1, "600"), (2, "300"), (3, "80"), (4, "20"))
    ]
    with call(base, engine, "POST", "/api/v1/ingest/position-profits",
              {"cycle": cycle.id, "items": profits}) as answer:  # fmt: skip
        assert answer.status == 201
    # Settled now by settlement staff; the worker settles, then fans out and delivers.
    _, staff = api_token_create(user=ops, kind=ApiToken.Kind.PERSONAL, name="ops")
    with call(base, staff, "POST", f"/api/v1/admin/cycles/{cycle.id}/settle") as answer:
        assert answer.status == 202
    try:
        wait_for(lambda: any(p["type"] == "cycle.settled" for p in receiver.processed.values()),
                 timeout=60, message="the cycle.settled webhook")  # fmt: skip
    except AssertionError:
        pytest.fail(logs(processes))
    (settled,) = [p for p in receiver.processed.values() if p["type"] == "cycle.settled"]
    assert settled["data"]["cycle"] == cycle.id
    cycle.refresh_from_db()
    assert cycle.status == "settled" and settled["data"]["apportionment_root"] == (
        cycle.apportionment_root
    )
    request = next(r for r in receiver.received if json.loads(r.body)["type"] == "cycle.settled")
    assert request.headers["webhook-signature"].startswith("v1,")
    # The feed, pulled completely and checked against its own figures.
    path = f"/api/v1/engine/cycles/{cycle.id}/apportionments"
    with call(base, engine, "GET", path) as answer:
        rows = [json.loads(line) for line in answer]
        count, total = answer.headers["Apportionment-Count"], answer.headers["Apportionment-Total"]
        root = answer.headers["Apportionment-Root"]
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1)) and len(rows) == int(count)
    assert sum(Decimal(r["amount"]) for r in rows) == Decimal(total)
    console = Client()
    console.force_login(ops)
    assert f"/ops/cycles/{cycle.id}/" in unapplied_section(console)  # settled, not applied yet
    ack = {"count": int(count), "total": total, "root": root}
    with call(base, engine, "POST", f"/api/v1/engine/cycles/{cycle.id}/applied", ack) as answer:
        assert answer.status == 201
    with call(base, engine, "POST", f"/api/v1/engine/cycles/{cycle.id}/applied", ack) as answer:
        assert answer.status == 200  # the same acknowledgement again
    wait_for(lambda: any(p["type"] == "cycle.applied" for p in receiver.processed.values()),
             timeout=60, message="the cycle.applied webhook")  # fmt: skip
    report = Client().get(f"/cycles/{cycle.id}/").content.decode()
    assert (
        "Applied to traders’ balances at" in report or "Applied to traders' balances at" in report
    )
    assert f"/ops/cycles/{cycle.id}/" not in unapplied_section(console)


def unapplied_section(console) -> str:
    page = console.get("/ops/").content.decode()
    return page.split('id="unapplied"')[1].split("</section>")[0]
