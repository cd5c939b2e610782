"""A trader's own API tokens, from the site: made (shown once), listed, revoked, capped; and
the logout says it worked."""

import re

import pytest
from django.test import Client

from statements.models import ApiToken
from statements.services import PERSONAL_TOKENS_MAX

pytestmark = pytest.mark.django_db


@pytest.fixture
def trader(world):
    client = Client()
    client.force_login(world.trader)
    return client


def test_a_trader_makes_a_token_sees_it_once_uses_it_and_revokes_it(trader, world):
    made = trader.post("/me/tokens/", {"name": "tax export"})
    body = made.content.decode()
    token = re.search(r"<code data-token>([^<]+)</code>", body).group(1)
    assert made["Cache-Control"].count("no-store") and "shown this once" in body
    listing = trader.get("/me/tokens/").content.decode()
    assert "tax export" in listing and token not in listing  # never shown again
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.get("/api/v1/me/statements").status_code == 200
    assert api.get("/api/v1/admin/actions").status_code == 403
    row = ApiToken.objects.get(user=world.trader)
    done = trader.post(f"/me/tokens/{row.prefix}/revoke/", follow=True).content.decode()
    assert "is revoked" in done and "revoked 20" in done
    assert api.get("/api/v1/me/statements").status_code == 401


def test_the_token_page_refuses_bad_names_other_peoples_tokens_and_too_many(trader, world):
    assert "This field is required" in trader.post("/me/tokens/", {"name": ""}).content.decode()
    long = trader.post("/me/tokens/", {"name": "x" * 101}).content.decode()
    assert "at most 100 characters" in long and not ApiToken.objects.exists()
    other = Client()
    other.force_login(world.other)
    other.post("/me/tokens/", {"name": "bob's"})
    theirs = ApiToken.objects.get(user=world.other)
    refused = trader.post(f"/me/tokens/{theirs.prefix}/revoke/", follow=True).content.decode()
    assert "no such token of yours" in refused
    assert ApiToken.objects.get(pk=theirs.pk).revoked_at is None
    for n in range(PERSONAL_TOKENS_MAX):
        trader.post("/me/tokens/", {"name": f"t{n}"})
    over = trader.post("/me/tokens/", {"name": "one more"}).content.decode()
    assert "revoke one first" in over
    assert ApiToken.objects.filter(user=world.trader).count() == PERSONAL_TOKENS_MAX
    assert trader.get("/me/tokens/x/revoke/").status_code == 405


def test_logging_out_says_so_on_the_funds_page_and_caches_nothing_of_it(trader):
    page = trader.post("/accounts/logout/", follow=True).content.decode()
    assert "You are logged out" in page
    assert "You are logged out" not in Client().get("/").content.decode()
