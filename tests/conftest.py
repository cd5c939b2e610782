import os
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from tests.factories import ANCHOR, ContractFactory, FundFactory

ON_POSTGRES = bool(os.environ.get("DATABASE_URL", "").startswith("postgres"))
ON_REDIS = bool(os.environ.get("REDIS_URL"))


def pytest_collection_modifyitems(config, items):
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL (see .ci/run)")
    skip_redis = pytest.mark.skip(reason="needs Redis and PostgreSQL: set REDIS_URL and DATABASE_URL (see .ci/run)")
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


@pytest.fixture
def vendor():
    return connection.vendor


def at(day: int, hour: float = 0) -> datetime:
    return ANCHOR + timedelta(days=day, hours=hour)


__all__ = ["UTC", "at"]
