"""Settlement staff: preview, settle now, deposits and withdrawals, all in the audit trail."""

from datetime import timedelta

import pytest
from django.utils import timezone

from fund.models import AdminAction, FundRecord, SettlementCycle
from tests.factories import AssetFactory, ContractFactory, FundFactory
from tests.helpers import at, book_loss, deposit, report_profits

pytestmark = pytest.mark.django_db


def test_it_previews_without_posting(settlement_staff, world, linear):
    open_cycle = SettlementCycle.objects.get(starts_at=at(1))
    book_loss(linear, "50", at(1, 3))
    report_profits(open_cycle, linear, {7: "100", 8: "50"})
    preview = settlement_staff.post(f"/api/v1/admin/cycles/{open_cycle.id}/preview").data
    assert (preview["loss"], preview["fund_share"], preview["participant_count"]) == (
        "50.00000000",
        "10.00000000",
        2,
    )
    assert preview["largest"][0] == {"rank": 1, "position_id": 7, "amount": "26.66666667"}
    open_cycle.refresh_from_db()
    assert open_cycle.status == "open" and not open_cycle.apportionments.exists()
    assert AdminAction.objects.get().action == "preview"


def test_it_settles_the_current_cycle_now_and_the_schedule_keeps_its_grid(settlement_staff, db):
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    fund = FundFactory(asset=AssetFactory(code="USDC"), anchor=today)
    contract = ContractFactory(symbol="BTCUSDC", margin_asset=fund.asset)
    deposit(fund, "100")
    loss = book_loss(contract, "50", timezone.now() - timedelta(seconds=30))
    report_profits(loss.cycle, contract, {7: "100"})
    response = settlement_staff.post(
        f"/api/v1/admin/cycles/{loss.cycle.id}/settle", HTTP_USER_AGENT="ops-console"
    )
    assert response.status_code == 202 and response.data["status"] == "settled"
    cycle = SettlementCycle.objects.get(pk=loss.cycle.id)
    assert (
        cycle.ends_at < today + timedelta(days=1)
        and cycle.apportionments.get().amount_units == 40 * 10**8
    )
    rest = SettlementCycle.objects.get(fund=fund, starts_at=cycle.ends_at)
    assert rest.ends_at == today + timedelta(days=1) and rest.status == "open"
    action = AdminAction.objects.get(action="settle")
    assert (
        action.actor.username == "ops"
        and action.ip_address == "127.0.0.1"
        and action.user_agent == "ops-console"
    )
    assert action.details["closed_early"] is True
    again = settlement_staff.post(f"/api/v1/admin/cycles/{cycle.id}/settle")
    assert again.status_code == 409


def test_it_deposits_and_withdraws_with_a_reason_and_records_who(settlement_staff, world):
    response = settlement_staff.post(
        "/api/v1/admin/funds/USDT/deposits", {"amount": "250.5", "reason": "top-up"}, format="json"
    )
    assert (
        response.status_code == 201
        and response.data["amount"] == "250.50000000"
        and response.data["reason"] == "top-up"
    )
    response = settlement_staff.post(
        "/api/v1/admin/funds/usdt/withdrawals", {"amount": "0.5", "reason": "fees"}, format="json"
    )
    assert response.status_code == 201 and response.data["balance_after"] == "1150.00000000"
    assert [(a.action, a.details["amount"]) for a in AdminAction.objects.order_by("id")] == [
        ("deposit", "250.50000000"),
        ("withdraw", "0.50000000"),
    ]
    assert FundRecord.objects.get(kind="withdrawal").actor.username == "ops"


@pytest.mark.parametrize(
    "path, body, field",
    [
        ("deposits", {"amount": "-5", "reason": "x"}, "amount"),
        ("deposits", {"amount": "1.000000001", "reason": "x"}, "amount"),
        ("deposits", {"amount": "abc", "reason": "x"}, "amount"),
        ("deposits", {"amount": "5", "reason": "  "}, "reason"),
        ("withdrawals", {"amount": "900.00000001", "reason": "too much"}, "amount"),
    ],
)
def test_it_refuses_bad_money_moves_and_changes_nothing(settlement_staff, world, path, body, field):
    before = FundRecord.objects.count()
    response = settlement_staff.post(f"/api/v1/admin/funds/USDT/{path}", body, format="json")
    assert response.status_code == 400 and field in response.data
    assert FundRecord.objects.count() == before and not AdminAction.objects.exists()


def test_it_answers_a_repeated_idempotency_key_once(settlement_staff, world):
    url, body = "/api/v1/admin/funds/USDT/deposits", {"amount": "10", "reason": "top-up"}
    first = settlement_staff.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    second = settlement_staff.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert (
        first.status_code == second.status_code == 201 and second["Idempotent-Replayed"] == "true"
    )
    assert first.data == second.data
    assert FundRecord.objects.filter(kind="deposit").count() == 2  # the world's and this one
    other = settlement_staff.post(
        url, {**body, "amount": "11"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert other.status_code == 409


def test_it_refuses_a_reason_that_is_not_text(settlement_staff, world):
    response = settlement_staff.post(
        "/api/v1/admin/funds/USDT/deposits", {"amount": "1", "reason": 123}, format="json"
    )
    assert response.status_code == 400 and "reason" in response.data


def test_every_staff_answer_is_private_and_not_stored(settlement_staff, staff, world):
    open_cycle = SettlementCycle.objects.get(starts_at=at(1))
    key = {"HTTP_IDEMPOTENCY_KEY": "cache-1"}
    move = {"amount": "10", "reason": "top-up"}
    answers = {
        "preview": settlement_staff.post(f"/api/v1/admin/cycles/{open_cycle.id}/preview"),
        "deposit": settlement_staff.post(
            "/api/v1/admin/funds/USDT/deposits", move, format="json", **key
        ),
        "replayed": settlement_staff.post(
            "/api/v1/admin/funds/USDT/deposits", move, format="json", **key
        ),
        "withdrawal": settlement_staff.post(
            "/api/v1/admin/funds/USDT/withdrawals", move, format="json"
        ),
        "correction": settlement_staff.post(
            "/api/v1/admin/funds/USDT/records/1/corrections",
            {"amount": "-1", "reason": "typo"},
            format="json",
        ),
        "settled already": settlement_staff.post(f"/api/v1/admin/cycles/{world.cycle.id}/settle"),
        "actions": settlement_staff.get("/api/v1/admin/actions"),
        "no permission": staff.get("/api/v1/admin/actions"),
    }
    assert {name: answer.status_code for name, answer in answers.items()} == {
        "preview": 200,
        "deposit": 201,
        "replayed": 201,
        "withdrawal": 201,
        "correction": 201,
        "settled already": 409,
        "actions": 200,
        "no permission": 403,
    }
    cache_control = {name: answer.get("Cache-Control", "") for name, answer in answers.items()}
    assert {
        name: value for name, value in cache_control.items() if value != "private, no-store"
    } == {}
