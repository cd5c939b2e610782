"""Traders: their own statements only, each apportionment with how it was computed."""

import csv
import io

import pytest

from statements.models import ApiToken, Statement
from tests.helpers import at, book_loss, report_profits

pytestmark = pytest.mark.django_db


def test_it_lists_only_my_statements(trader, world):
    rows = trader.get("/api/v1/me/statements").data["results"]
    assert [(r["type"], r["asset"], r["amount"], r["cycle"], r["position_id"]) for r in rows] == [
        ("apportionment", "USDT", "-266.66666667", world.cycle.id, 1)
    ]


def test_it_filters_my_statements(trader, world):
    assert trader.get(f"/api/v1/me/statements?cycle={world.cycle.id}").data["results"]
    assert trader.get("/api/v1/me/statements?asset=BTC").data["results"] == []
    assert trader.get("/api/v1/me/statements?from=2030-01-01").data["results"] == []
    assert trader.get("/api/v1/me/statements?type=nope").status_code == 400
    assert trader.get("/api/v1/me/statements?cycle=x").status_code == 400
    assert trader.get("/api/v1/me/statements?cycle=").status_code == 400


def test_it_shows_how_my_apportionment_was_computed(trader, world):
    statement = Statement.objects.get(account__user=world.trader)
    c = trader.get(f"/api/v1/me/statements/{statement.id}").data["computation"]
    assert (c["loss"], c["fund_share"], c["users_share"]) == (
        "500.00000000",
        "100.00000000",
        "400.00000000",
    )
    assert (c["position_profit"], c["rank"], c["participant_count"]) == ("600.00000000", 1, 2)
    assert (c["threshold_profit"], c["participants_profit"]) == ("300.00000000", "900.00000000")
    assert c["fraction"] == "4/9" and c["fraction_decimal"] == "0.444444444444"
    assert c["exact_share"] == "80000000000/3"  # 266.666666666… USDT in units
    assert (c["amount"], c["rounding_unit"], c["profit_after"]) == (
        "266.66666667",
        True,
        "333.33333333",
    )


def test_it_answers_404_for_another_traders_statement(other_trader, world):
    statement = Statement.objects.get(account__user=world.trader)
    assert other_trader.get(f"/api/v1/me/statements/{statement.id}").status_code == 404
    assert other_trader.get("/api/v1/me/statements/999999").status_code == 404


def test_it_downloads_my_statements_as_csv(trader, world):
    response = trader.get("/api/v1/me/statements?format=csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["type"], r["amount"], r["position_id"]) for r in rows] == [
        ("apportionment", "-266.66666667", "1")
    ]


def test_it_makes_a_token_shown_once_that_then_works_and_can_be_revoked(trader, anonymous, world):
    made = trader.post("/api/v1/me/tokens", {"name": "script"}, format="json").data
    assert made["token"].startswith("ifp_")
    assert "token" not in trader.get("/api/v1/me/tokens").data[0]
    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {made['token']}")
    assert anonymous.get("/api/v1/me/statements").status_code == 200
    assert trader.delete(f"/api/v1/me/tokens/{made['prefix']}").status_code == 204
    assert anonymous.get("/api/v1/me/statements").status_code == 401


def test_it_lists_my_statements_with_the_same_number_of_queries_whatever_the_page_holds(
    trader, world, linear
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from fund.services.cycles import cycles_close_due
    from fund.services.settlement import settlement_cycle_settle

    def count():
        with CaptureQueriesContext(connection) as queries:
            assert trader.get("/api/v1/me/statements").status_code == 200
        return len(queries)

    few = count()
    for day in (1, 2, 3):
        book_loss(linear, "10", at(day, 5))
        cycle = world.cycle.fund.cycles.get(starts_at=at(day))
        report_profits(cycle, linear, {1: "50"})  # position 1 is alice's account, acct-1
        cycles_close_due(now=cycle.settle_after)
        settlement_cycle_settle(cycle_id=cycle.id, now=cycle.settle_after)
    assert Statement.objects.filter(account__user=world.trader).count() == 4
    assert count() == few


@pytest.mark.parametrize("query", ["cycle=%C2%B2", "cycle=99999999999999999999999"])
def test_it_answers_an_odd_cycle_filter_with_400(trader, world, query):
    assert trader.get(f"/api/v1/me/statements?{query}").status_code == 400


def test_it_filters_cycle_zero_to_nothing(trader, world):
    assert trader.get("/api/v1/me/statements?cycle=0").data["results"] == []


def test_it_pages_back_through_statements_of_one_moment_without_skipping(trader, world, linear):
    for day in (1, 2, 3):
        book_loss(linear, "10", at(day, 5))
    cycles = list(world.cycle.fund.cycles.order_by("starts_at"))
    from fund.services.cycles import cycles_close_due
    from fund.services.settlement import settlement_cycle_settle

    for cycle in cycles[1:4]:
        report_profits(cycle, linear, {1: "50"})
        cycles_close_due(now=cycle.settle_after)
        settlement_cycle_settle(cycle_id=cycle.id, now=cycle.settle_after)
    every = sorted(
        Statement.objects.filter(account__user=world.trader).values_list("id", flat=True)
    )
    seen, url = [], "/api/v1/me/statements?page_size=1"
    while url:
        page = trader.get(url).data
        seen += [r["id"] for r in page["results"]]
        last, url = page, page["next"]
    back, url = [], last["previous"]
    while url:
        page = trader.get(url).data
        back += [r["id"] for r in page["results"]]
        url = page["previous"]
    assert sorted(seen) == every and sorted(back + [seen[-1]]) == every


def private(response) -> bool:
    """Cache-Control says private and no-store (whatever else it says)."""
    directives = {d.strip().split("=")[0] for d in response.get("Cache-Control", "").split(",")}
    return {"private", "no-store"} <= directives


def test_every_answer_of_mine_is_private_and_not_stored(trader, other_trader, anonymous, world):
    statement = Statement.objects.get(account__user=world.trader).id
    made = trader.post("/api/v1/me/tokens", {"name": "script"}, format="json")
    answers = {
        "list": trader.get("/api/v1/me/statements"),
        "csv": trader.get("/api/v1/me/statements?format=csv"),
        "one": trader.get(f"/api/v1/me/statements/{statement}"),
        "proof": trader.get(f"/api/v1/me/statements/{statement}/proof"),
        "tokens": trader.get("/api/v1/me/tokens"),
        "token made": made,
        "token revoked": trader.delete(f"/api/v1/me/tokens/{made.data['prefix']}"),
        "bad filter": trader.get("/api/v1/me/statements?type=nope"),
        "another's": other_trader.get(f"/api/v1/me/statements/{statement}"),
        "anonymous": anonymous.get("/api/v1/me/statements"),
    }
    statuses = {name: answer.status_code for name, answer in answers.items()}
    assert statuses == {
        "list": 200,
        "csv": 200,
        "one": 200,
        "proof": 200,
        "tokens": 200,
        "token made": 201,
        "token revoked": 204,
        "bad filter": 400,
        "another's": 404,
        "anonymous": 401,
    }
    assert [name for name, answer in answers.items() if not private(answer)] == []


@pytest.mark.parametrize("name", ["n" * 101, "n" * 100 + " ", " " + "n" * 100, "   ", ""])
def test_it_refuses_a_token_name_that_does_not_fit_and_makes_nothing(trader, world, name):
    response = trader.post("/api/v1/me/tokens", {"name": name}, format="json")
    assert response.status_code == 400 and "name" in response.data, response.data
    assert not ApiToken.objects.filter(user=world.trader).exists()


def test_it_takes_a_token_name_of_100_characters_as_it_is(trader, world):
    response = trader.post("/api/v1/me/tokens", {"name": "n" * 100}, format="json")
    assert response.status_code == 201 and response.data["name"] == "n" * 100
