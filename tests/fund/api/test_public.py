"""Public reads: funds, balance history, records, cycles; CSV; a fixed number of queries."""

import csv
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.helpers import at, book_profit, deposit

pytestmark = pytest.mark.django_db


def test_it_lists_each_fund_with_its_contracts_and_flows_by_kind(anonymous, world):
    [fund] = anonymous.get("/api/v1/funds").data
    assert fund["asset"] == "USDT" and fund["balance"] == "900.00000000"
    assert [c["symbol"] for c in fund["contracts"]] == ["BTCUSDT"]
    assert fund["inflows"] == [{"kind": "deposit", "total": "1000.00000000", "records": 1}]
    assert fund["outflows"] == [
        {"kind": "settlement_coverage", "total": "-100.00000000", "records": 1}
    ]


def test_it_answers_404_for_an_unknown_fund(anonymous, db):
    assert anonymous.get("/api/v1/funds/NOPE").status_code == 404


def test_it_gives_the_balance_history_in_buckets(anonymous, usdt_fund, linear):
    deposit(usdt_fund, "1000")  # at the real clock: the record is dated when it is booked
    book_profit(linear, "5", at(0, 3))
    day = anonymous.get("/api/v1/funds/USDT/history?bucket=day").data
    assert len(day) == 1 and day[0]["open"] == "0.00000000" and day[0]["close"] == "1005.00000000"
    assert day[0]["inflow"] == "1005.00000000" and day[0]["records"] == 2
    bad = anonymous.get("/api/v1/funds/USDT/history?bucket=month")
    assert bad.status_code == 400 and "bucket" in bad.data
    assert anonymous.get("/api/v1/funds/USDT/history?from=not-a-date").status_code == 400


def test_it_pages_records_with_a_cursor_and_filters_them(anonymous, usdt_fund):
    for i in range(5):
        deposit(usdt_fund, str(i + 1), reason=f"top-up {i}")
    first = anonymous.get("/api/v1/funds/USDT/records?page_size=2").data
    assert [r["seq"] for r in first["results"]] == [5, 4]
    second = anonymous.get(first["next"]).data
    assert [r["seq"] for r in second["results"]] == [3, 2]
    assert anonymous.get("/api/v1/funds/USDT/records?kind=withdrawal").data["results"] == []
    assert anonymous.get("/api/v1/funds/USDT/records?kind=bogus").status_code == 400


def test_it_downloads_records_as_csv(anonymous, world):
    response = anonymous.get("/api/v1/funds/USDT/records?format=csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["seq"], r["kind"], r["amount"]) for r in rows] == [
        ("2", "settlement_coverage", "-100.00000000"),
        ("1", "deposit", "1000.00000000"),
    ]


def test_it_publishes_a_cycle_report_without_trader_identity(anonymous, world):
    report = anonymous.get(f"/api/v1/cycles/{world.cycle.id}").data
    assert report["loss"] == "500.00000000" and report["fund_share"] == "100.00000000"
    assert report["users_share"] == "400.00000000" and report["participant_count"] == 2
    assert report["threshold_profit"] == "300.00000000" and report["uncovered"] == "0.00000000"
    assert "acct" not in str(report) and "alice" not in str(report)
    listed = anonymous.get("/api/v1/cycles?status=settled&asset=usdt").data["results"]
    assert [c["id"] for c in listed] == [world.cycle.id]


@pytest.mark.parametrize("path", ["/api/v1/funds", "/api/v1/funds/USDT/records", "/api/v1/cycles"])
def test_it_makes_the_same_number_of_queries_whatever_the_page_holds(
    anonymous, usdt_fund, linear, path
):
    deposit(usdt_fund, "1")

    def count():
        with CaptureQueriesContext(connection) as queries:
            assert anonymous.get(path).status_code == 200
        return len(queries)

    few = count()
    for i in range(20):
        deposit(usdt_fund, "1")
        book_profit(linear, "1", at(i % 3, 5))
    assert count() == few


def test_it_throttles_anonymous_clients_but_not_logged_in_ones(anonymous, trader, monkeypatch):
    from django.core.cache import cache
    from rest_framework.throttling import AnonRateThrottle

    cache.clear()
    monkeypatch.setitem(AnonRateThrottle.THROTTLE_RATES, "anon", "3/minute")
    assert [anonymous.get("/api/v1/funds").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert trader.get("/api/v1/funds").status_code == 200
    cache.clear()


@pytest.mark.parametrize(
    "query",
    [
        "format=",
        "format=xml",
        "page_size=0",
        "page_size=x",
        "format=csv&page_size=-1",
        "cursor=zzz",
        "kind=",
        "from=",
    ],
)
def test_it_answers_bad_query_parameters_with_400(anonymous, usdt_fund, query):
    response = anonymous.get(f"/api/v1/funds/USDT/records?{query}")
    assert response.status_code == 400, (query, response.content[:200])


@pytest.mark.parametrize(
    "query",
    [
        "from=2026-02-30",
        "from=2026-01-01T00:00:00%2B25:00",
        "from=0001-01-01T00:00:00%2B01:00",
        "page_size=%C2%B2",
        "to=9999-12-31",
    ],
)
def test_it_answers_impossible_dates_and_odd_digits_with_400_not_500(anonymous, usdt_fund, query):
    assert anonymous.get(f"/api/v1/funds/USDT/records?{query}").status_code == 400


def test_the_api_counts_a_date_only_to_as_the_whole_day_like_the_pages(anonymous, world):
    day = world.cycle.fund.records.order_by("seq").first().created_at.date().isoformat()
    rows = anonymous.get(f"/api/v1/funds/USDT/records?from={day}&to={day}").data["results"]
    assert rows
