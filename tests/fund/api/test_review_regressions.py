"""Inputs and sequences a review found mishandled; each now answers as documented."""

import pytest

from fund.models import Fund
from statements.models import Statement
from tests.conftest import at
from tests.helpers import book_loss, report_profits

pytestmark = pytest.mark.django_db


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


@pytest.mark.parametrize("query", ["cycle=%C2%B2", "cycle=99999999999999999999999"])
def test_it_answers_an_odd_cycle_filter_with_400(trader, world, query):
    assert trader.get(f"/api/v1/me/statements?{query}").status_code == 400


def test_it_filters_cycle_zero_to_nothing(trader, world):
    assert trader.get("/api/v1/me/statements?cycle=0").data["results"] == []


@pytest.mark.parametrize(
    "path",
    ["/funds/USDT/?to=9999-12-31", "/funds/USDT/?before=%C2%B2", "/me/statements/?to=9999-12-31"],
)
def test_pages_shrug_off_odd_filters(world, client, path):
    client.force_login(world.trader)
    assert client.get(path).status_code == 200


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


def test_the_api_counts_a_date_only_to_as_the_whole_day_like_the_pages(anonymous, world):
    day = world.cycle.fund.records.order_by("seq").first().created_at.date().isoformat()
    rows = anonymous.get(f"/api/v1/funds/USDT/records?from={day}&to={day}").data["results"]
    assert rows


def test_it_refuses_a_reason_that_is_not_text(settlement_staff, world):
    response = settlement_staff.post(
        "/api/v1/admin/funds/USDT/deposits", {"amount": "1", "reason": 123}, format="json"
    )
    assert response.status_code == 400 and "reason" in response.data


def test_it_shows_schedules_exactly(client, world):
    Fund.objects.update(fund_ratio="0.1234", cycle_seconds=5400)
    page = client.get("/funds/USDT/").content.decode()
    assert "1 h 30 min cycles" in page and "fund share 12.34 %" in page
