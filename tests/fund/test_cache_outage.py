"""With the cache (Redis) unreachable, the portal reads and the engine's ingestion go on, and so
does signing in, its lockout held in the database. Runs on any database: the cache points at a
closed port."""

import socket
from datetime import timedelta

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from fund.models import LiquidationTakeover
from statements.models import ApiToken
from tests.factories import UserFactory
from tests.helpers import assert_books_hold, client_for, deposit, takeover_item

pytestmark = pytest.mark.django_db


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


@pytest.fixture
def dead_cache():
    url = f"redis://127.0.0.1:{closed_port()}/0"
    with override_settings(
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}
        }
    ):
        yield


@pytest.fixture(autouse=True)
def fresh_cache():  # the suite's cache clearing would fail against the dead cache
    yield


def test_pages_and_public_reads_render_uncached(usdt_fund, linear, dead_cache):
    deposit(usdt_fund, "12.5")
    for url in (
        "/",
        "/funds/USDT/",
        "/cycles/",
        "/api/v1/funds/USDT",
        "/api/v1/funds/USDT/records",
    ):
        response = Client().get(url)
        assert response.status_code == 200, url
    assert b"12.50000000" in Client().get("/funds/USDT/").content


@pytest.mark.django_db(
    transaction=True
)  # the commit runs the page cache's refresh, which meets the dead cache
def test_ingestion_answers_and_books(usdt_fund, linear, dead_cache):
    usdt_fund.anchor = timezone.now() - timedelta(days=1)
    usdt_fund.save()
    engine = client_for(UserFactory(username="trading-engine"), ApiToken.Kind.ENGINE)
    response = engine.post(
        "/api/v1/ingest/liquidations",
        {
            "items": [
                takeover_item(
                    "x-1",
                    quantity="1",
                    takeover_price="100",
                    close_price="99.5",
                    remaining_margin="2",
                )
            ]
        },
        format="json",
    )
    assert response.status_code == 201, response.data
    assert LiquidationTakeover.objects.filter(external_id="x-1").exists()
    assert_books_hold(usdt_fund)


def test_signing_in_goes_on_and_its_lockout_holds(dead_cache):
    """The login budgets live in the database (statements/lockout.py), not the cache."""
    UserFactory(username="carol", password="a-good-password-1")
    ok = Client().post("/accounts/login/", {"username": "carol", "password": "a-good-password-1"})
    assert ok.status_code == 302
    for _ in range(5):
        Client().post("/accounts/login/", {"username": "carol", "password": "wrong"})
    locked = Client().post(
        "/accounts/login/", {"username": "carol", "password": "a-good-password-1"}
    )
    assert locked.status_code == 200 and b"Too many failed logins" in locked.content
