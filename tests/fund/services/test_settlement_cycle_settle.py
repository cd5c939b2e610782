"""Settling cycles through the services, on the real database."""

from datetime import timedelta
from decimal import Decimal

import pytest

from fund.models import Apportionment, FundRecord, SettlementCycle
from fund.services.cycles import cycles_close_due
from fund.services.settlement import posting as settlement_service
from fund.services.settlement import settlement_cycle_settle, settlement_preview
from statements.models import Statement
from tests.helpers import assert_books_hold, at, book_loss, book_profit, deposit, report_profits

pytestmark = pytest.mark.django_db


def settle_day(cycle):
    """Closes the cycle's day and settles it after the grace period."""
    cycles_close_due(now=cycle.settle_after)
    return settlement_cycle_settle(cycle_id=cycle.id, now=cycle.settle_after)


@pytest.fixture
def worked_example(usdt_fund, linear, day1):
    """docs/rules.md §3: balance 1,000, loss 500, profits A 600, B 300, C 80, D 20."""
    deposit(usdt_fund, "1000")
    book_loss(linear, "500", day1)
    cycle = SettlementCycle.objects.get(fund=usdt_fund)
    report_profits(cycle, linear, {1: "600", 2: "300", 3: "80", 4: "20"})
    return cycle


def test_it_settles_the_worked_example_exactly(worked_example):
    outcome = settle_day(worked_example)
    assert outcome.posted
    cycle = outcome.cycle
    cycle.refresh_from_db()
    assert cycle.status == SettlementCycle.Status.SETTLED
    assert cycle.loss_units == 500 * 10**8 and cycle.fund_share_units == 100 * 10**8
    assert cycle.users_share_units == 400 * 10**8 and cycle.participant_count == 2
    assert cycle.threshold_profit_units == 300 * 10**8
    amounts = {
        a.position.position_id: a.statement.amount
        for a in cycle.apportionments.select_related("position", "statement__asset")
    }
    assert amounts == {1: Decimal("-266.66666667"), 2: Decimal("-133.33333333")}
    a = Apportionment.objects.get(position__position_id=1)
    assert (a.rank, a.rounding_unit) == (1, True)
    cycle.fund.refresh_from_db()
    assert cycle.fund.balance == Decimal("900")
    coverage = FundRecord.objects.get(kind=FundRecord.Kind.SETTLEMENT_COVERAGE)
    assert coverage.amount_units == -100 * 10**8 and coverage.cycle == cycle
    assert Statement.objects.get(apportionment=a).type == Statement.Type.APPORTIONMENT
    assert_books_hold(cycle.fund)


def test_it_previews_without_writing(worked_example):
    result = settlement_preview(cycle_id=worked_example.id)
    assert result.amounts == [26666666667, 13333333333]
    assert not Apportionment.objects.exists() and FundRecord.objects.count() == 1


def test_it_posts_once_when_settled_twice(worked_example):
    first = settle_day(worked_example)
    second = settlement_cycle_settle(
        cycle_id=worked_example.id, now=worked_example.settle_after + timedelta(hours=1)
    )
    assert first.posted and not second.posted
    assert Apportionment.objects.count() == 2 and Statement.objects.count() == 2
    assert FundRecord.objects.filter(kind=FundRecord.Kind.SETTLEMENT_COVERAGE).count() == 1


def test_it_leaves_nothing_posted_when_posting_fails_and_can_be_retried(
    worked_example, monkeypatch
):
    real_insert = settlement_service.insert_rows
    calls = []

    def failing_insert(model, columns, rows):
        calls.append(model)
        if model is Apportionment:
            raise RuntimeError("disk full")
        return real_insert(model, columns, rows)

    monkeypatch.setattr(settlement_service, "insert_rows", failing_insert)
    with pytest.raises(RuntimeError):
        settle_day(worked_example)
    assert calls == [Statement, Apportionment]  # the statements were written before it failed
    worked_example.refresh_from_db()
    assert worked_example.status == SettlementCycle.Status.FAILED
    assert "disk full" in worked_example.error
    assert not Statement.objects.exists() and not Apportionment.objects.exists()
    assert FundRecord.objects.count() == 1 and worked_example.fund.records.get().kind == "deposit"
    worked_example.fund.refresh_from_db()
    assert worked_example.fund.balance == Decimal(1000)

    monkeypatch.setattr(settlement_service, "insert_rows", real_insert)
    outcome = settlement_cycle_settle(cycle_id=worked_example.id, now=worked_example.settle_after)
    assert outcome.posted and outcome.cycle.attempts == 2 and outcome.cycle.error == ""
    assert_books_hold(worked_example.fund)


def test_it_settles_a_cycle_without_loss_with_no_apportionments(usdt_fund, linear, day1):
    book_profit(linear, "40", day1)
    cycle = SettlementCycle.objects.get(fund=usdt_fund)
    report_profits(cycle, linear, {1: "600"})
    outcome = settle_day(cycle)
    assert outcome.posted and outcome.cycle.participant_count == 0 and outcome.cycle.loss_units == 0
    assert not Apportionment.objects.exists()
    assert_books_hold(cycle.fund)


def test_it_backstops_a_loss_with_no_profitable_position(usdt_fund, linear, day1):
    deposit(usdt_fund, "30")
    book_loss(linear, "100", day1)
    cycle = SettlementCycle.objects.get(fund=usdt_fund)
    report_profits(cycle, linear, {1: "-5"})
    cycle = settle_day(cycle).cycle
    assert cycle.fund_share_units == 20 * 10**8 and cycle.backstop_units == 10 * 10**8
    assert cycle.uncovered_units == 70 * 10**8
    usdt_fund.refresh_from_db()
    assert usdt_fund.balance_units == 0
    assert_books_hold(cycle.fund)


def test_it_charges_nothing_to_an_empty_fund(usdt_fund, linear, day1):
    book_loss(linear, "10", day1)
    cycle = SettlementCycle.objects.get(fund=usdt_fund)
    report_profits(cycle, linear, {5: "100"})
    cycle = settle_day(cycle).cycle
    assert cycle.fund_share_units == 0 and cycle.apportioned_units == 10 * 10**8
    assert not FundRecord.objects.filter(kind=FundRecord.Kind.SETTLEMENT_COVERAGE).exists()
    assert_books_hold(cycle.fund)


def test_it_settles_ties_at_the_threshold_by_position_id(usdt_fund, linear, day1):
    deposit(usdt_fund, "1000")
    book_loss(linear, "100", day1)
    cycle = SettlementCycle.objects.get(fund=usdt_fund)
    report_profits(cycle, linear, {30: "50", 10: "50", 20: "50", 40: "5"})
    cycle = settle_day(cycle).cycle
    ranks = list(
        cycle.apportionments.order_by("rank").values_list("position__position_id", flat=True)
    )
    assert ranks == [10, 20, 30]
    assert_books_hold(cycle.fund)


def test_it_waits_for_the_grace_period(worked_example):
    from django.core.exceptions import ValidationError

    cycles_close_due(now=worked_example.ends_at)
    with pytest.raises(ValidationError, match="grace period"):
        settlement_cycle_settle(
            cycle_id=worked_example.id, now=worked_example.ends_at + timedelta(minutes=1)
        )
    assert not Apportionment.objects.exists()
    worked_example.refresh_from_db()
    assert worked_example.status == SettlementCycle.Status.CLOSED


def test_it_books_a_late_takeover_into_the_next_open_cycle(worked_example, linear):
    settle_day(worked_example)
    late = book_loss(linear, "7", worked_example.ends_at - timedelta(hours=1))
    assert late.late and late.cycle.starts_at == worked_example.ends_at


def test_it_refuses_position_profits_for_a_settled_cycle(worked_example, linear):
    from fund.errors import ConflictError

    settle_day(worked_example)
    with pytest.raises(ConflictError, match="settled"):
        report_profits(worked_example, linear, {99: "10"})
    assert worked_example.position_profits.count() == 4


def test_it_settles_the_demo_sized_cycles_across_days(usdt_fund, linear):
    deposit(usdt_fund, "50")
    for day in range(3):
        book_loss(linear, "12.5", at(day, 3))
        book_profit(linear, "2", at(day, 4))
    for cycle in SettlementCycle.objects.order_by("starts_at"):
        report_profits(
            cycle,
            linear,
            {cycle.id * 10 + 1: "30", cycle.id * 10 + 2: "20"},
            account_prefix=f"c{cycle.id}",
        )
    due = cycles_close_due(now=at(3, 1))
    assert len(due.to_settle) == 3
    for cycle_id in due.to_settle:
        settlement_cycle_settle(cycle_id=cycle_id, now=at(3, 1))
    assert_books_hold(usdt_fund)  # every settled cycle
    assert SettlementCycle.objects.get(status="open").starts_at == at(3)
