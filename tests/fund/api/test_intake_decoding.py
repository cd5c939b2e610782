"""The intake's fast path (fund/api/intake.py, fund/services/liquidations.py): a well-formed
batch is decoded by the strict decoder straight into typed items, and a batch of new ids is
booked without looking any of them up; anything else takes the careful way, with the same
answers."""

import io
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from fund.api.intake import (
    PositionProfitBatch,
    PositionProfitBatchParser,
    TakeoverBatch,
    TakeoverBatchParser,
)
from fund.models import LiquidationTakeover, PositionProfit, SettlementCycle
from tests.helpers import takeover_item

pytestmark = pytest.mark.django_db
URL = "/api/v1/ingest/liquidations"


def parse(body: dict):
    return TakeoverBatchParser().parse(io.BytesIO(json.dumps(body).encode()), "application/json")


def test_a_well_formed_batch_is_decoded_into_typed_items():
    batch = parse({"items": [takeover_item("lq-1")]})
    assert isinstance(batch, TakeoverBatch)
    (item,) = batch.items
    assert (item.external_id, item.quantity) == ("lq-1", "2")
    assert item.closed_at.utcoffset() is not None


@pytest.mark.parametrize(
    "odd",
    [
        {"quantity": 2},  # a JSON number: read exactly by the forgiving reader
        {"external_id": " lq-1"},  # not the id's one form: the service names it
        {"closed_at": "2026-11-25T10:00:00"},  # no time zone: the service names it
        {"extra": "x"},  # an unknown field: named
    ],
)
def test_anything_else_is_read_the_forgiving_way(odd):
    assert isinstance(parse({"items": [{**takeover_item("lq-1"), **odd}]}), dict)


def lookups(queries, table: str, column: str) -> list[str]:
    return [
        q["sql"]
        for q in queries
        if q["sql"].startswith("SELECT") and f'"{table}"."{column}"' in q["sql"].split("WHERE")[-1]
    ]


def test_a_batch_of_new_ids_is_booked_without_looking_them_up(engine, linear, recent):
    batch = {"items": [takeover_item(f"lq-{i}") for i in range(50)]}
    with CaptureQueriesContext(connection) as fresh:
        assert engine.post(URL, batch, format="json").status_code == 201
    assert lookups(fresh.captured_queries, "fund_liquidationtakeover", "external_id") == []
    with CaptureQueriesContext(connection) as replay:
        answer = engine.post(URL, batch, format="json")
    assert answer.status_code == 200 and answer.data["existing"] == 50
    assert len(lookups(replay.captured_queries, "fund_liquidationtakeover", "external_id")) == 1
    assert LiquidationTakeover.objects.count() == 50


def test_position_profits_of_new_positions_are_booked_without_looking_them_up(
    engine, linear, recent
):
    assert engine.post(URL, {"items": [takeover_item("lq-1")]}, format="json").status_code == 201
    cycle = SettlementCycle.objects.filter(fund=recent, status="open").order_by("starts_at").last()
    body = {
        "cycle": cycle.id,
        "items": [
            {"position_id": i, "account": f"ACC-{i}", "contract": "BTCUSDT", "profit": "1.5"}
            for i in range(1, 31)
        ],
    }
    typed = PositionProfitBatchParser().parse(
        io.BytesIO(json.dumps(body).encode()), "application/json"
    )
    assert isinstance(typed, PositionProfitBatch) and typed.items[0].profit == "1.5"
    with CaptureQueriesContext(connection) as fresh:
        assert (
            engine.post("/api/v1/ingest/position-profits", body, format="json").status_code == 201
        )
    assert lookups(fresh.captured_queries, "fund_positionprofit", "position_id") == []
    answer = engine.post("/api/v1/ingest/position-profits", body, format="json")
    assert answer.status_code == 200 and answer.data["existing"] == 30
    assert PositionProfit.objects.count() == 30
