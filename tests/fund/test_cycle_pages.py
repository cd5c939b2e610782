"""The cycles as traders read them: the list shows each whole period with its units, filters by
date and downloads as CSV; a report pages its apportionments by rank, links its neighbours and
says plainly when there was nothing to share; an open cycle shows its running figures."""

import csv
import io

import pytest
from django.core.cache import cache
from django.test import Client

from fund.models import SettlementCycle
from fund.presentation import share_of_profit
from fund.services.cycles import cycles_close_due
from fund.services.settlement import settlement_cycle_settle
from tests.helpers import at, book_loss, deposit, report_profits

pytestmark = pytest.mark.django_db


def page(path: str) -> str:
    response = Client().get(path)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def test_the_list_shows_each_whole_period_with_units_and_filters_by_date(world, linear):
    book_loss(linear, "7", at(3, 5))  # a cycle three days later, open
    body = page("/cycles/")
    assert '2026-01-01 00:00 –</span> <span class="nowrap">2026-01-02 00:00' in body
    assert "500.00000000 USDT</td>" in body and "100.00000000 USDT</td>" in body
    assert "Running: the figures so far" in body  # the open cycle, no figures yet
    only_late = page("/cycles/?from=2026-01-03")
    assert f'href="/cycles/{world.cycle.id}/"' not in only_late and "2026-01-04 00:00" in only_late
    only_early = page("/cycles/?to=2026-01-01")
    assert f'href="/cycles/{world.cycle.id}/"' in only_early
    assert "2026-01-04 00:00" not in only_early
    bad = page("/cycles/?from=yesterday")
    assert 'aria-invalid="true"' in bad and 'role="alert"' in bad


def test_the_list_downloads_as_csv_with_the_same_filters(world, linear):
    book_loss(linear, "7", at(3, 5))
    assert "/api/v1/cycles?format=csv&amp;asset=usdt" in page("/cycles/?asset=usdt")
    response = Client().get("/api/v1/cycles?format=csv&to=2026-01-01")
    body = b"".join(response.streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert response["Content-Type"].startswith("text/csv")
    assert [(r["id"], r["asset"], r["loss"], r["participant_count"]) for r in rows] == [
        (str(world.cycle.id), "USDT", "500.00000000", "2")
    ]
    assert rows[0]["starts_at"] == "2026-01-01T00:00:00+00:00" and rows[0]["status"] == "settled"
    assert Client().get("/api/v1/cycles?format=csv&from=x").status_code == 400


def test_a_report_pages_its_apportionments_by_rank_and_links_its_neighbours(usdt_fund, linear):
    deposit(usdt_fund, "100000")
    book_loss(linear, "900", at(1, 10))
    book_loss(linear, "1", at(0, 10))
    book_loss(linear, "1", at(2, 10))
    before, cycle, after = SettlementCycle.objects.order_by("starts_at")
    report_profits(cycle, linear, {p: str(1000 - p) for p in range(1, 121)})
    cycles_close_due(now=cycle.settle_after)
    settlement_cycle_settle(cycle_id=cycle.id, now=cycle.settle_after)
    cycle.refresh_from_db()
    first = page(f"/cycles/{cycle.id}/")
    assert f'href="/cycles/{before.id}/" rel="prev"' in first
    assert f'href="/cycles/{after.id}/" rel="next"' in first
    assert f"Ranks 1–50 of {cycle.participant_count}" in first
    top = cycle.apportionments.select_related("position").get(rank=1)
    share = share_of_profit(top.amount_units, top.position.profit_units)
    assert f'<td class="num">{share}&nbsp;%</td>' in first and "999.00000000 USDT" in first
    last = page(f"/cycles/{cycle.id}/?page=99")  # past the end: the last page
    assert f"of {cycle.participant_count}</span>" in last and 'rel="next">Ranks after' not in last
    assert f"/api/v1/cycles/{cycle.id}/positions?format=csv" in first


def test_a_report_says_plainly_when_there_was_nothing_to_share(usdt_fund, linear):
    deposit(usdt_fund, "10")
    report_cycle = book_loss(linear, "0.5", at(0, 5)).cycle  # a loss, but no profitable position
    cycles_close_due(now=report_cycle.settle_after)
    settlement_cycle_settle(cycle_id=report_cycle.id, now=report_cycle.settle_after)
    body = page(f"/cycles/{report_cycle.id}/")
    assert "data-nothing" in body and "no position made a profit in the cycle" in body


def test_an_open_cycle_shows_what_each_participant_would_bear_if_it_settled_now(usdt_fund, linear):
    deposit(usdt_fund, "1000")
    cycle = book_loss(linear, "500", at(0, 10)).cycle
    empty = page(f"/cycles/{cycle.id}/")
    assert "Running figures: if the cycle settled now" in empty
    report_profits(cycle, linear, {1: "600", 2: "300", 3: "80", 4: "20"})
    cache.clear()  # the running figures are kept 30 s
    body = page(f"/cycles/{cycle.id}/")
    # docs/rules.md §3: U = 400 of S = 900, each participant would bear 4/9 of its profit.
    assert "500.00000000 USDT" in body and "400.00000000 USDT" in body
    assert 'data-running="rate">about 44.4444444444&nbsp;%' in body
    assert "266.66666667 USDT" in body and "133.33333333 USDT" in body  # ranks 1 and 2
    assert SettlementCycle.objects.get(pk=cycle.id).status == "open"  # nothing was written


@pytest.mark.parametrize(
    "path", ["/cycles/?from={}", "/funds/USDT/?from={}", "/api/v1/cycles?from={}",
             "/api/v1/funds/USDT/records?to={}", "/api/v1/funds/USDT/history?from={}"],
)  # fmt: skip
def test_a_moment_in_unicode_digits_is_refused_with_its_field_named(usdt_fund, path):
    answer = Client().get(path.format("２０２６-01-01"))
    body = answer.content.decode()
    assert (answer.status_code, "from" in body or "to" in body) in ((200, True), (400, True))
    assert 'role="alert"' in body or answer.status_code == 400
