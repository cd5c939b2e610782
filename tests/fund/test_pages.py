"""The public portal's pages, rendered by Django's test client (the browser tests are in
tests/browser)."""

import pytest
from django.test import Client

from fund.models import Fund, FundRecord, SettlementCycle
from tests.factories import AssetFactory, FundFactory
from tests.helpers import at, book_profit, deposit

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    return Client()


def text(response) -> str:
    return response.content.decode()


@pytest.mark.parametrize("path", ["/", "/funds/USDT/", "/cycles/", "/rules/", "/faq/"])
def test_it_renders_every_page_with_data(client, world, path):
    response = client.get(path)
    assert response.status_code == 200
    assert "Insurance Fund" in text(response) and "<main" in text(response)


def test_it_shows_the_total_fund_assets_and_a_cycle_report(client, world):
    assert "900.00000000" in text(client.get("/"))
    report = text(client.get(f"/cycles/{world.cycle.id}/"))
    assert "500.00000000" in report and "400.00000000" in report and "300.00000000" in report
    assert "alice" not in report and "acct-" not in report


def test_it_computes_the_rules_pages_worked_example_with_the_engine(client, db):
    page = text(client.get("/rules/"))
    assert 'data-example="A">266.66666667' in page and 'data-example="B">133.33333333' in page
    assert 'data-example="balance">900.00000000' in page


def test_it_reads_well_with_no_fund_at_all(client, db):
    assert "No insurance fund has been set up yet" in text(client.get("/"))
    assert "No settlement cycle matches" in text(client.get("/cycles/"))


def test_it_reads_well_for_a_fund_with_no_cycle_and_no_record(client, db):
    FundFactory(asset=AssetFactory(code="ETH"), anchor=at(400))
    page = text(client.get("/funds/ETH/"))
    assert "has no settlement cycle yet" in page and "No fund record matches yet" in page
    assert "Nothing has flowed in or out" in page


def test_it_filters_and_pages_the_records(client, usdt_fund, linear):
    for i in range(55):
        deposit(usdt_fund, "1", reason=f"top-up {i}")
    book_profit(linear, "2", at(0, 5))
    first = text(client.get("/funds/USDT/?kind=deposit"))
    assert "USDT #55" in first and "USDT #56" not in first and "before=6" in first
    older = text(client.get("/funds/USDT/?kind=deposit&before=6"))
    assert "USDT #5<" in older and "USDT #1<" in older and "Older records" not in older
    bad = client.get("/funds/USDT/?from=soon")
    assert bad.status_code == 200 and "Use a date like" in text(bad)


def test_it_answers_404_for_an_unknown_fund(client, db):
    assert client.get("/funds/NOPE/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_it_never_serves_a_stale_balance_from_its_cache(usdt_fund):
    client = Client()
    deposit(usdt_fund, "10")
    assert "10.00000000" in text(client.get("/")) and "10.00000000" in text(
        client.get("/funds/USDT/")
    )
    deposit(usdt_fund, "5")
    assert "15.00000000" in text(client.get("/")) and "15.00000000" in text(
        client.get("/funds/USDT/")
    )
    assert FundRecord.objects.count() == 2


def test_a_large_cycles_distribution_is_grouped_into_a_thousand_bars():
    from fund.charts import distribution_from_amounts

    amounts = list(range(2500, 0, -1))
    data = distribution_from_amounts(amounts, 2)
    assert data["group"] == 3 and len(data["x"]) == len(data["y"]) == len(data["last"]) == 834
    assert data["x"][:2] == [1, 4] and data["last"][:2] == [3, 6] and data["y"][:2] == [25.0, 24.97]
    assert data["x"][-1] == 2500 == data["last"][-1]
    small = distribution_from_amounts([5, 3], 0)
    assert small == {"x": [1, 2], "last": [1, 2], "y": [5.0, 3.0], "text": ["5", "3"], "group": 1}
    assert data["text"][:2] == ["25.00", "24.97"]  # the exact figures the hovers show


@pytest.mark.django_db
def test_the_report_groups_the_distribution_in_the_database_like_the_preview(usdt_fund, linear):
    from fund.charts import DISTRIBUTION_BARS, cycle_distribution, distribution_from_amounts
    from fund.services.cycles import cycles_close_due
    from fund.services.settlement import settlement_cycle_settle
    from tests.helpers import book_loss, deposit, report_profits

    deposit(usdt_fund, "10")
    book_loss(linear, "900", at(0, 10))
    cycle = SettlementCycle.objects.get()
    report_profits(cycle, linear, {p: str(p) for p in range(1, DISTRIBUTION_BARS * 2 + 8)})
    cycles_close_due(now=cycle.settle_after)
    settlement_cycle_settle(cycle_id=cycle.id, now=cycle.settle_after)
    cycle.refresh_from_db()
    amounts = list(cycle.apportionments.order_by("rank").values_list("amount_units", flat=True))
    assert cycle_distribution(cycle=cycle) == distribution_from_amounts(amounts, 8)
    assert cycle_distribution(cycle=cycle)["group"] > 1


@pytest.mark.parametrize(
    "path",
    ["/funds/USDT/?to=9999-12-31", "/funds/USDT/?before=%C2%B2", "/me/statements/?to=9999-12-31"],
)
def test_pages_shrug_off_odd_filters(world, client, path):
    client.force_login(world.trader)
    assert client.get(path).status_code == 200


def test_it_shows_schedules_exactly(client, world):
    Fund.objects.update(fund_ratio="0.1234", cycle_seconds=5400)
    page = client.get("/funds/USDT/").content.decode()
    assert "1 h 30 min cycles" in page and "fund share 12.34\u00a0%" in page
