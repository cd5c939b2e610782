"""The trading engine's ingestion: exactly once by external id, all or nothing, clear errors."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from fund.models import FundRecord, LiquidationTakeover, PositionProfit, SettlementCycle
from fund.services.liquidations import MAX_BATCH
from tests.helpers import takeover_item as item

pytestmark = pytest.mark.django_db
URL = "/api/v1/ingest/liquidations"
PROFITS = "/api/v1/ingest/position-profits"


def post(client, items, url=URL, **extra):
    return client.post(url, {"items": items, **extra}, format="json")


def test_it_books_a_batch_and_answers_a_replay_as_existing(engine, linear, recent):
    batch = [item("lq-1"), item("lq-2", side="short", close_price="60100")]
    first = post(engine, batch)
    assert first.status_code == 201
    assert first.data["created"] == 2 and [i["status"] for i in first.data["items"]] == [
        "created",
        "created",
    ]
    replay = post(engine, batch)
    assert replay.status_code == 200
    assert replay.data["existing"] == 2 and [i["status"] for i in replay.data["items"]] == [
        "existing",
        "existing",
    ]
    assert LiquidationTakeover.objects.count() == 2
    # lq-1: 25 + 2 × (59990.5 − 60000) = 6; lq-2 short: 25 + 2 × (60000 − 60100) = −175 (a loss).
    assert FundRecord.objects.get().amount_units == 6 * 10**8
    recent.refresh_from_db()
    assert recent.balance_units == 6 * 10**8


def test_it_refuses_an_id_reused_with_other_content_and_books_nothing_of_the_batch(
    engine, linear, recent
):
    post(engine, [item("lq-1")])
    response = post(engine, [item("lq-new"), item("lq-1", quantity="3")])
    assert response.status_code == 409
    assert (
        response.data["index"] == 1
        and response.data["id"] == "lq-1"
        and response.data["field"] == "quantity"
    )
    assert not LiquidationTakeover.objects.filter(external_id="lq-new").exists()


@pytest.mark.parametrize(
    "overrides, field, message",
    [
        ({"contract": "NOPE"}, "contract", "Unknown contract"),
        ({"quantity": "-1"}, "quantity", "greater than zero"),
        ({"quantity": "ten"}, "quantity", "not a number"),
        ({"takeover_price": "0"}, "takeover_price", "greater than zero"),
        ({"close_price": "-1"}, "close_price", "greater than zero"),
        ({"close_price": "Infinity"}, "close_price", "finite"),
        ({"remaining_margin": "1.123456789"}, "remaining_margin", "more than 8 decimal places"),
        ({"closed_at": "2999-01-01T00:00:00Z"}, "closed_at", "future"),
        ({"closed_at": "yesterday"}, "closed_at", "date and time"),
        ({"side": "up"}, "side", "long"),
    ],
)
def test_it_names_the_item_and_field_of_bad_input_and_books_nothing(
    engine, linear, recent, overrides, field, message
):
    response = post(engine, [item("ok"), item("bad", **overrides)])
    assert response.status_code == 400
    key = f"items[1].{field}"
    assert key in response.data, response.data
    assert message in response.data[key][0] and "'bad'" in response.data[key][0]
    assert not LiquidationTakeover.objects.exists()


def test_it_refuses_a_close_before_the_takeover(engine, linear, recent):
    now = timezone.now()
    response = post(
        engine,
        [item(taken_over_at=now.isoformat(), closed_at=(now - timedelta(minutes=5)).isoformat())],
    )
    assert (
        response.status_code == 400
        and "before it was taken over" in response.data["items[0].closed_at"][0]
    )


def test_it_accepts_json_numbers_exactly(engine, linear, recent):
    response = engine.post(
        URL,
        data='{"items": [' + json.dumps(item())[:-1] + ', "remaining_margin": 0.1}]}',
        content_type="application/json",
    )
    assert response.status_code == 201, response.data
    assert LiquidationTakeover.objects.get().remaining_margin_units == 10**7


@pytest.mark.parametrize(
    "body", ['{"items": [', '{"items": [{"quantity": NaN}]}', "[1, 2", '{"items": "x"}', "{}"]
)
def test_it_refuses_malformed_json(engine, body):
    response = engine.post(URL, data=body, content_type="application/json")
    assert response.status_code == 400


def test_it_requires_every_field(engine, linear, recent):
    bad = item()
    del bad["close_price"]
    response = post(engine, [bad])
    assert response.status_code == 400 and "required" in response.data["items[0].close_price"][0]


def test_it_refuses_an_oversize_batch_naming_the_items(engine, linear, recent):
    response = post(engine, [item(f"lq-{i}") for i in range(MAX_BATCH + 1)])
    assert response.status_code == 400 and "at most 10,000 items" in response.data["items"][0]
    assert not LiquidationTakeover.objects.exists()


def test_it_takes_a_full_batch(engine, linear, recent):
    response = post(engine, [item(f"lq-{i}") for i in range(MAX_BATCH)])
    assert response.status_code == 201 and response.data["created"] == MAX_BATCH


def test_it_books_position_profits_once_and_refuses_them_for_a_settled_cycle(engine, world):
    open_cycle = SettlementCycle.objects.filter(status="open").order_by("starts_at").first()
    batch = [{"position_id": 10, "account": "acct-10", "contract": "BTCUSDT", "profit": "12.5"}]
    assert post(engine, batch, url=PROFITS, cycle=open_cycle.id).status_code == 201
    assert post(engine, batch, url=PROFITS, cycle=open_cycle.id).status_code == 200
    changed = [{**batch[0], "profit": "13"}]
    assert post(engine, changed, url=PROFITS, cycle=open_cycle.id).status_code == 409
    settled = post(engine, [{**batch[0], "position_id": 11}], url=PROFITS, cycle=world.cycle.id)
    assert settled.status_code == 409 and settled.data["code"] == "cycle_settled"
    assert PositionProfit.objects.filter(cycle=open_cycle).count() == 1


def test_it_refuses_position_profits_for_an_unknown_cycle(engine, world):
    response = post(
        engine,
        [{"position_id": 1, "account": "a", "contract": "BTCUSDT", "profit": "1"}],
        url=PROFITS,
        cycle=99999,
    )
    assert response.status_code == 400 and "cycle" in response.data


@pytest.mark.parametrize(
    "field, value", [("side", {}), ("contract", []), ("external_id", 7), ("quantity", True)]
)
def test_it_answers_values_of_the_wrong_type_with_400(engine, linear, recent, field, value):
    response = post(engine, [item(**{field: value})])
    assert response.status_code == 400 and f"items[0].{field}" in response.data


def test_it_answers_position_profits_of_the_wrong_type_with_400(engine, world):
    open_cycle = SettlementCycle.objects.filter(status="open").order_by("starts_at").first()
    bad = [{"position_id": "1", "account": {}, "contract": ["x"], "profit": None}]
    response = post(engine, bad, url=PROFITS, cycle=open_cycle.id)
    assert response.status_code == 400 and "items[0].profit" in response.data


def test_a_conflict_names_the_field_as_the_api_calls_it(engine, linear, recent):
    post(engine, [item("lq-1")])
    response = post(engine, [item("lq-1", remaining_margin="26")])
    assert response.status_code == 409
    assert response.data["field"] == "remaining_margin"
    assert "different remaining_margin." in response.data["detail"]
    assert "_units" not in str(response.data)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON; Charset=UTF-8",
        'application/json;charset="utf-8"',
    ],
)
def test_it_reads_application_json_in_utf_8(engine, linear, recent, content_type):
    body = json.dumps({"items": [item()]})
    response = engine.post(URL, data=body, content_type=content_type)
    assert response.status_code == 201, response.data


@pytest.mark.parametrize(
    "content_type",
    [
        "*/*",
        "application/*",
        "*/json",
        "text/plain",
        "application/json-patch+json",
        "application/jsonx",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin-1",
        "application/json; charset=utf-16",
        "application/json; charset=utf8",
        "application/json; version=2",
    ],
)
def test_it_refuses_any_other_content_type_with_415_and_reads_nothing(
    engine, linear, recent, content_type
):
    body = json.dumps({"items": [item()]})
    response = engine.post(URL, data=body, content_type=content_type)
    assert response.status_code == 415, (content_type, response.data)
    assert "Unsupported media type" in response.data["detail"]
    assert not LiquidationTakeover.objects.exists()


def test_it_refuses_an_unknown_top_level_key_and_names_it(engine, linear, recent):
    response = post(engine, [item()], extra=1)
    assert response.status_code == 400
    assert "extra" in response.data and "Unknown field 'extra'" in response.data["extra"][0]
    assert not LiquidationTakeover.objects.exists()


def test_it_refuses_an_unknown_top_level_key_beside_position_profits(engine, world):
    open_cycle = SettlementCycle.objects.filter(status="open").order_by("starts_at").first()
    batch = [{"position_id": 10, "account": "acct-10", "contract": "BTCUSDT", "profit": "12.5"}]
    response = post(engine, batch, url=PROFITS, cycle=open_cycle.id, asset="USDT")
    assert response.status_code == 400 and "asset" in response.data
    assert not PositionProfit.objects.filter(cycle=open_cycle).exists()
