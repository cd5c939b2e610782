"""Cache-Control: a trader's pages, the console's and the account pages are private and never
stored on the way (no shared cache, no browser history); the public pages stay cacheable."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from fund.models import SettlementCycle
from statements.models import Statement
from tests.factories import UserFactory
from tests.helpers import at

pytestmark = pytest.mark.django_db


def directives(response) -> set[str]:
    return {d.strip().split("=")[0] for d in response.get("Cache-Control", "").split(",") if d}


def private(response) -> bool:
    return {"private", "no-store"} <= directives(response)


@pytest.fixture
def clients(world):
    ops = UserFactory(username="ops", is_staff=True)
    ops.user_permissions.add(Permission.objects.get(codename="settle_cycles"))
    made = {"anonymous": Client()}
    for name, user in (("trader", world.trader), ("settlement_staff", ops)):
        made[name] = Client()
        made[name].force_login(user)
    return made


def test_a_traders_pages_are_private_and_not_stored(clients, world):
    trader, anonymous = clients["trader"], clients["anonymous"]
    statement = Statement.objects.get(account__user=world.trader).id
    answers = {
        "my statements": trader.get("/me/statements/"),
        "filtered": trader.get("/me/statements/?asset=USDT&page=1"),
        "one statement": trader.get(f"/me/statements/{statement}/"),
        "password": trader.get("/accounts/password/"),
        "password done": trader.get("/accounts/password/done/"),
        "to the login": anonymous.get("/me/statements/"),
    }
    assert {name: r.status_code for name, r in answers.items()} == {
        "my statements": 200,
        "filtered": 200,
        "one statement": 200,
        "password": 200,
        "password done": 200,
        "to the login": 302,
    }
    assert [name for name, r in answers.items() if not private(r)] == []


def test_the_login_page_is_not_stored(clients):
    response = clients["anonymous"].get("/accounts/login/")
    assert response.status_code == 200 and private(response)


def test_the_consoles_pages_are_private_and_not_stored(clients, world):
    ops, anonymous = clients["settlement_staff"], clients["anonymous"]
    open_cycle = SettlementCycle.objects.get(starts_at=at(1))
    answers = {
        "index": ops.get("/ops/"),
        "cycle": ops.get(f"/ops/cycles/{world.cycle.id}/"),
        "preview": ops.post(f"/ops/cycles/{open_cycle.id}/preview/"),
        "settle unconfirmed": ops.post(f"/ops/cycles/{open_cycle.id}/settle/"),
        "move": ops.get("/ops/funds/USDT/move/"),
        "correct": ops.get("/ops/funds/USDT/correct/"),
        "schedule": ops.get("/ops/funds/USDT/schedule/"),
        "audit": ops.get("/ops/audit/"),
        "to the login": anonymous.get("/ops/"),
    }
    assert {name: r.status_code for name, r in answers.items()} == {
        "index": 200,
        "cycle": 200,
        "preview": 200,
        "settle unconfirmed": 302,
        "move": 200,
        "correct": 200,
        "schedule": 200,
        "audit": 200,
        "to the login": 302,
    }
    assert [name for name, r in answers.items() if not private(r)] == []


@pytest.mark.parametrize("path", ["/", "/funds/USDT/", "/cycles/", "/rules/", "/faq/"])
def test_the_public_pages_stay_cacheable(clients, world, path):
    response = clients["anonymous"].get(path)  # cached on purpose (fund/pagecache.py)
    assert response.status_code == 200
    assert not {"private", "no-store", "no-cache"} & directives(response)
