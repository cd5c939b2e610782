"""The API's actors (tests.helpers.ACTORS): anonymous, a trader, another trader, the engine,
staff without the settlement permission, settlement staff."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone
from rest_framework.test import APIClient

from statements.models import ApiToken
from tests.factories import UserFactory
from tests.helpers import client_for


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


@pytest.fixture
def recent(usdt_fund):
    """The USDT fund, its first cycle started yesterday at midnight: a takeover closed a minute
    ago falls in today's open cycle."""
    usdt_fund.anchor = timezone.now().replace(
        hour=0, minute=0, second=0, microsecond=0
    ) - timedelta(days=1)
    usdt_fund.save()
    return usdt_fund
