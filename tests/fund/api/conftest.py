"""The API's actors: anonymous, a trader, another trader, the engine, staff without the
settlement permission, settlement staff; and a settled worked example to look at."""

from dataclasses import dataclass

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from fund.models import SettlementCycle
from fund.services.cycles import cycles_close_due
from fund.services.settlement import settlement_cycle_settle
from statements.models import ApiToken, TraderAccount
from statements.services import api_token_create
from tests.conftest import at
from tests.factories import UserFactory
from tests.helpers import book_loss, deposit, report_profits


@dataclass
class World:
    cycle: SettlementCycle
    trader: object
    other: object


@pytest.fixture
def world(usdt_fund, linear) -> World:
    """RULES.md section 3 settled: trader owns position 1 (A), other trader position 2 (B)."""
    deposit(usdt_fund, "1000")
    book_loss(linear, "500", at(0, 10))
    cycle = SettlementCycle.objects.get(starts_at=at(0))
    report_profits(cycle, linear, {1: "600", 2: "300", 3: "80", 4: "20"})
    trader, other = UserFactory(username="alice"), UserFactory(username="bob")
    TraderAccount.objects.filter(external_id="acct-1").update(user=trader)
    TraderAccount.objects.filter(external_id="acct-2").update(user=other)
    cycles_close_due(now=cycle.settle_after)
    settlement_cycle_settle(cycle_id=cycle.id, now=cycle.settle_after)
    cycle.refresh_from_db()
    return World(cycle=cycle, trader=trader, other=other)


def client_for(user=None, token_kind=None) -> APIClient:
    client = APIClient()
    if token_kind:
        _, token = api_token_create(user=user, kind=token_kind, name="test")
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    elif user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def anonymous():
    return APIClient()


@pytest.fixture
def engine(db):
    return client_for(UserFactory(username="trading-engine"), ApiToken.Kind.ENGINE)


@pytest.fixture
def trader(world):
    return client_for(world.trader)


@pytest.fixture
def other_trader(world):
    return client_for(world.other)


@pytest.fixture
def staff(db):
    return client_for(UserFactory(username="staff", is_staff=True))


@pytest.fixture
def settlement_staff(db):
    user = UserFactory(username="ops", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="settle_cycles"))
    return client_for(user)


ACTORS = ["anonymous", "trader", "other_trader", "engine", "staff", "settlement_staff"]
