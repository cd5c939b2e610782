"""A settling cycle whose worker died is told from one whose worker is still posting, and sent
again: by the beat (fund.tasks.resend_dead_settlements), by staff from the console, and by the
admin API's "settle now". Against a live claim each of them does nothing and says so.

On any database: on PostgreSQL a claim is alive while a session holds its advisory lock
(`claim_held_elsewhere` holds it from another connection); SQLite cannot tell, so there a claim
counts as alive until STALE_SETTLING has passed. The live worker itself, killed for real, is in
tests/fund/test_fault_dead_worker.py; the lock itself in tests/fund/test_postgres_claims.py.
"""

import contextlib
import re
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from fund.models import AdminAction, SettlementCycle
from fund.services.cycles import STALE_SETTLING
from fund.services.locks import ADVISORY_CLAIM
from fund.services.settlement import settlement_claim_alive, settlements_dead_claims
from fund.services.settlement.claim import settlement_claim
from fund.services.settlement.resend import DEAD_RESEND_AFTER
from fund.tasks import resend_dead_settlements, settle_cycle
from tests.helpers import (
    assert_books_hold,
    at,
    book_loss,
    deposit,
    held_in_another_session,
    report_profits,
)

pytestmark = pytest.mark.django_db


@contextlib.contextmanager
def claim_held_elsewhere(cycle_id: int):
    """A live worker's claim: on PostgreSQL, another connection holds the cycle's claim lock
    for the duration; on SQLite (which cannot tell) nothing is held."""
    if connection.vendor != "postgresql":
        yield
        return
    with held_in_another_session("SELECT pg_advisory_lock(%s, %s)", [ADVISORY_CLAIM, cycle_id]):
        yield


@pytest.fixture
def cycle(usdt_fund, linear):
    deposit(usdt_fund, "1000")
    book_loss(linear, "500", at(0, 10))
    cycle = SettlementCycle.objects.get(starts_at=at(0))
    report_profits(cycle, linear, {1: "600", 2: "300", 3: "80"})
    return cycle


def claimed(cycle, *, ago: timedelta) -> SettlementCycle:
    """The cycle as a worker leaves it right after its claim committed (settling, attempt 1,
    nothing posted), `ago` before now."""
    assert settlement_claim(cycle_id=cycle.id, now=timezone.now() - ago, ignore_grace=True)
    cycle.refresh_from_db()
    return cycle


@pytest.fixture
def dead(cycle):
    """Settling for a minute past STALE_SETTLING, nobody holding the claim: dead on both."""
    return claimed(cycle, ago=STALE_SETTLING + timedelta(minutes=1))


@pytest.fixture
def alive(cycle):
    """Settling for a second, its claim held by another session (PostgreSQL)."""
    cycle = claimed(cycle, ago=timedelta(seconds=1))
    with claim_held_elsewhere(cycle.id):
        yield cycle


@pytest.fixture
def console(ops):
    client = Client()
    client.force_login(ops)
    return client


def alive_now(cycle) -> bool:
    with transaction.atomic():
        return settlement_claim_alive(cycle=cycle)


def resend_token(page: str) -> str:
    return re.search(r'name="token" value="([0-9a-f]{32})"', page).group(1)


def test_a_claim_is_alive_while_its_worker_holds_it_and_dead_after(cycle):
    cycle = claimed(cycle, ago=timedelta(seconds=1))
    with claim_held_elsewhere(cycle.id):
        assert alive_now(cycle)
    # PostgreSQL knows at once that nobody holds it; SQLite only by its age.
    assert alive_now(cycle) is (connection.vendor != "postgresql")
    SettlementCycle.objects.filter(pk=cycle.pk).update(
        settling_started_at=timezone.now() - STALE_SETTLING - timedelta(seconds=1)
    )
    cycle.refresh_from_db()
    assert not alive_now(cycle)


def test_the_beat_resends_a_dead_claim_once_and_leaves_a_live_one(cycle):
    live = claimed(cycle, ago=timedelta(seconds=1))
    with claim_held_elsewhere(live.id):
        assert settlements_dead_claims() == []
    SettlementCycle.objects.filter(pk=cycle.pk).update(
        settling_started_at=timezone.now() - STALE_SETTLING - timedelta(minutes=1)
    )
    now = timezone.now()
    assert settlements_dead_claims(now=now) == [cycle.id]  # sent again at once ...
    assert settlements_dead_claims(now=now + timedelta(seconds=20)) == []  # ... once
    later = now + DEAD_RESEND_AFTER + timedelta(seconds=1)
    assert settlements_dead_claims(now=later) == [cycle.id]  # nobody took it: once more
    cycle.refresh_from_db()
    assert cycle.status == "settling" and cycle.settle_requested_at == later


def test_the_beat_task_settles_a_dead_claim_once(dead, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        answer = resend_dead_settlements()  # in-process: the settlement runs here
    assert answer == {"resent": [dead.id], "unsent": []}
    dead.refresh_from_db()
    assert dead.status == "settled" and dead.attempts == 2 and dead.participant_count == 2
    assert resend_dead_settlements() == {"resent": [], "unsent": []}
    assert_books_hold(dead.fund)


def test_the_console_refuses_to_resend_a_live_settlement_and_sends_nothing(console, alive):
    page = console.get(f"/ops/cycles/{alive.id}/").content.decode()
    assert "A worker is posting this settlement" in page
    with mock.patch.object(settle_cycle, "apply_async") as send:
        answer = console.post(
            f"/ops/cycles/{alive.id}/resend/", {"token": resend_token(page)}, follow=True
        )
    said = answer.content.decode()
    assert "is still being settled" in said and "Nothing was sent again" in said
    assert not send.called and not AdminAction.objects.exists()
    alive.refresh_from_db()
    assert alive.status == "settling" and alive.attempts == 1


def test_the_console_resends_a_dead_settlement_once_and_audits_it(
    console, dead, ops, django_capture_on_commit_callbacks
):
    page = console.get(f"/ops/cycles/{dead.id}/").content.decode()
    assert "its worker died" in page and "Send the settlement again" in page
    token = resend_token(page)
    with (
        mock.patch.object(settle_cycle, "apply_async") as send,
        django_capture_on_commit_callbacks(execute=True),
    ):
        answer = console.post(f"/ops/cycles/{dead.id}/resend/", {"token": token})
        again = console.post(f"/ops/cycles/{dead.id}/resend/", {"token": token}, follow=True)
    assert answer.status_code == 302 and answer["Location"].endswith("?follow=1")
    assert "Sent already, and done once" in again.content.decode()
    assert send.call_count == 1
    assert send.call_args.args[:2] == ((dead.id,), {"ignore_grace": True})
    action = AdminAction.objects.get()
    assert (action.action, action.cycle_id, action.actor) == ("settle", dead.id, ops)
    assert action.details["resend"] == "dead claim" and action.details["attempts"] == 1


def test_a_console_resend_settles_the_dead_cycle_once(
    console, dead, django_capture_on_commit_callbacks
):
    page = console.get(f"/ops/cycles/{dead.id}/").content.decode()
    with django_capture_on_commit_callbacks(execute=True):  # in-process: the settlement runs
        console.post(f"/ops/cycles/{dead.id}/resend/", {"token": resend_token(page)})
    dead.refresh_from_db()
    assert dead.status == "settled" and dead.attempts == 2
    assert_books_hold(dead.fund)


def test_the_console_resends_only_a_settling_cycle(console, cycle):
    with mock.patch.object(settle_cycle, "apply_async") as send:
        answer = console.post(f"/ops/cycles/{cycle.id}/resend/", {}, follow=True)
    assert "not settling: nothing to send again" in answer.content.decode()
    assert not send.called and not AdminAction.objects.exists()


def test_settle_now_in_the_api_resends_a_dead_settlement_and_refuses_a_live_one(
    ops, cycle, django_capture_on_commit_callbacks
):
    api = APIClient()
    api.force_authenticate(ops)
    url = f"/api/v1/admin/cycles/{cycle.id}/settle"
    live = claimed(cycle, ago=timedelta(seconds=1))
    with claim_held_elsewhere(live.id), mock.patch.object(settle_cycle, "apply_async") as send:
        refused = api.post(url)
    assert refused.status_code == 409 and refused.data["code"] == "settlement_running"
    assert "still being settled" in refused.data["detail"]
    assert not send.called and not AdminAction.objects.exists()
    SettlementCycle.objects.filter(pk=cycle.pk).update(
        settling_started_at=timezone.now() - STALE_SETTLING - timedelta(minutes=1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        sent = api.post(url)
    assert sent.status_code == 202 and sent.data["cycle"] == cycle.id
    cycle.refresh_from_db()
    assert cycle.status == "settled" and cycle.attempts == 2
    assert AdminAction.objects.get().details["resend"] == "dead claim"
    assert_books_hold(cycle.fund)
