"""The API's actors: anonymous, a trader, another trader, the engine, staff without the
settlement permission, settlement staff; and a settled worked example to look at."""

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from statements.models import ApiToken
from statements.services import api_token_create
from tests.factories import UserFactory


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
