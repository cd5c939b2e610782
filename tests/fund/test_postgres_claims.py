"""A settling worker's claim on PostgreSQL: a session-level advisory lock held from before the
claim to after the posting, so that a posting that is merely slow is left alone, and a worker
whose connection died is seen dead at once (PostgreSQL drops the lock with the session)."""

import contextlib
import re
import threading

import pytest
from django.db import connection
from django.test import Client

from fund.models import AdminAction, SettlementCycle
from fund.services.locks import ADVISORY_CLAIM
from fund.services.settlement import settlement_cycle_settle, settlements_dead_claims
from fund.services.settlement.claim import settlement_claim
from tests.helpers import (
    LARGE_CYCLE_POSITIONS,
    assert_books_hold,
    held_in_another_session,
    settle_in_background,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@contextlib.contextmanager
def apportionments_held():
    """Another session holds the apportionments' table in SHARE mode: a posting waits before
    writing them (without a timeout: it holds the posting lock only) until the block ends."""
    with held_in_another_session("LOCK TABLE fund_apportionment IN SHARE MODE", timeout=120):
        yield


def test_a_slow_posting_is_not_sent_again_and_settles_once(large_cycle, usdt_fund, ops):
    console = Client()
    console.force_login(ops)
    slow = apportionments_held()
    slow.__enter__()
    settling, outcomes = settle_in_background(large_cycle)  # mid-posting: writing statements
    try:
        assert settlements_dead_claims() == []
        page = console.get(f"/ops/cycles/{large_cycle.id}/").content.decode()
        assert "A worker is posting this settlement" in page
        refused = console.post(f"/ops/cycles/{large_cycle.id}/resend/", follow=True)
        said = re.findall(r"<li class=\"[^\"]*\">([^<]*)</li>", refused.content.decode())
        assert any("is still being settled" in m for m in said), said
        answer = Client()
        answer.force_login(ops)
        settle_now = answer.post(f"/api/v1/admin/cycles/{large_cycle.id}/settle")
        assert settle_now.status_code == 409 and settle_now.json()["code"] == "settlement_running"
        assert settlements_dead_claims() == []
        assert settling.is_alive()  # still posting all along
    finally:
        slow.__exit__(None, None, None)
        settling.join(timeout=300)
    assert not AdminAction.objects.filter(action="settle").exists()
    [outcome] = outcomes
    assert not isinstance(outcome, Exception), outcome
    assert outcome.posted
    large_cycle.refresh_from_db()
    assert large_cycle.status == "settled" and large_cycle.attempts == 1
    assert large_cycle.participant_count > LARGE_CYCLE_POSITIONS // 2
    assert settlement_cycle_settle(cycle_id=large_cycle.id).posted is False  # a redelivery
    assert_books_hold(usdt_fund)


def test_a_claim_whose_connection_died_is_dead_at_once(large_cycle):
    """A worker that claimed the cycle and lost its connection (as a killed worker does): the
    next look finds the claim free, long before STALE_SETTLING."""
    claimed, release = threading.Event(), threading.Event()
    backend = []

    def worker():
        from django.db import connection as own

        try:
            with own.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                backend.append(cursor.fetchone()[0])
                cursor.execute("SELECT pg_advisory_lock(%s, %s)", [ADVISORY_CLAIM, large_cycle.id])
            assert settlement_claim(
                cycle_id=large_cycle.id, now=large_cycle.settle_after, ignore_grace=False
            )
            claimed.set()
            release.wait(timeout=60)
        finally:
            own.close()

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert claimed.wait(timeout=30)
        assert settlements_dead_claims() == []  # alive: its session holds the claim
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", backend)
        for _ in range(100):  # the backend exits within moments
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", backend)
                if not cursor.fetchone()[0]:
                    break
        assert settlements_dead_claims() == [large_cycle.id]
        assert settlements_dead_claims() == []  # sent once, not at every look
    finally:
        release.set()
        thread.join(timeout=30)
    large_cycle.refresh_from_db()
    assert large_cycle.status == SettlementCycle.Status.SETTLING and large_cycle.attempts == 1
    outcome = settlement_cycle_settle(cycle_id=large_cycle.id)  # what the resent task does
    assert outcome.posted and outcome.cycle.attempts == 2
