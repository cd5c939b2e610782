"""Two settlements of one cycle started together, on two real PostgreSQL connections."""

import pytest

from fund.models import Apportionment, FundRecord, LiquidationTakeover, SettlementCycle
from fund.services.cycles import cycles_close_due
from fund.services.settlement import settlement_cycle_settle
from statements.models import Statement
from tests.helpers import assert_books_hold, book_loss, deposit, report_profits, run_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_it_posts_once_when_two_settlements_start_together(usdt_fund, linear, day1):
    deposit(usdt_fund, "1000")
    book_loss(linear, "500", day1)
    cycle = SettlementCycle.objects.get()
    report_profits(cycle, linear, {i: str(1000 + i) for i in range(1, 3001)})
    cycles_close_due(now=cycle.settle_after)

    outcomes = run_together(*[lambda: settlement_cycle_settle(cycle_id=cycle.id, now=cycle.settle_after)] * 4)

    assert sorted(o.posted for o in outcomes) == [False, False, False, True]
    cycle.refresh_from_db()
    assert cycle.status == "settled" and cycle.attempts >= 1
    assert Apportionment.objects.count() == cycle.participant_count > 0
    assert Statement.objects.count() == cycle.participant_count
    assert FundRecord.objects.filter(kind="settlement_coverage").count() == 1
    usdt_fund.refresh_from_db()
    assert usdt_fund.balance_units == 900 * 10**8
    assert_books_hold(usdt_fund)


def test_it_books_a_loss_that_races_a_settlement_either_in_the_cycle_or_late(usdt_fund, linear, day1):
    deposit(usdt_fund, "1000")
    book_loss(linear, "500", day1)
    cycle = SettlementCycle.objects.get()
    report_profits(cycle, linear, {i: "10" for i in range(1, 2001)})
    cycles_close_due(now=cycle.settle_after)

    run_together(
        lambda: settlement_cycle_settle(cycle_id=cycle.id, now=cycle.settle_after),
        lambda: book_loss(linear, "7", day1, external_id="racing-loss"),
    )

    cycle.refresh_from_db()
    racing = LiquidationTakeover.objects.get(external_id="racing-loss")
    if racing.cycle_id == cycle.id:  # booked before the settlement read L
        assert not racing.late and cycle.loss_units == 507 * 10**8
    else:  # booked after: it waits in the next cycle, marked late
        assert racing.late and racing.cycle.starts_at == cycle.ends_at and cycle.loss_units == 500 * 10**8
    assert cycle.loss_units == -sum(t.engine_result_units for t in cycle.takeovers.all())
    assert_books_hold(usdt_fund)


def test_it_sends_a_due_settlement_once_when_two_beats_run_together(usdt_fund, linear, day1):
    book_loss(linear, "5", day1)
    cycle = SettlementCycle.objects.get()
    dues = run_together(*[lambda: cycles_close_due(now=cycle.settle_after)] * 3)
    assert sorted(cycle_id for due in dues for cycle_id in due.to_settle) == [cycle.id]
    assert SettlementCycle.objects.filter(fund=usdt_fund).count() == 2  # no cycle opened twice
    assert_books_hold(usdt_fund)
