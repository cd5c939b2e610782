"""Traders and settlement staff in a real browser: a trader logs in, finds an apportionment,
opens its computation and downloads the CSV; an admin previews and settles a cycle, and the
trader's new statement appears."""

import csv
import importlib.util
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone
from playwright.sync_api import expect

from fund.services.liquidations import PositionProfitInput, position_profits_record
from statements.models import TraderAccount
from tests.factories import ContractFactory, FundFactory, UserFactory
from tests.helpers import book_loss, deposit, report_profits

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
_spec = importlib.util.spec_from_file_location(
    "check_ledger", Path(__file__).resolve().parents[2] / "docs" / "check_ledger.py"
)
check_ledger = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_ledger)
verify_proof = check_ledger.verify_proof
PASSWORD = "pass-for-tests"


@pytest.fixture
def books(live_server):
    """Today's fund: yesterday's cycle settled with carol's apportionment, today's with a loss."""
    from fund.services.cycles import cycles_close_due
    from fund.services.settlement import settlement_cycle_settle

    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    fund = FundFactory(anchor=today - timedelta(days=1))
    contract = ContractFactory(symbol="BTCUSDT", margin_asset=fund.asset)
    deposit(fund, "1000")
    yesterday = book_loss(contract, "500", today - timedelta(hours=12)).cycle
    report_profits(yesterday, contract, {1: "600", 2: "300", 3: "80", 4: "20"})
    cycles_close_due(now=yesterday.settle_after)
    settlement_cycle_settle(cycle_id=yesterday.id, now=yesterday.settle_after)
    current = book_loss(contract, "30", timezone.now() - timedelta(seconds=20)).cycle
    # carol holds position 1 yesterday and position 11 today, both in account acct-1.
    position_profits_record(
        cycle_id=current.id, items=[PositionProfitInput(11, "acct-1", "BTCUSDT", "90")]
    )
    carol = UserFactory(username="carol", password=PASSWORD)
    TraderAccount.objects.filter(external_id="acct-1").update(user=carol)
    ops = UserFactory(username="ops", password=PASSWORD, is_staff=True)
    ops.user_permissions.add(Permission.objects.get(codename="settle_cycles"))
    return {"url": live_server.url, "current": current}


def log_in(page, url, username):
    page.goto(url + "/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_a_trader_finds_an_apportionment_its_computation_and_the_csv(books, page):
    log_in(page, books["url"], "carol")
    expect(page.locator("main h1")).to_have_text("My statements")
    row = page.locator("table.statements tbody tr").first
    expect(row).to_contain_text("−266.66666667")
    row.get_by_role("link", name="Computation").click()
    expect(page.locator("main")).to_contain_text("U = L − F = 400.00000000")
    expect(page.locator("main")).to_contain_text("plus one leftover unit")
    with page.expect_download() as proof_download:  # the browser's own Accept header: still JSON
        page.get_by_role("link", name="Download the inclusion proof").click()
    proof = json.loads(open(proof_download.value.path(), encoding="utf-8").read())
    warnings = []  # the proof names this site's cycle: nothing to warn about
    ok, message = verify_proof(proof, books["url"], warn=warnings.append)
    assert ok and not warnings, (message, warnings)
    assert proof_download.value.suggested_filename.endswith("-rank-1.json")
    page.go_back()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    rows = list(csv.DictReader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))
    assert [(r["type"], r["amount"]) for r in rows] == [("apportionment", "-266.66666667")]


def test_an_admin_previews_and_settles_a_cycle_and_the_traders_new_statement_appears(
    books, browser
):
    admin = browser.new_context().new_page()
    log_in(admin, books["url"], "ops")
    admin.goto(books["url"] + f"/ops/cycles/{books['current'].id}/")
    expect(admin.locator("[data-preview=loss]")).to_have_count(0)  # a GET computes nothing
    admin.get_by_role("button", name="Preview the settlement").click()
    expect(admin.locator("[data-preview=loss]")).to_have_text("30.00000000")
    admin.get_by_label("I checked the preview's totals").check()
    admin.get_by_role("button", name="Settle now").click()
    expect(admin.locator("#cycle-status")).to_contain_text("Settled", timeout=20_000)
    trader = browser.new_context().new_page()
    log_in(trader, books["url"], "carol")
    expect(trader.locator("table.statements tbody tr").first).to_contain_text("−24.00000000")
