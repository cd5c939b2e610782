"""Opening and closing settlement cycles."""

from datetime import timedelta

import pytest

from fund.models import SettlementCycle
from fund.services.cycles import RESEND_AFTER, cycles_close_due
from fund.services.liquidations import TakeoverInput, liquidations_record
from tests.helpers import at, book_loss

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
    assert [c.ends_at - c.starts_at for c in cycles] == [
        timedelta(days=1),
        timedelta(hours=8),
        timedelta(hours=8),
    ]
    assert [str(c.fund_ratio) for c in cycles] == ["0.2000", "0.5000", "0.5000"]


def test_it_can_run_twice_for_the_same_minute(usdt_fund):
    cycles_close_due(now=at(1, 1))
    again = cycles_close_due(now=at(1, 1))
    assert again.opened == [] and again.closed == []
    assert SettlementCycle.objects.count() == 2  # day 0, from the anchor, and day 1


def test_it_starts_the_first_cycle_at_the_anchor_and_leaves_no_gap(usdt_fund, linear):
    """A fund whose scheduler first runs days after its anchor still books a takeover closed
    in between, in the cycle of its close time."""
    cycles_close_due(now=at(3, 1))
    assert [c.starts_at for c in SettlementCycle.objects.order_by("starts_at")] == [
        at(d) for d in range(4)
    ]
    takeover = book_loss(linear, "1", at(2, 5))
    assert takeover.cycle.starts_at == at(2) and not takeover.late


def test_it_books_late_takeovers_of_one_batch_into_the_same_next_open_cycle(usdt_fund, linear):
    """Cycles of day 0 and day 1 settled, none open after them: both late losses go to the one
    new cycle of day 2, whatever their order in the batch."""
    from fund.services.settlement import settlement_cycle_settle

    cycles_close_due(now=at(1, 1))
    for cycle in SettlementCycle.objects.order_by("starts_at"):
        cycles_close_due(now=cycle.settle_after, claim=False)
        settlement_cycle_settle(
            cycle_id=cycle.id,
            now=at(2) - timedelta(minutes=1) if cycle.starts_at == at(1) else cycle.settle_after,
            ignore_grace=True,
        )
    items = [takeover_item("late-1", at(1, 5)), takeover_item("late-0", at(0, 5))]
    rows = liquidations_record(items=items, now=at(2, 1)).rows
    assert [r.cycle.starts_at for r in rows] == [at(2), at(2)] and all(r.late for r in rows)
    assert SettlementCycle.objects.filter(starts_at=at(2)).count() == 1


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


def takeover_item(external_id, closed_at):
    return TakeoverInput(
        external_id=external_id,
        contract="BTCUSDT",
        side="long",
        quantity="1",
        takeover_price="100",
        close_price="90",
        remaining_margin="0",
        taken_over_at=closed_at - timedelta(minutes=1),
        closed_at=closed_at,
    )


def test_it_sends_a_failed_settlement_again_less_and_less_often(usdt_fund):
    cycles_close_due(now=at(0, 5))
    due_at = at(1) + timedelta(minutes=5)
    [cycle_id] = cycles_close_due(now=due_at).to_settle
    SettlementCycle.objects.filter(pk=cycle_id).update(
        status=S.FAILED, attempts=3, error="OperationalError: gone"
    )
    # Three attempts failed: the next is sent after 4 × RESEND_AFTER, not before.
    assert cycles_close_due(now=due_at + RESEND_AFTER * 3).to_settle == []
    assert cycles_close_due(now=due_at + RESEND_AFTER * 4).to_settle == [cycle_id]
