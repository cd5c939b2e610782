"""A settle task sent through Redis to a real Celery worker process, on PostgreSQL."""

import uuid

import pytest

from config.celery import app
from fund.models import SettlementCycle
from fund.services.cycles import cycles_close_due
from fund.tasks import settle_cycle
from tests.helpers import assert_books_hold, book_loss, deposit, report_profits
from tests.workers import worker

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def celery_worker_process(tmp_path):
    """A real worker on its own queue, talking to the test database."""
    queue = f"test-{uuid.uuid4().hex[:8]}"
    process = worker(queue, tmp_path / "worker.log")
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        yield queue, tmp_path / "worker.log"
    finally:
        app.conf.task_always_eager = previous
        process.stop()


def test_it_settles_a_cycle_on_a_real_worker_through_redis(
    usdt_fund, linear, day1, celery_worker_process
):
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
    assert sorted(cycle.apportionments.values_list("amount_units", flat=True)) == [
        13333333333,
        26666666667,
    ]
    usdt_fund.refresh_from_db()
    assert usdt_fund.balance_units == 900 * 10**8
    assert cycle.fund_records.filter(kind="settlement_coverage").count() == 1
    assert_books_hold(usdt_fund)
