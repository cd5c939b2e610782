"""A settle task sent through Redis to a real Celery worker process, on PostgreSQL."""

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.db import connection

from config.celery import app
from fund.models import SettlementCycle
from fund.services.cycles import cycles_close_due
from fund.tasks import settle_cycle
from tests.helpers import book_loss, deposit, report_profits

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


def database_url_of_test_database() -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.fixture
def celery_worker_process(tmp_path):
    """A real worker on its own queue, talking to the test database; stopped with SIGTERM."""
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url_of_test_database(),
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "CELERY_TASK_ALWAYS_EAGER": "false",
    }
    log = (tmp_path / "worker.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "--without-mingle",
         "--without-gossip", "--without-heartbeat", "-Q", queue, "--loglevel=INFO"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        yield queue, tmp_path / "worker.log"
    finally:
        app.conf.task_always_eager = previous
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def test_it_settles_a_cycle_on_a_real_worker_through_redis(usdt_fund, linear, day1, celery_worker_process):
    queue, log = celery_worker_process
    deposit(usdt_fund, "1000")
    book_loss(linear, "500", day1)
    cycle = SettlementCycle.objects.get()
    report_profits(cycle, linear, {1: "600", 2: "300", 3: "80", 4: "20"})
    cycles_close_due(now=cycle.settle_after)

    first = settle_cycle.apply_async(args=[cycle.id], queue=queue)
    duplicate = settle_cycle.apply_async(args=[cycle.id], queue=queue)
    try:
        results = [first.get(timeout=60), duplicate.get(timeout=60)]
    except Exception:
        pytest.fail("the worker did not answer:\n" + log.read_text()[-4000:])

    assert [r["posted"] for r in results] == [True, False]
    cycle.refresh_from_db()
    assert cycle.status == SettlementCycle.Status.SETTLED
    assert sorted(cycle.apportionments.values_list("amount_units", flat=True)) == [13333333333, 26666666667]
    usdt_fund.refresh_from_db()
    assert usdt_fund.balance_units == 900 * 10**8
    assert cycle.fund_records.filter(kind="settlement_coverage").count() == 1
