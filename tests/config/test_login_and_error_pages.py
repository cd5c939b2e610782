"""Each person lands where they belong after logging in; the 403, 404 and 500 pages are the
site's own (its header and navigation, a sentence that helps)."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client, override_settings
from django.urls import path

from config.urls import urlpatterns as site_urls
from tests.factories import UserFactory


def raising_view(request):
    raise RuntimeError("a fault for the 500 page")


urlpatterns = [path("boom/", raising_view), *site_urls]


def logged_in_to(user, **post) -> str:
    answer = Client().post("/accounts/login/", {"username": user.username,
                                                "password": "pass-for-tests", **post})  # fmt: skip
    assert answer.status_code == 302, answer.content
    return answer["Location"]


def test_a_trader_lands_at_their_statements(world):
    assert logged_in_to(world.trader) == "/me/statements/"


def test_settlement_staff_land_at_the_console_and_other_staff_at_the_admin(db):
    ops = UserFactory(username="ops-login", is_staff=True)
    ops.user_permissions.add(Permission.objects.get(codename="settle_cycles"))
    assert logged_in_to(ops) == "/ops/"
    assert logged_in_to(UserFactory(username="staff-login", is_staff=True)) == "/admin/"
    assert logged_in_to(UserFactory(username="plain-login")) == "/"


def test_a_safe_next_wins_and_an_unsafe_one_is_ignored(world):
    assert logged_in_to(world.trader, next="/cycles/") == "/cycles/"
    assert logged_in_to(world.trader, next="https://evil.example/") == "/me/statements/"


def test_the_404_page_is_the_sites_own(db):
    answer = Client().get("/cycles/999999/")
    page = answer.content.decode()
    assert answer.status_code == 404
    assert 'nav aria-label="Main"' in page and "Not found" in page and 'href="/cycles/"' in page
    assert 'name="color-scheme" content="light dark"' in page


def test_the_403_page_says_why_and_what_to_do(db):
    staff = Client()
    staff.force_login(UserFactory(username="no-account", is_staff=True))
    answer = staff.get("/me/statements/")
    page = answer.content.decode()
    assert answer.status_code == 403
    assert "Not for this login" in page and "no-account" in page
    assert "This login has no trading account." in page and 'nav aria-label="Main"' in page


@override_settings(ROOT_URLCONF="tests.config.test_login_and_error_pages", DEBUG=False)
def test_the_500_page_is_the_sites_own(db):
    client = Client(raise_request_exception=False)
    answer = client.get("/boom/")
    page = answer.content.decode()
    assert answer.status_code == 500
    assert "Something went wrong" in page and "site.css" in page
    assert "a fault for the 500 page" not in page  # nothing of the error is shown


@pytest.mark.parametrize("url", ["/accounts/login/"])
def test_a_logged_in_visit_to_the_login_page_goes_home(world, url):
    client = Client()
    client.force_login(world.trader)
    answer = client.get(url)
    assert answer.status_code == 302 and answer["Location"] == "/me/statements/"
