"""The public portal in a real browser: pages, charts, range buttons, filters, paging, CSV,
no console error and no request leaving 127.0.0.1; screenshots at phone and desktop width,
light and dark."""

import csv
import io
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PAGES = ["/", "/funds/USDT/", "/funds/BTC/", "/cycles/", "/rules/", "/faq/"]


@pytest.fixture
def demo(live_server):
    """A few days of the demo history, booked through the services."""
    call_command("load_demo", "--days", "4", "--seed", "11", verbosity=0)
    return live_server.url


@pytest.fixture
def watched(page):
    """The page, with every console error and every request kept for the test to check."""
    errors, hosts = [], set()
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: hosts.add(urlsplit(request.url).hostname))
    page.on(
        "response",
        lambda response: (
            response.status >= 400 and errors.append(f"{response.status} {response.url}")
        ),
    )
    page.errors, page.hosts = errors, hosts
    return page


def test_it_renders_every_page_without_a_console_error_or_an_outside_request(demo, watched):
    from fund.models import SettlementCycle

    cycle = SettlementCycle.objects.filter(status="settled", participant_count__gt=0).first()
    for path in [*PAGES, f"/cycles/{cycle.id}/"]:
        response = watched.goto(demo + path)
        assert response.status == 200, path
        assert "script-src 'self'" in response.headers["content-security-policy"]
        expect(watched.locator("main h1")).to_be_visible()
    for path in ["/api/docs/", "/accounts/login/", "/admin/login/"]:  # under the same policy
        assert watched.goto(demo + path).status == 200, path
    assert watched.errors == []
    assert watched.hosts == {"localhost"} or watched.hosts <= {"localhost", "127.0.0.1"}


def test_it_draws_the_balance_chart_and_its_range_buttons_change_it(demo, watched):
    watched.goto(demo + "/")
    chart = watched.locator("#balance-chart")
    expect(chart.locator(".main-svg").first).to_be_visible()
    points = watched.evaluate("document.getElementById('balance-chart').data[0].x.length")
    assert points > 10
    start_all = watched.evaluate("document.getElementById('balance-chart').layout.xaxis.range[0]")
    span_all = watched.evaluate(
        "(r => r[1] - r[0])(document.getElementById('balance-chart').layout.yaxis.range)"
    )
    watched.get_by_role("button", name="7 days", exact=True).click()
    expect(watched.get_by_role("button", name="7 days", exact=True)).to_have_attribute(
        "aria-pressed", "true"
    )
    watched.wait_for_function(
        "start => document.getElementById('balance-chart').layout.xaxis.range[0] !== start",
        arg=start_all,
    )
    days = watched.evaluate(
        "(r => (new Date(r[1]) - new Date(r[0])) / 86400000)"
        "(document.getElementById('balance-chart').layout.xaxis.range)"
    )
    assert days == pytest.approx(7, abs=0.01)
    # The vertical axis fits the week's points: a week of a growing fund is no flat line at the top.
    low, high, top, bottom = watched.evaluate(
        """(() => {
          const c = document.getElementById('balance-chart');
          const from = Date.parse(c.layout.xaxis.range[0]);
          const ys = c.data[0].x.map((x, i) => [Date.parse(x), c.data[0].y[i]]);
          const before = ys.filter(p => p[0] < from).at(-1), inside = ys.filter(p => p[0] >= from);
          const shown = (before ? [before, ...inside] : inside).map(p => p[1]);
          const [bottom, top] = c.layout.yaxis.range;
          return [Math.min(...shown), Math.max(...shown), top, bottom];
        })()"""
    )
    assert bottom <= low and top >= high and (top - bottom) <= (high - low) * 1.2 + 1e-9
    assert span_all > 0
    watched.get_by_role("button", name="All", exact=True).click()
    watched.wait_for_function(
        "start => document.getElementById('balance-chart').layout.xaxis.range[0] === start",
        arg=start_all,
    )
    watched.get_by_role("button", name="USDT", exact=True).click()
    watched.wait_for_function("document.getElementById('balance-chart').data[0].name === 'USDT'")
    # Hover texts are the exact figures, every decimal of the asset.
    text = watched.evaluate("document.getElementById('balance-chart').data[0].text.at(-1)")
    balance = watched.locator("[data-balance=USDT]").first.inner_text()
    assert text == balance and len(text.rpartition(".")[2]) == 8
    assert watched.errors == []


def test_it_filters_pages_and_downloads_the_records(demo, watched):
    watched.goto(demo + "/funds/USDT/")
    expect(watched.locator("#flows-chart .main-svg").first).to_be_visible()
    watched.get_by_label("Liquidation profit").check()
    watched.get_by_role("button", name="Show").click()
    kinds = watched.locator("table.records tbody tr td:nth-child(3)").all_inner_texts()
    assert kinds and set(kinds) == {"Liquidation profit"}
    first_page = watched.locator("table.records tbody tr td:nth-child(2)").all_inner_texts()
    watched.get_by_role("link", name="Older records").click()
    second_page = watched.locator("table.records tbody tr td:nth-child(2)").all_inner_texts()
    assert second_page and not set(first_page) & set(second_page)
    with watched.expect_download() as download:
        watched.get_by_role("link", name="Download CSV").click()
    rows = list(csv.DictReader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))
    assert rows and {r["kind"] for r in rows} == {"liquidation_profit"}
    assert watched.errors == []


def test_it_filters_the_cycles(demo, watched):
    watched.goto(demo + "/cycles/")
    watched.get_by_label("Fund").select_option("BTC")
    watched.get_by_label("Status").select_option("settled")
    watched.get_by_role("button", name="Show").click()
    funds = watched.locator("main table tbody tr td:nth-child(2)").all_inner_texts()
    assert funds and set(funds) == {"BTC"}
    watched.locator("main table tbody tr a").first.click()
    expect(watched.locator("main h1")).to_contain_text("BTC settlement cycle")


@pytest.mark.parametrize("width, height, name", [(390, 844, "phone"), (1280, 900, "desktop")])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_it_takes_screenshots_of_the_overview(
    demo, browser, screenshots, width, height, name, scheme
):
    context = browser.new_context(viewport={"width": width, "height": height}, color_scheme=scheme)
    page = context.new_page()
    page.goto(demo + "/")
    expect(page.locator("#balance-chart .main-svg").first).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), (
        "the page scrolls sideways"
    )
    path = screenshots / f"overview-{name}-{scheme}.png"
    page.screenshot(path=str(path), full_page=True)
    context.close()
    print(f"\nscreenshot: {path}")
