"""Two settlements of one cycle started together, on two real PostgreSQL connections."""

from datetime import timedelta

import pytest

from fund.models import Apportionment, FundRecord, LiquidationTakeover, SettlementCycle
from fund.services.cycles import cycles_close_due
from fund.services.settlement import settlement_cycle_settle
from statements.models import Statement
from tests.helpers import (
    assert_books_hold,
    book_loss,
    book_profit,
    deposit,
    report_many_profits,
    report_profits,
    run_together,
    settle_in_background,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_it_posts_once_when_two_settlements_start_together(usdt_fund, linear, day1):
    deposit(usdt_fund, "1000")
    book_loss(linear, "500", day1)
    cycle = SettlementCycle.objects.get()
    report_profits(cycle, linear, {i: str(1000 + i) for i in range(1, 3001)})
    cycles_close_due(now=cycle.settle_after)

    outcomes = run_together(
        *[lambda: settlement_cycle_settle(cycle_id=cycle.id, now=cycle.settle_after)] * 4
    )

    assert sorted(o.posted for o in outcomes) == [False, False, False, True]
    cycle.refresh_from_db()
    assert cycle.status == "settled" and cycle.attempts >= 1
    assert Apportionment.objects.count() == cycle.participant_count > 0
    assert Statement.objects.count() == cycle.participant_count
    assert FundRecord.objects.filter(kind="settlement_coverage").count() == 1
    usdt_fund.refresh_from_db()
    assert usdt_fund.balance_units == 900 * 10**8
    assert_books_hold(usdt_fund)


def test_it_books_a_loss_that_races_a_settlement_either_in_the_cycle_or_late(
    usdt_fund, linear, day1
):
    deposit(usdt_fund, "1000")
    book_loss(linear, "500", day1)
    cycle = SettlementCycle.objects.get()
    report_profits(cycle, linear, dict.fromkeys(range(1, 2001), "10"))
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
        assert (
            racing.late
            and racing.cycle.starts_at == cycle.ends_at
            and cycle.loss_units == 500 * 10**8
        )
    assert cycle.loss_units == -sum(t.engine_result_units for t in cycle.takeovers.all())
    assert_books_hold(usdt_fund)


def test_it_sends_a_due_settlement_once_when_two_beats_run_together(usdt_fund, linear, day1):
    book_loss(linear, "5", day1)
    cycle = SettlementCycle.objects.get()
    dues = run_together(*[lambda: cycles_close_due(now=cycle.settle_after)] * 3)
    assert sorted(cycle_id for due in dues for cycle_id in due.to_settle) == [cycle.id]
    assert SettlementCycle.objects.filter(fund=usdt_fund).count() == 2  # no cycle opened twice
    assert_books_hold(usdt_fund)


@pytest.fixture
def big_cycle(usdt_fund, linear, day1):
    deposit(usdt_fund, "1000")
    book_loss(linear, "500", day1)
    cycle = SettlementCycle.objects.get()
    report_many_profits(cycle, linear, {i: str(1000 + i % 977) for i in range(1, 60_001)})
    cycles_close_due(now=cycle.settle_after)
    return cycle


def test_intake_goes_on_while_a_large_settlement_posts(
    big_cycle, usdt_fund, linear, settlement_log
):
    from fund.services.ledger import fund_withdraw

    thread, outcomes = settle_in_background(big_cycle)
    profit = book_profit(
        linear, "3", big_cycle.ends_at + timedelta(hours=2)
    )  # into the next cycle, booked at once
    fund_withdraw(asset_code="USDT", amount="1", reason="fees")
    posting = SettlementCycle.objects.get(pk=big_cycle.pk).status
    thread.join(timeout=120)
    assert posting == "settling", "the intake waited for the whole settlement"
    assert [o.posted for o in outcomes] == [True], outcomes
    big_cycle.refresh_from_db()
    assert (
        big_cycle.fund_share_units == 100 * 10**8
    )  # min(L × 0.2, B): the balance moves did not change it
    assert (
        big_cycle.balance_before_units == 1002 * 10**8
    )  # read under the fund's lock, after the moves
    assert FundRecord.objects.filter(takeover=profit).exists()
    assert any("settled cycle" in line for line in settlement_log)
    assert not any("posting again" in line for line in settlement_log)
    assert_books_hold(usdt_fund)


@pytest.fixture
def settlement_log():
    """The settlement's log lines, whatever other tests did to the logging set-up."""
    import logging

    lines, logger = [], logging.getLogger("fund.services.settlement")
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    saved = logger.level, logger.disabled
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.disabled = False
    yield lines
    logger.removeHandler(handler)
    logger.level, logger.disabled = saved


def test_a_balance_move_that_changes_the_fund_share_makes_the_posting_start_again(
    usdt_fund, linear, day1, settlement_log
):
    from fund.services.ledger import fund_withdraw

    deposit(usdt_fund, "50")  # F = min(500 × 0.2, 50) = 50: the balance binds
    book_loss(linear, "500", day1)
    cycle = SettlementCycle.objects.get()
    report_many_profits(cycle, linear, {i: str(1000 + i % 977) for i in range(1, 60_001)})
    cycles_close_due(now=cycle.settle_after)

    thread, outcomes = settle_in_background(cycle)
    fund_withdraw(asset_code="USDT", amount="10", reason="moved out during the posting")
    thread.join(timeout=120)
    assert [o.posted for o in outcomes] == [True], outcomes
    assert any("posting again under the fund's lock" in line for line in settlement_log)
    cycle.refresh_from_db()
    assert cycle.balance_before_units == 40 * 10**8 and cycle.fund_share_units == 40 * 10**8
    assert cycle.users_share_units == 460 * 10**8 == cycle.apportioned_units
    usdt_fund.refresh_from_db()
    assert usdt_fund.balance_units == 0
    assert_books_hold(usdt_fund)
