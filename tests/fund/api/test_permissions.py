"""Every endpoint against every actor: anonymous, trader, another trader, the trading engine,
staff without the settlement permission, settlement staff."""

from datetime import timedelta

import pytest
from django.utils import timezone

from fund.models import SettlementCycle
from statements.models import Statement
from tests.helpers import ACTORS

pytestmark = pytest.mark.django_db

A, T, OT, E, S, SS = ACTORS  # anonymous, trader, other trader, engine, staff, settlement staff


def unsettled(world) -> int:
    """A cycle that can still be previewed (a settled one answers 409 to everyone allowed)."""
    return SettlementCycle.objects.exclude(status="settled").values_list("id", flat=True).first()


def takeover_batch(world):
    now = timezone.now()
    return {
        "items": [
            {
                "external_id": "perm-1",
                "contract": "BTCUSDT",
                "side": "long",
                "quantity": "1",
                "takeover_price": "100",
                "close_price": "99",
                "remaining_margin": "5",
                "taken_over_at": (now - timedelta(minutes=1)).isoformat(),
                "closed_at": now.isoformat(),
            }
        ]
    }


def profit_batch(world):
    open_cycle = SettlementCycle.objects.filter(status="open").order_by("starts_at").first()
    return {
        "cycle": open_cycle.id,
        "items": [{"position_id": 99, "account": "acct-99", "contract": "BTCUSDT", "profit": "1"}],
    }


def statement_of_trader(world):
    return Statement.objects.get(account__user=world.trader).id


def open_cycle(world):
    return SettlementCycle.objects.filter(status="open").order_by("starts_at").first().id


PUBLIC = dict.fromkeys(ACTORS, 200)
ENGINE_ONLY = {A: 401, T: 403, OT: 403, E: 201, S: 403, SS: 403}
TRADERS = {A: 401, T: 200, OT: 200, E: 403, S: 403, SS: 403}
OWN_STATEMENT = {A: 401, T: 200, OT: 404, E: 403, S: 403, SS: 403}
ADMIN = {A: 401, T: 403, OT: 403, E: 403, S: 403, SS: 200}

ENDPOINTS = [
    ("get", lambda w: "/api/v1/funds", None, PUBLIC),
    ("get", lambda w: "/api/v1/funds/USDT", None, PUBLIC),
    ("get", lambda w: "/api/v1/funds/USDT/history?bucket=hour", None, PUBLIC),
    ("get", lambda w: "/api/v1/funds/USDT/records", None, PUBLIC),
    ("get", lambda w: "/api/v1/funds/USDT/records?format=csv", None, PUBLIC),
    ("get", lambda w: "/api/v1/cycles", None, PUBLIC),
    ("get", lambda w: f"/api/v1/cycles/{w.cycle.id}", None, PUBLIC),
    ("get", lambda w: "/api/schema/", None, PUBLIC),
    ("get", lambda w: "/api/docs/", None, PUBLIC),
    ("post", lambda w: "/api/v1/ingest/liquidations", takeover_batch, ENGINE_ONLY),
    ("post", lambda w: "/api/v1/ingest/position-profits", profit_batch, ENGINE_ONLY),
    ("get", lambda w: "/api/v1/me/statements", None, TRADERS),
    ("get", lambda w: "/api/v1/me/statements?format=csv", None, TRADERS),
    ("get", lambda w: f"/api/v1/me/statements/{statement_of_trader(w)}", None, OWN_STATEMENT),
    ("get", lambda w: f"/api/v1/me/statements/{statement_of_trader(w)}/proof", None, OWN_STATEMENT),
    ("get", lambda w: "/api/v1/me/tokens", None, TRADERS),
    (
        "post",
        lambda w: "/api/v1/me/tokens",
        lambda w: {"name": "laptop"},
        {**TRADERS, T: 201, OT: 201},
    ),
    ("post", lambda w: f"/api/v1/admin/cycles/{unsettled(w)}/preview", None, ADMIN),
    ("post", lambda w: f"/api/v1/admin/cycles/{open_cycle(w)}/settle", None, {**ADMIN, SS: 202}),
    (
        "post",
        lambda w: "/api/v1/admin/funds/USDT/deposits",
        lambda w: {"amount": "5", "reason": "top-up"},
        {**ADMIN, SS: 201},
    ),
    (
        "post",
        lambda w: "/api/v1/admin/funds/USDT/withdrawals",
        lambda w: {"amount": "5", "reason": "treasury"},
        {**ADMIN, SS: 201},
    ),
    ("get", lambda w: "/api/v1/admin/actions", None, ADMIN),
]


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize(
    "method, path, payload, expected",
    ENDPOINTS,
    ids=[f"{m} {i}" for i, (m, *_rest) in enumerate(ENDPOINTS)],
)
def test_it_answers_each_actor_as_the_matrix_says(
    request, world, actor, method, path, payload, expected
):
    client = request.getfixturevalue(actor)
    kwargs = {"format": "json", "data": payload(world)} if payload else {}
    response = getattr(client, method)(path(world), **kwargs)
    assert response.status_code == expected[actor], getattr(
        response, "data", response.content[:300]
    )
