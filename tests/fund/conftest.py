"""Fixtures shared by the fund's PostgreSQL fault tests."""

import random

import pytest

from fund.models import SettlementCycle
from fund.services.cycles import cycles_close_due
from tests.conftest import at
from tests.helpers import book_loss, deposit, report_many_profits

LARGE_CYCLE_POSITIONS = 40_000


@pytest.fixture
def large_cycle(usdt_fund, linear):
    """A closed, due cycle of the USDT fund with LARGE_CYCLE_POSITIONS profitable positions."""
    deposit(usdt_fund, "1000")
    book_loss(linear, "250000", at(0, 10))
    cycle = SettlementCycle.objects.get()
    rng = random.Random(7)
    report_many_profits(
        cycle,
        linear,
        {
            p: f"{rng.randint(1, 5000)}.{rng.randint(0, 99_999_999):08d}"
            for p in range(1, LARGE_CYCLE_POSITIONS + 1)
        },
    )
    cycles_close_due(now=cycle.settle_after)
    return cycle
