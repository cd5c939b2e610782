"""Issue 14's points in a real browser, one flow each: an admin lands in the console, moves money
only after confirming it, reads the audit trail; a trader reads a computation in decimals and its
exact fractions, makes and revokes a token; a visitor filters the cycles, reads an open cycle's
running figures, switches the chart to USD and reads the API reference."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from playwright.sync_api import expect

from fund.models import FundRecord, IndexPrice, SettlementCycle
from statements.models import ApiToken, Statement

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo(live_server):
    call_command("load_demo", "--days", "2", "--seed", "11", verbosity=0)
    return live_server.url


def log_in(page, url, username, password):
    page.goto(url + "/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


@pytest.fixture
def admin(demo, page):
    log_in(page, demo, "admin", "demo-admin-2026")
    return page


@pytest.fixture
def trader(demo, page):
    log_in(page, demo, "trader001", "demo-trader-2026")
    return page


def test_an_admin_lands_in_the_console_and_moves_money_only_after_confirming(demo, admin):
    expect(admin).to_have_url(demo + "/ops/")  # point 2: staff land where they work
    admin.goto(demo + "/ops/funds/USDC/move/")
    admin.get_by_label("Amount").fill("-5")
    admin.get_by_label("Reason").fill("x")
    admin.get_by_role("button", name="Record").click()
    expect(admin.locator(".error").first).to_contain_text("greater than zero")
    records = FundRecord.objects.count()
    admin.get_by_label("Amount").fill("1000")
    admin.get_by_label("Reason").fill("Top-up from the exchange's treasury")
    admin.get_by_role("button", name="Record").click()
    expect(admin.locator("[data-confirm=amount]")).to_have_text(
        re.compile(r"\+1\u202f000\.00000000\s+USDC")
    )
    assert FundRecord.objects.count() == records  # nothing booked before the confirmation
    admin.get_by_role("button", name=re.compile("^Confirm: deposit of 1")).click()
    booked = "Deposit of 1\u202f000.00000000 USDC recorded"
    expect(admin.locator(".messages")).to_contain_text(booked)
    assert FundRecord.objects.count() == records + 1
    admin.goto(demo + "/ops/audit/?action=deposit&actor=admin")
    row = admin.locator("table.audit tbody tr").first
    expect(row).to_contain_text("Amount")
    expect(row).to_contain_text("Top-up from the exchange's treasury")


def test_a_trader_reads_a_computation_and_makes_and_revokes_a_token(demo, trader):
    expect(trader).to_have_url(demo + "/me/statements/")
    trader.locator("table.statements tbody tr").first.get_by_role(
        "link", name=re.compile("^Computation")
    ).click()
    expect(trader.locator("[data-ratio]")).to_contain_text(re.compile(r"U / S [=≈] 0\.\d+"))
    expect(trader.locator("main")).to_contain_text("Contract")
    fraction = trader.locator("details.exact code").first
    expect(fraction).to_be_hidden()
    trader.get_by_text("The exact fractions").click()
    expect(fraction).to_be_visible()
    expect(fraction).to_have_text(re.compile(r"^\d+/\d+$"))
    trader.goto(demo + "/me/settings/")
    trader.get_by_role("link", name="My API tokens").click()
    trader.get_by_label("Name").fill("tax export")
    trader.get_by_role("button", name="Make the token").click()
    token = trader.locator("[data-token]").inner_text()
    assert token.startswith("ifp_") or "_" in token
    assert trader.request.get(
        demo + "/api/v1/me/statements", headers={"Authorization": f"Bearer {token}"}
    ).ok
    trader.get_by_role("button", name=re.compile("Revoke")).click()
    expect(trader.locator(".messages")).to_contain_text("is revoked")
    assert ApiToken.objects.get(name="tax export").revoked_at is not None
    assert Statement.objects.exists()


def test_a_visitor_filters_cycles_reads_running_figures_and_the_usd_chart(demo, page):
    page.goto(demo + "/cycles/")
    first = SettlementCycle.objects.order_by("starts_at").first().starts_at.date().isoformat()
    page.get_by_label("To").fill(first)
    page.get_by_role("button", name="Show").click()
    rows = page.locator("table.cycles tbody tr")
    expect(rows.first).to_contain_text(first)
    assert rows.count() == SettlementCycle.objects.filter(starts_at__date=first).count()
    opened = SettlementCycle.objects.filter(status="open").first()
    page.goto(demo + f"/cycles/{opened.id}/")
    expect(page.locator("#running-title")).to_be_visible()
    page.goto(demo + "/")
    assert IndexPrice.objects.exists()
    expect(page.locator("[data-total-usd]")).to_have_text(re.compile(r"^[\d\u202f]+\.\d\d$"))
    page.get_by_role("button", name="In USD").click()
    page.wait_for_function(
        "document.getElementById('balance-chart').layout.yaxis.title.text === 'USD'"
    )
    hover = page.evaluate("document.getElementById('balance-chart').data[0].text.at(-1)")
    assert re.fullmatch(r"[\d\u202f]+\.\d\d", hover)  # dollars to the cent


def test_the_api_reference_is_a_page_of_the_site(demo, page):
    page.goto(demo + "/api/docs/")
    expect(page.locator(".site-header")).to_be_visible()  # the way back: the site's own header
    sections = page.locator("h2[id^=tag-]").evaluate_all("hs => hs.map(h => h.id)")
    assert sections == ["tag-public", "tag-traders", "tag-ingestion", "tag-engine", "tag-admin"]
    funds = page.locator("article.api-op", has_text="/api/v1/funds/{asset}/records").first
    expect(funds).to_contain_text("Public: no token, no login.")
    admin = page.locator("article.api-op", has_text="/api/v1/admin/actions").first
    expect(admin).to_contain_text("Needs an API token")
    assert get_user_model().objects.filter(username="admin").exists()
