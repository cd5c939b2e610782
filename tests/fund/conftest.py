"""Fixtures shared by the fund's tests: a large due cycle (fault tests), settlement staff, a
webhook receiver (a real HTTP server on 127.0.0.1, tests/receiver.py)."""

import random

import pytest
from django.contrib.auth.models import Permission

from fund.models import SettlementCycle
from fund.services.cycles import cycles_close_due
from tests.factories import UserFactory
from tests.helpers import LARGE_CYCLE_POSITIONS, at, book_loss, deposit, report_many_profits
from tests.receiver import Receiver


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


@pytest.fixture
def ops(db):
    """Staff with the settlement permission: the console's and the admin API's user."""
    user = UserFactory(username="ops", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="settle_cycles"))
    return user


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()
