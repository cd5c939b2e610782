"""Idempotency-Key on real PostgreSQL connections (fund/api/idempotency.py): a process killed
between the money move and the stored answer, keys that expire, and one key sent ten times at
once."""

import os
import subprocess
import sys
import textwrap
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from fund.models import AdminAction, FundRecord, IdempotentRequest
from fund.services.idempotency import idempotency_keys_prune
from fund.tasks import prune_idempotency_keys
from tests.factories import UserFactory
from tests.helpers import assert_books_hold, run_together
from tests.workers import ROOT, database_url_of_test_database, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

URL = "/api/v1/admin/funds/USDT/deposits"
BODY = {"amount": "10", "reason": "top-up"}
KILLED_APP = "fund-test-killed-request"


def settlement_staff_user(username="ops"):
    user = UserFactory(username=username, is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="settle_cycles"))
    return user


def client_of(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def deposit_with_key(client, key, body=BODY):
    return client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def deposits() -> int:
    return FundRecord.objects.filter(kind=FundRecord.Kind.DEPOSIT).count()


# Sends one deposit with an Idempotency-Key as the API's own process would, and is killed
# (os._exit: no rollback, no cleanup, the kernel closes the socket) at the moment the deposit is
# written and the key claimed, just before the answer would be stored: all of it inside the one
# uncommitted transaction.
KILLED_REQUEST = textwrap.dedent(
    """
    import os, sys
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    import fund.services.idempotency
    from fund.models import FundRecord, IdempotentRequest

    def killed(**kwargs):
        written = FundRecord.objects.filter(kind="deposit").count()
        claimed = IdempotentRequest.objects.filter(key=sys.argv[2]).count()
        print(f"written={written} claimed={claimed}", flush=True)
        os._exit(9)

    fund.services.idempotency.idempotency_answer = killed
    client = APIClient()
    client.force_authenticate(get_user_model().objects.get(username=sys.argv[1]))
    response = client.post(
        "/api/v1/admin/funds/USDT/deposits",
        {"amount": "10", "reason": "top-up"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=sys.argv[2],
    )
    print(f"not killed: answered {response.status_code}", flush=True)
    """
)


def test_it_books_a_deposit_once_when_the_first_try_died_before_its_answer(usdt_fund):
    """A kill between the money move and the stored answer must not leave a deposit without its
    answer (a retry would book it twice) nor a claimed key without its deposit (a retry would
    be answered with nothing): the one transaction takes both with it, and the retry with the
    same key books the deposit once."""
    user = settlement_staff_user()
    key = "deposit-2026-01-01-a"
    child = subprocess.run(
        [sys.executable, "-c", KILLED_REQUEST, user.username, key],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "DATABASE_URL": database_url_of_test_database(KILLED_APP),
            "DJANGO_SETTINGS_MODULE": "config.settings.base",
            "CELERY_TASK_ALWAYS_EAGER": "true",
            "DJANGO_ALLOWED_HOSTS": "testserver",
            "DJANGO_SECURE": "false",
            "REDIS_URL": "",
        },
    )
    assert child.returncode == 9, child.stdout + child.stderr
    assert "written=1 claimed=1" in child.stdout, child.stdout + child.stderr

    def server_let_go() -> bool:  # its session is gone, and with it the locks and rows it held
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [KILLED_APP]
            )
            return cursor.fetchone()[0] == 0

    wait_for(server_let_go, timeout=10, message="the killed request's session stayed")
    assert deposits() == 0 and not IdempotentRequest.objects.exists()
    assert not AdminAction.objects.exists()

    client = client_of(user)
    retried = deposit_with_key(client, key)
    assert retried.status_code == 201, retried.content
    assert not retried.has_header("Idempotent-Replayed")
    assert deposits() == 1
    replayed = deposit_with_key(client, key)
    assert replayed.status_code == 201 and replayed["Idempotent-Replayed"] == "true"
    assert replayed.json() == retried.json()
    assert deposits() == 1 and AdminAction.objects.count() == 1
    usdt_fund.refresh_from_db()
    assert usdt_fund.balance_units == 10 * 10**8
    assert_books_hold(usdt_fund)


def age(key: str, by: timedelta) -> None:
    """Makes a stored key older (created_at is auto_now_add: only .update() gets past it)."""
    assert IdempotentRequest.objects.filter(key=key).update(created_at=timezone.now() - by) == 1


def test_it_takes_a_key_older_than_its_hours_for_a_new_request(usdt_fund, settings):
    """A key is remembered for IDEMPOTENCY_KEY_HOURS only: after that the same key, with the same
    or another body, is a new request (booked again, not replayed, not refused), and it is
    remembered afresh from then on."""
    assert settings.IDEMPOTENCY_KEY_HOURS == 24
    client = client_of(settlement_staff_user())
    first = deposit_with_key(client, "monthly-top-up")
    assert first.status_code == 201 and deposits() == 1

    age("monthly-top-up", timedelta(hours=23, minutes=59))
    assert deposit_with_key(client, "monthly-top-up")["Idempotent-Replayed"] == "true"
    assert deposit_with_key(client, "monthly-top-up", {**BODY, "amount": "11"}).status_code == 409
    assert deposits() == 1

    age("monthly-top-up", timedelta(hours=24, minutes=1))
    again = deposit_with_key(client, "monthly-top-up")
    assert again.status_code == 201 and not again.has_header("Idempotent-Replayed")
    assert again.json()["seq"] != first.json()["seq"] and deposits() == 2
    assert deposit_with_key(client, "monthly-top-up")["Idempotent-Replayed"] == "true"

    settings.IDEMPOTENCY_KEY_HOURS = 2
    age("monthly-top-up", timedelta(hours=3))
    other = deposit_with_key(client, "monthly-top-up", {**BODY, "amount": "11"})
    assert other.status_code == 201 and not other.has_header("Idempotent-Replayed")
    assert deposits() == 3
    assert IdempotentRequest.objects.filter(key="monthly-top-up").count() == 1
    assert_books_hold(usdt_fund)


def test_it_prunes_the_expired_keys_only(db, settings):
    """The hourly task forgets the keys past IDEMPOTENCY_KEY_HOURS and keeps the rest, so that
    the table stays the size of a day's requests; it says how many it removed."""
    user = settlement_staff_user()
    ages = {
        "an-hour": timedelta(hours=1),
        "almost-a-day": timedelta(hours=23, minutes=59),
        "a-day-and-a-minute": timedelta(hours=24, minutes=1),
        "a-month": timedelta(days=30),
    }
    for key, by in ages.items():
        IdempotentRequest.objects.create(
            user=user, key=key, fingerprint="0" * 64, status_code=201, response={}
        )
        age(key, by)

    def kept() -> set[str]:
        return set(IdempotentRequest.objects.values_list("key", flat=True))

    assert idempotency_keys_prune() == 2
    assert kept() == {"an-hour", "almost-a-day"}
    assert idempotency_keys_prune() == 0
    assert idempotency_keys_prune(now=timezone.now() + timedelta(minutes=2)) == 1
    assert kept() == {"an-hour"}

    IdempotentRequest.objects.create(
        user=user, key="expired", fingerprint="0" * 64, status_code=201, response={}
    )
    age("expired", timedelta(days=2))
    assert prune_idempotency_keys() == 1  # the Celery task's own function
    assert kept() == {"an-hour"}
    settings.IDEMPOTENCY_KEY_HOURS = 1
    age("an-hour", timedelta(hours=1, minutes=1))
    assert prune_idempotency_keys.apply().get() == 1  # and as Celery runs it
    assert not kept()


def test_it_books_one_deposit_for_one_key_sent_ten_times_at_once(usdt_fund):
    """A client that retries on a timeout may have its first try still running: the tries wait
    on the key's claim, and every one of them gets the first one's answer (201), never a second
    deposit, a 409 or a 500."""
    user = settlement_staff_user()
    clients = [client_of(user) for _ in range(10)]

    def send(client):
        response = deposit_with_key(client, "one-key-ten-tries")
        return response.status_code, response.get("Idempotent-Replayed"), response.json()

    answers = run_together(*[lambda c=c: send(c) for c in clients])

    assert [status for status, _, _ in answers] == [201] * 10, answers
    assert sorted(replayed or "fresh" for _, replayed, _ in answers) == ["fresh"] + ["true"] * 9
    assert all(body == answers[0][2] for _, _, body in answers)
    assert deposits() == 1 and AdminAction.objects.count() == 1
    stored = IdempotentRequest.objects.get()
    assert (stored.key, stored.status_code, stored.response) == (
        "one-key-ten-tries",
        201,
        answers[0][2],
    )
    usdt_fund.refresh_from_db()
    assert usdt_fund.balance_units == 10 * 10**8
    assert_books_hold(usdt_fund)
