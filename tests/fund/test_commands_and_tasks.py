"""The operator's commands and the Celery tasks (run in-process here; on a real worker in
test_celery_worker.py)."""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from fund.models import SettlementCycle
from fund.tasks import close_due_cycles, settle_cycle
from tests.factories import FundFactory
from tests.helpers import book_loss, deposit, report_profits

pytestmark = pytest.mark.django_db


@pytest.fixture
def usdt_fund(db):
    """A fund whose cycles start two days ago (these tests run on the real clock)."""
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    return FundFactory(anchor=today - timedelta(days=2))


@pytest.fixture
def yesterday_cycle(usdt_fund, linear):
    """A cycle of yesterday with the worked example's numbers, still open."""
    deposit(usdt_fund, "1000")
    now = timezone.now()
    t = book_loss(linear, "500", now - timedelta(days=1))
    report_profits(t.cycle, linear, {1: "600", 2: "300", 3: "80", 4: "20"})
    return t.cycle


def test_it_closes_and_settles_due_cycles_from_the_beat_task(yesterday_cycle):
    summary = close_due_cycles.delay().get()
    assert yesterday_cycle.id in summary["to_settle"]
    yesterday_cycle.refresh_from_db()
    assert yesterday_cycle.status == SettlementCycle.Status.SETTLED
    assert yesterday_cycle.participant_count == 2
    assert SettlementCycle.objects.filter(status="open").count() == 1


def test_it_settles_once_when_the_task_is_delivered_twice(yesterday_cycle):
    call_command("close_due_cycles", "--no-settle")
    first = settle_cycle.delay(yesterday_cycle.id).get()
    second = settle_cycle.delay(yesterday_cycle.id).get()
    assert first["posted"] and not second["posted"]
    assert yesterday_cycle.apportionments.count() == 2


def test_it_settles_from_the_command_line(yesterday_cycle, capsys):
    call_command("close_due_cycles", "--no-settle")
    call_command("settle", str(yesterday_cycle.id))
    assert (
        "settled: L=500.00000000 F=100.00000000 U=400.00000000 participants=2"
        in capsys.readouterr().out
    )
    call_command("settle", str(yesterday_cycle.id))
    assert "nothing posted" in capsys.readouterr().out


def test_it_refuses_to_settle_an_open_cycle_from_the_command_line(usdt_fund, linear):
    t = book_loss(linear, "1", timezone.now() - timedelta(seconds=30))
    with pytest.raises(CommandError, match="close it first"):
        call_command("settle", str(t.cycle.id))
    t.cycle.refresh_from_db()
    assert t.cycle.status == SettlementCycle.Status.OPEN


def test_it_reports_an_unknown_cycle(db):
    with pytest.raises(CommandError, match="no settlement cycle 999"):
        call_command("settle", "999")


@pytest.mark.django_db(transaction=True)
def test_it_settles_due_cycles_from_the_demo_servers_in_process_beat(yesterday_cycle):
    import threading

    from fund.management.commands.serve_demo import Command

    # One run of the beat in its own thread and connection, as in the demo server.
    thread = threading.Thread(target=Command.beat, kwargs={"interval": 0.05, "runs": 1})
    thread.start()
    thread.join(timeout=60)
    yesterday_cycle.refresh_from_db()
    assert yesterday_cycle.status == SettlementCycle.Status.SETTLED
    assert yesterday_cycle.apportionments.count() == 2
