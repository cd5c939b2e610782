"""Opening and closing settlement cycles."""

from datetime import timedelta

import pytest

from fund.models import SettlementCycle
from fund.services.cycles import RESEND_AFTER, cycles_close_due
from tests.conftest import at

pytestmark = pytest.mark.django_db
S = SettlementCycle.Status


def test_it_opens_cycles_back_to_back_on_the_anchor_grid(usdt_fund):
    cycles_close_due(now=at(0, 5))
    due = cycles_close_due(now=at(2) + timedelta(minutes=3))
    cycles = list(SettlementCycle.objects.order_by("starts_at"))
    assert [(c.starts_at, c.ends_at) for c in cycles] == [(at(d), at(d + 1)) for d in range(3)]
    assert [c.status for c in cycles] == [S.CLOSED, S.CLOSED, S.OPEN]
    assert due.to_settle == [cycles[0].id]  # the second is still in its grace period until 02:05
    assert due.opened == [cycles[1].id, cycles[2].id] and due.closed == [cycles[0].id, cycles[1].id]


def test_it_lists_a_cycle_for_settlement_only_after_its_grace_period(usdt_fund):
    cycles_close_due(now=at(0, 5))
    assert cycles_close_due(now=at(1, 0)).to_settle == []
    assert cycles_close_due(now=at(1) + timedelta(minutes=4, seconds=59)).to_settle == []
    assert len(cycles_close_due(now=at(1) + timedelta(minutes=5)).to_settle) == 1


def test_it_applies_a_schedule_change_from_the_next_cycle(usdt_fund):
    cycles_close_due(now=at(0, 5))
    usdt_fund.cycle_seconds = 3600 * 8
    usdt_fund.fund_ratio = "0.5"
    usdt_fund.save()
    cycles_close_due(now=at(1, 9))
    cycles = list(SettlementCycle.objects.order_by("starts_at"))
    assert [c.ends_at - c.starts_at for c in cycles] == [timedelta(days=1), timedelta(hours=8), timedelta(hours=8)]
    assert [str(c.fund_ratio) for c in cycles] == ["0.2000", "0.5000", "0.5000"]


def test_it_can_run_twice_for_the_same_minute(usdt_fund):
    cycles_close_due(now=at(1, 1))
    again = cycles_close_due(now=at(1, 1))
    assert again.opened == [] and again.closed == []
    assert SettlementCycle.objects.count() == 1


def test_it_sends_a_due_settlement_once_until_it_is_overdue(usdt_fund):
    cycles_close_due(now=at(0, 5))
    due_at = at(1) + timedelta(minutes=5)
    first = cycles_close_due(now=due_at).to_settle
    assert len(first) == 1
    # The next minute's beat, or a second beat, finds it claimed and does not send it again.
    assert cycles_close_due(now=due_at).to_settle == []
    assert cycles_close_due(now=due_at + timedelta(minutes=1)).to_settle == []
    # Still not settled long after: the task was lost, so it is sent again.
    assert cycles_close_due(now=due_at + RESEND_AFTER).to_settle == first


def test_it_lists_without_claiming_when_asked_not_to_send(usdt_fund):
    cycles_close_due(now=at(0, 5))
    due_at = at(1) + timedelta(minutes=5)
    assert len(cycles_close_due(now=due_at, claim=False).to_settle) == 1
    assert len(cycles_close_due(now=due_at).to_settle) == 1
