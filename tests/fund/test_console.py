"""Traders' pages and the settlement console: access, forms, the audit trail."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from fund.models import AdminAction, FundRecord, SettlementCycle
from statements.models import Statement
from tests.factories import AssetFactory, ContractFactory, FundFactory, UserFactory
from tests.helpers import ACTORS, at, book_loss, deposit, report_profits

pytestmark = pytest.mark.django_db
PAGE_ACTORS = [actor for actor in ACTORS if actor != "engine"]  # the engine has no pages


@pytest.fixture
def clients(world):
    staff = UserFactory(username="staff", is_staff=True)
    ops = UserFactory(username="ops", is_staff=True)
    ops.user_permissions.add(Permission.objects.get(codename="settle_cycles"))
    made = {"anonymous": Client()}
    for name, user in (
        ("trader", world.trader),
        ("other_trader", world.other),
        ("staff", staff),
        ("settlement_staff", ops),
    ):
        made[name] = Client()
        made[name].force_login(user)
    return made


def alice_statement(world):
    return Statement.objects.get(account__user=world.trader).id


LOGIN = "login"
ME = {"anonymous": LOGIN, "trader": 200, "other_trader": 200, "staff": 403, "settlement_staff": 403}
OWN = {
    "anonymous": LOGIN,
    "trader": 200,
    "other_trader": 404,
    "staff": 403,
    "settlement_staff": 403,
}
OPS = {
    "anonymous": LOGIN,
    "trader": 403,
    "other_trader": 403,
    "staff": 403,
    "settlement_staff": 200,
}
PAGES = [
    (lambda w: "/me/statements/", ME),
    (lambda w: f"/me/statements/{alice_statement(w)}/", OWN),
    (lambda w: "/ops/", OPS),
    (lambda w: f"/ops/cycles/{w.cycle.id}/", OPS),
    (lambda w: f"/ops/cycles/{SettlementCycle.objects.get(starts_at=at(1)).id}/", OPS),
    (lambda w: "/ops/funds/USDT/move/", OPS),
    (lambda w: "/ops/funds/USDT/schedule/", OPS),
    (lambda w: "/ops/audit/", OPS),
]


@pytest.mark.parametrize("actor", PAGE_ACTORS)
@pytest.mark.parametrize("path, expected", PAGES, ids=[str(i) for i in range(len(PAGES))])
def test_it_answers_each_page_as_the_matrix_says(clients, world, actor, path, expected):
    response = clients[actor].get(path(world))
    expected = expected[actor]
    if expected == LOGIN:
        assert response.status_code == 302 and response["Location"].startswith(
            "/accounts/login/?next="
        )
    else:
        assert response.status_code == expected


def test_it_shows_a_trader_how_the_apportionment_was_computed(clients, world):
    page = clients["trader"].get(f"/me/statements/{alice_statement(world)}/").content.decode()
    for figure in (
        "L = 500.00000000",
        "F = 100.00000000",
        "U = L − F = 400.00000000",
        "600.00000000",
        "4/9",
        "266.66666667",
        "333.33333333",
        "plus one leftover unit",
        "U / S ≈ 0.444444444444",  # decimals, twelve significant digits, marked inexact
        "about <strong>44.4444444444&nbsp;%</strong>",
        '<code class="hash">4/9</code>',  # the exact fraction, behind its toggle
        "266.66666666666666… USDT",  # the share before rounding, six digits past the unit
        "rounded down: 26666666666 units, + 1 leftover unit = 26666666667",
    ):
        assert figure in page, figure
    contract = world.cycle.fund.asset.contracts.get().symbol
    assert f"<dt>Contract</dt><dd>{contract}</dd>" in page and "<dt>Position</dt><dd>1</dd>" in page
    listing = clients["trader"].get("/me/statements/").content.decode()
    assert "−266.66666667 USDT" in listing and "over 1 statement<" in listing
    assert "Total apportioned" in listing and f"<td>{contract}</td>" in listing
    assert "600.00000000</td>" in listing and "333.33333333</td>" in listing  # before and after


@pytest.mark.parametrize(
    "data, field",
    [
        ({"kind": "deposit", "amount": "-5", "reason": "x"}, "amount"),
        ({"kind": "deposit", "amount": "1.000000001", "reason": "x"}, "amount"),
        ({"kind": "withdrawal", "amount": "900.00000001", "reason": "too much"}, "amount"),
        ({"kind": "deposit", "amount": "5", "reason": "  "}, "reason"),
    ],
)
def test_it_shows_form_errors_for_bad_money_moves_and_changes_nothing(clients, world, data, field):
    response = clients["settlement_staff"].post("/ops/funds/USDT/move/", data)
    assert response.status_code == 200 and field in response.context["form"].errors
    assert (
        FundRecord.objects.count() == 2
        and not AdminAction.objects.filter(action__in=["deposit", "withdraw"]).exists()
    )


def test_a_money_move_shows_every_error_at_once(clients, world):
    response = clients["settlement_staff"].post(
        "/ops/funds/USDT/move/", {"kind": "deposit", "amount": "-5", "reason": ""}
    )
    errors = response.context["form"].errors
    assert response.status_code == 200 and {"amount", "reason"} <= set(errors)
    assert "greater than zero" in str(errors["amount"]) and FundRecord.objects.count() == 2


def test_a_money_move_is_booked_only_from_its_confirmation_page(clients, world):
    console = clients["settlement_staff"]
    fund = world.cycle.fund
    fund.refresh_from_db()
    data = {"kind": "withdrawal", "amount": "12.5", "reason": "Hot wallet rebalancing"}
    page = console.post("/ops/funds/USDT/move/", data)
    body = page.content.decode()
    assert page.status_code == 200 and FundRecord.objects.count() == 2  # nothing booked yet
    assert "Confirm: withdrawal" in body
    assert re.search(r'data-confirm="amount"[^>]*>−12\.50000000\s+USDT', body)
    after = fund.balance_units - 1250000000
    assert f"{fund.asset.format(after)}".replace(",", "") in body.replace("\u202f", "")
    assert "Hot wallet rebalancing" in body
    back = console.post("/ops/funds/USDT/move/", {**data, "step": "edit"})
    assert back.context["form"]["amount"].value() == "12.5" and FundRecord.objects.count() == 2
    done = console.post("/ops/funds/USDT/move/", {**data, "step": "confirm"}, follow=True)
    assert "Withdrawal of 12.50000000 USDT recorded" in done.content.decode()
    assert FundRecord.objects.filter(kind="withdrawal", amount_units=-1250000000).count() == 1


def test_it_records_a_deposit_from_the_console(clients, world):
    response = clients["settlement_staff"].post(
        "/ops/funds/USDT/move/",
        {"kind": "deposit", "amount": "12.5", "reason": "top-up", "step": "confirm"},
    )
    assert response.status_code == 302
    record = FundRecord.objects.get(kind="deposit", reason="top-up")
    assert record.amount_units == 1250000000 and record.actor.username == "ops"
    assert AdminAction.objects.get(action="deposit").record == record


def test_it_changes_a_schedule_from_the_next_cycle_and_records_it(clients, world):
    anchor = world.cycle.fund.anchor.strftime("%Y-%m-%d %H:%M:%S")
    response = clients["settlement_staff"].post(
        "/ops/funds/USDT/schedule/",
        {
            "anchor": "2030-01-01 00:00:00",  # the first cycle exists: the anchor is not sent
            "cycle_seconds_0": "12",
            "cycle_seconds_1": "3600",
            "grace_seconds_0": "10",
            "grace_seconds_1": "60",
            "fund_ratio": "0.25",
            "screening_ratio": "0.8",
        },
    )
    assert response.status_code == 302
    fund = world.cycle.fund
    fund.refresh_from_db()
    assert (fund.cycle_seconds, fund.grace_seconds) == (43200, 600)
    assert fund.anchor.strftime("%Y-%m-%d %H:%M:%S") == anchor
    action = AdminAction.objects.get(action="schedule")
    assert (
        action.details["before"]["fund_ratio"] == "0.2000"
        and action.details["after"]["fund_ratio"] == "0.25"
    )
    bad = clients["settlement_staff"].post(
        "/ops/funds/USDT/schedule/",
        {
            "cycle_seconds_0": "0",
            "cycle_seconds_1": "60",
            "grace_seconds_0": "٥",
            "grace_seconds_1": "60",
            "fund_ratio": "1.5",
            "screening_ratio": "0.12345",
        },
    )
    page = bad.content.decode()
    assert "Enter from 1 minute to 366 days." in page  # in the form's units, not seconds
    assert "Enter a whole number (digits 0-9)." in page
    assert 'name="anchor"' in page and "disabled" in page.split('name="anchor"')[1][:200]
    assert set(bad.context["form"].errors) == {
        "cycle_seconds",
        "grace_seconds",
        "fund_ratio",
        "screening_ratio",
    }
    assert AdminAction.objects.filter(action="schedule").count() == 1


def test_it_settles_the_current_cycle_from_the_console_and_the_trader_sees_it(db):
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    fund = FundFactory(asset=AssetFactory(code="USDC"), anchor=today)
    contract = ContractFactory(symbol="BTCUSDC", margin_asset=fund.asset)
    deposit(fund, "100")
    loss = book_loss(contract, "50", timezone.now() - timedelta(seconds=30))
    report_profits(loss.cycle, contract, {7: "100"}, account_prefix="carol")
    carol = UserFactory(username="carol")
    from statements.models import TraderAccount

    TraderAccount.objects.filter(external_id="carol-7").update(user=carol)
    ops = UserFactory(username="ops", is_staff=True)
    ops.user_permissions.add(Permission.objects.get(codename="settle_cycles"))
    console, trader = Client(), Client()
    console.force_login(ops)
    trader.force_login(carol)
    assert "Settle now" in console.get(f"/ops/cycles/{loss.cycle.id}/").content.decode()
    unconfirmed = console.post(f"/ops/cycles/{loss.cycle.id}/settle/")
    assert (
        unconfirmed.status_code == 302
        and SettlementCycle.objects.get(pk=loss.cycle.id).status == "open"
    )
    done = console.post(f"/ops/cycles/{loss.cycle.id}/settle/", {"confirm": "yes"}, follow=True)
    assert "Settled" in done.content.decode()
    assert "−40.00000000" in trader.get("/me/statements/").content.decode()


@pytest.mark.parametrize(
    "path, data",
    [
        (
            "/ops/funds/USDT/move/",
            {"kind": "deposit", "amount": "1", "reason": "x", "step": "confirm"},
        ),
        (
            "/ops/funds/USDT/schedule/",
            {
                "anchor": "2026-01-01 00:00:00",
                "cycle_seconds_0": "1",
                "cycle_seconds_1": "86400",
                "grace_seconds_0": "5",
                "grace_seconds_1": "60",
                "fund_ratio": "0.2",
                "screening_ratio": "0.9",
            },
        ),
        ("/accounts/logout/", {}),
    ],
)
def test_it_protects_every_form_against_cross_site_requests(world, path, data):
    ops = UserFactory(username="ops", is_staff=True)
    ops.user_permissions.add(Permission.objects.get(codename="settle_cycles"))
    client = Client(enforce_csrf_checks=True)
    client.force_login(ops)
    assert client.post(path, data).status_code == 403
    cycle = SettlementCycle.objects.get(starts_at=at(1))
    assert client.post(f"/ops/cycles/{cycle.id}/settle/", {"confirm": "yes"}).status_code == 403
    assert FundRecord.objects.count() == 2


def test_it_locks_out_repeated_failed_logins(world):
    client = Client()
    for _ in range(5):
        assert (
            "Please enter a correct username"
            in client.post(
                "/accounts/login/", {"username": "alice", "password": "wrong"}
            ).content.decode()
        )
    locked = client.post("/accounts/login/", {"username": "alice", "password": "pass-for-tests"})
    assert "Too many failed logins" in locked.content.decode()
    assert (
        Client()
        .post("/accounts/login/", {"username": "bob", "password": "pass-for-tests"})
        .status_code
        == 302
    )


def test_the_audit_trail_reads_as_fields_filters_pages_and_downloads(clients, world):
    console = clients["settlement_staff"]
    for amount in ("1", "2", "3"):
        console.post(
            "/ops/funds/USDT/move/",
            {"kind": "deposit", "amount": amount, "reason": f"Top-up {amount}", "step": "confirm"},
        )
    page = console.get("/ops/audit/").content.decode()
    assert '<dt>Amount</dt><dd class="wrap-anywhere">3.00000000</dd>' in page
    assert '<dt>Reason</dt><dd class="wrap-anywhere">Top-up 3</dd>' in page
    assert "{'amount'" not in page  # no Python dict on the page
    only = console.get("/ops/audit/?action=deposit&actor=ops&asset=usdt").content.decode()
    assert only.count("Deposited to a fund</td>") + only.count("Deposited to a fund <") == 3
    none = console.get("/ops/audit/?actor=nobody").content.decode()
    assert "No admin action matches these filters" in none
    bad = console.get("/ops/audit/?from=soon")
    assert bad.status_code == 200 and 'role="alert"' in bad.content.decode()
    assert "/api/v1/admin/actions?format=csv&amp;action=deposit" in only
    csv_answer = console.get("/api/v1/admin/actions?format=csv&action=deposit")
    body = b"".join(csv_answer.streaming_content).decode()
    assert body.count("\n") == 4 and '""reason"": ""Top-up 1""' in body
    assert clients["trader"].get("/api/v1/admin/actions?format=csv").status_code == 403


def test_the_preview_in_the_console_groups_its_numbers(clients, usdt_fund, linear):
    deposit(usdt_fund, "1000000")
    cycle = book_loss(linear, "12345.5", timezone.now() - timedelta(minutes=1)).cycle
    page = clients["settlement_staff"].post(f"/ops/cycles/{cycle.id}/preview/").content.decode()
    assert "12\u202f345.50000000</td>" in page and ">1\u202f000\u202f" in page
