"""A whole worker killed (SIGKILL to its process group) in the middle of posting a large
settlement, with the production broker settings: Redis would give the task back only after its
visibility timeout (an hour) and the scheduler resends a stale "settling" cycle only after 15
minutes. The beat's resend_dead_settlements sees that nobody holds the cycle's claim any more (the
killed worker's PostgreSQL session is gone, and its advisory lock with it) and sends the
settlement again: a fresh worker settles the cycle exactly once, well within two minutes of the
kill. On PostgreSQL with Redis, with a real worker and a real beat (its production 20 s period).
"""

import re
import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from config.celery import app
from fund.models import Apportionment, SettlementCycle
from fund.services.cycles import cycles_close_due
from fund.tasks import settle_cycle
from tests.factories import ContractFactory, FundFactory
from tests.helpers import (
    LARGE_CYCLE_POSITIONS,
    assert_books_hold,
    book_loss,
    deposit,
    report_many_profits,
)
from tests.workers import SETTLE_PHASES, beat, wait_for, worker, worker_phase

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

WITHIN = 120  # seconds from the kill to the cycle settled
# The production defaults, spelled out: neither the broker nor the scheduler's stale resend
# could bring the task back within the test.
PRODUCTION_RESTORE = {"CELERY_VISIBILITY_TIMEOUT": "3600", "CELERY_DEAD_CLAIM_SECONDS": "20"}


@pytest.fixture
def due_large_cycle():
    """Yesterday's cycle of a fund anchored yesterday (so that the beat's scheduler has nothing
    else to open or settle), closed and past its grace, with LARGE_CYCLE_POSITIONS profits."""
    midnight = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    fund = FundFactory(anchor=midnight - timedelta(days=1), grace_seconds=60)
    contract = ContractFactory(symbol="BTCUSDT", margin_asset=fund.asset)
    deposit(fund, "1000")
    book_loss(contract, "250000", fund.anchor + timedelta(hours=10))
    cycle = SettlementCycle.objects.get(fund=fund, starts_at=fund.anchor)
    report_many_profits(
        cycle, contract, {p: f"{p % 4999 + 1}.{p:08d}" for p in range(1, LARGE_CYCLE_POSITIONS + 1)}
    )
    cycles_close_due(now=timezone.now())  # as the beat would: claimed for sending
    cycle.refresh_from_db()
    assert cycle.status == SettlementCycle.Status.CLOSED
    return cycle


def test_a_whole_worker_killed_mid_posting_is_settled_once_within_two_minutes(
    due_large_cycle, tmp_path
):
    cycle = due_large_cycle
    queue = f"dead-{uuid.uuid4().hex[:8]}"
    env = {**PRODUCTION_RESTORE, "CELERY_QUEUE": queue}
    log = tmp_path / "worker.log"
    first = worker(queue, log, pool="prefork", env=env)
    scheduler = beat(tmp_path / "beat.log", tmp_path / "beat-schedule", env=env)
    second = None
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        settle_cycle.apply_async(args=[cycle.id], queue=queue)
        deadline = time.monotonic() + 120
        while worker_phase(cycle.id) < SETTLE_PHASES.index("statements"):
            assert time.monotonic() < deadline, f"the worker never posted\n{first.output()}"
            time.sleep(0.001)
        first.kill()  # the worker and its pool process, mid-posting
        killed_at = time.monotonic()
        struck_at = worker_phase(cycle.id)
        second = worker(queue, log, pool="prefork", env=env)
        wait_for(
            lambda: SettlementCycle.objects.filter(pk=cycle.pk, status="settled").exists(),
            timeout=WITHIN,
            interval=0.2,
            message=f"not settled {WITHIN} s after the kill\n{log.read_text()[-6000:]}",
        )
        took = time.monotonic() - killed_at
    finally:
        app.conf.task_always_eager = previous
        scheduler.stop()
        first.stop()
        if second:
            second.stop()
    print(f"settled {took:.1f} s after the kill")
    assert struck_at < len(SETTLE_PHASES), "the worker had committed before the kill"
    cycle.refresh_from_db()
    assert cycle.attempts == 2, f"attempts {cycle.attempts}"
    assert cycle.participant_count > LARGE_CYCLE_POSITIONS // 2
    assert Apportionment.objects.filter(cycle=cycle).count() == cycle.participant_count
    output = second.output(whole=True)
    assert "its worker is gone: sending it again" in output, output[-6000:]
    # One posting: every later delivery of the settlement (if any) found it settled.
    assert len(re.findall(r"settled cycle \d+: L=", log.read_text())) == 1
    assert_books_hold(cycle.fund)
