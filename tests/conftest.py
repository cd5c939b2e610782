import os
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.db import connection

from fund.models import SettlementCycle
from fund.services.cycles import cycles_close_due
from fund.services.settlement import settlement_cycle_settle
from statements.models import TraderAccount
from tests.factories import ANCHOR, ContractFactory, FundFactory, UserFactory
from tests.helpers import at, book_loss, deposit, report_profits

ON_POSTGRES = bool(os.environ.get("DATABASE_URL", "").startswith("postgres"))
ON_REDIS = bool(os.environ.get("REDIS_URL"))


def pytest_collection_modifyitems(config, items):
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL (see .ci/run)")
    skip_redis = pytest.mark.skip(
        reason="needs Redis and PostgreSQL: set REDIS_URL and DATABASE_URL (see .ci/run)"
    )
    for item in items:
        if "postgres" in item.keywords and not ON_POSTGRES:
            item.add_marker(skip_pg)
        if "redis" in item.keywords and not (ON_REDIS and ON_POSTGRES):
            item.add_marker(skip_redis)


@pytest.fixture
def usdt_fund(db):
    return FundFactory()


@pytest.fixture
def linear(usdt_fund):
    return ContractFactory(symbol="BTCUSDT", margin_asset=usdt_fund.asset)


@pytest.fixture
def day1():
    """A moment inside the first daily cycle of the test funds."""
    return ANCHOR + timedelta(hours=10)


@dataclass
class World:
    cycle: SettlementCycle
    trader: object
    other: object


@pytest.fixture
def world(usdt_fund, linear) -> World:
    """docs/rules.md §3 settled: trader owns position 1 (A), other trader position 2 (B)."""
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


@pytest.fixture(autouse=True)
def fresh_cache():
    """Each test starts with an empty cache: cached pages must not leak between tests."""
    from django.core.cache import cache

    from fund.pagecache import _local, _memo

    cache.clear()
    _local.clear()
    _memo[:] = [0.0, None]
    yield
    cache.clear()
    _local.clear()
    _memo[:] = [0.0, None]


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """On PostgreSQL the books refuse UPDATE, DELETE and TRUNCATE (migration 0008); the test
    database lets its own flush between tests through, as maintenance would."""
    if not ON_POSTGRES:
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        name = connection.settings_dict["NAME"]
        cursor.execute(f"ALTER DATABASE \"{name}\" SET fund.allow_maintenance = 'on'")
        cursor.execute("SET fund.allow_maintenance = 'on'")
