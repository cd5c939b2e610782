"""Corrections (docs/rules.md §4): a new record that references the one it corrects, by staff
with the settlement permission, from the console and the admin API; shown beside the corrected
record on the public pages, in the API and in the CSV. Bad corrections change nothing."""

import csv
import io
import re

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from rest_framework.test import APIClient

from fund.models import AdminAction, FundRecord
from fund.services.audit import Audit
from fund.services.ledger import fund_record_correct, fund_withdraw
from tests.factories import UserFactory
from tests.helpers import assert_books_hold, at, book_profit, deposit

pytestmark = pytest.mark.django_db


def correct(ops, record, amount, reason="Typo in the amount"):
    return fund_record_correct(
        record_id=record.id, amount=amount, reason=reason, audit=Audit(actor=ops)
    )


def test_it_corrects_a_deposit_with_a_new_record_and_keeps_the_original(usdt_fund, ops):
    original = deposit(usdt_fund, "100", reason="Quarterly top-up")
    correction = correct(ops, original, "-10")
    usdt_fund.refresh_from_db()
    original.refresh_from_db()
    assert (original.amount_units, original.seq, original.kind) == (100 * 10**8, 1, "deposit")
    assert (correction.kind, correction.seq, correction.corrects_id) == (
        "correction",
        2,
        original.id,
    )
    assert correction.amount_units == -10 * 10**8 and correction.actor_id == ops.id
    assert correction.reason == "Typo in the amount"
    assert usdt_fund.balance_units == 90 * 10**8
    action = AdminAction.objects.get(action="correct")
    assert action.record_id == correction.id and action.details["corrects"] == 1
    assert_books_hold(usdt_fund)


def test_it_corrects_a_liquidation_profit_upwards(usdt_fund, linear, ops):
    profit = book_profit(linear, "5", at(0, 3))
    record = FundRecord.objects.get(takeover=profit)
    correct(ops, record, "0.5")
    usdt_fund.refresh_from_db()
    assert usdt_fund.balance_units == 55 * 10**7
    assert_books_hold(usdt_fund)


@pytest.mark.parametrize(
    "amount, field, message",
    [
        ("0", "amount", "other than zero"),
        ("abc", "amount", "The amount"),
        ("0.000000001", "amount", "decimal places"),
        ("-100.00000001", "amount", "into its opposite"),
    ],
)
def test_it_refuses_a_bad_amount_and_changes_nothing(usdt_fund, ops, amount, field, message):
    original = deposit(usdt_fund, "100")
    with pytest.raises(ValidationError) as caught:
        correct(ops, original, amount)
    assert message in " ".join(caught.value.message_dict[field])
    assert FundRecord.objects.count() == 1 and not AdminAction.objects.exists()


def test_it_refuses_to_take_the_fund_below_zero(usdt_fund, ops):
    original = deposit(usdt_fund, "100")
    fund_withdraw(asset_code="USDT", amount="95", reason="Moved to cold storage")
    with pytest.raises(ValidationError) as caught:
        correct(ops, original, "-10")  # 100 → 90 keeps the deposit positive, but the fund has 5
    assert "below zero" in " ".join(caught.value.message_dict["amount"])
    assert FundRecord.objects.filter(kind="correction").count() == 0


def test_it_refuses_to_correct_a_correction_or_a_settlement_coverage(usdt_fund, ops, world):
    original = deposit(usdt_fund, "100")
    correction = correct(ops, original, "-1")
    with pytest.raises(ValidationError) as caught:
        correct(ops, correction, "-1")
    assert "correct the original record #" in caught.value.message_dict["record"][0]
    coverage = FundRecord.objects.filter(kind="settlement_coverage").first()
    with pytest.raises(ValidationError) as caught:
        correct(ops, coverage, "1")
    assert "settlement's coverage" in caught.value.message_dict["record"][0]


def test_it_refuses_a_reason_left_empty(usdt_fund, ops):
    original = deposit(usdt_fund, "100")
    with pytest.raises(ValidationError) as caught:
        correct(ops, original, "1", reason="   ")
    assert "reason" in caught.value.message_dict


def test_the_console_corrects_a_record_and_names_a_missing_one(usdt_fund, ops):
    original = deposit(usdt_fund, "100")
    console = Client()
    console.force_login(ops)
    missing = console.post("/ops/funds/USDT/correct/", {"seq": "9", "amount": "1", "reason": "x"})
    assert missing.status_code == 200 and "USDT has no record #9" in missing.content.decode()
    bad = console.post("/ops/funds/USDT/correct/", {"seq": "1", "amount": "0", "reason": "x"})
    assert bad.status_code == 200 and "other than zero" in bad.content.decode()
    done = console.post(
        "/ops/funds/USDT/correct/",
        {"seq": str(original.seq), "amount": "-2.5", "reason": "Booked 2.5 too much"},
    )
    assert "Confirm: correction of #1" in done.content.decode() and FundRecord.objects.count() == 1
    assert "97.50000000 USDT" in done.content.decode().replace("\u202f", "")  # the balance after
    done = console.post(
        "/ops/funds/USDT/correct/",
        {"seq": "1", "amount": "-2.5", "reason": "Booked 2.5 too much", "step": "confirm"},
        follow=True,
    )
    assert "USDT #1 corrected by USDT #2" in done.content.decode()
    assert FundRecord.objects.get(seq=2).amount_units == -25 * 10**7


def test_the_console_refuses_staff_without_the_settlement_permission(usdt_fund):
    deposit(usdt_fund, "100")
    staff = Client()
    staff.force_login(UserFactory(username="staff", is_staff=True))
    answer = staff.post("/ops/funds/USDT/correct/", {"seq": "1", "amount": "1", "reason": "x"})
    assert answer.status_code == 403 and FundRecord.objects.count() == 1


def test_the_api_corrects_a_record_once_per_idempotency_key(usdt_fund, ops):
    deposit(usdt_fund, "100")
    api = APIClient()
    api.force_authenticate(ops)
    url = "/api/v1/admin/funds/usdt/records/1/corrections"
    body = {"amount": "-1", "reason": "Fee booked as deposit"}
    first = api.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="fix-1")
    again = api.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="fix-1")
    assert first.status_code == 201 and again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true" and again.data == first.data
    assert first.data["kind"] == "correction" and first.data["corrects_seq"] == 1
    assert FundRecord.objects.filter(kind="correction").count() == 1
    assert api.post("/api/v1/admin/funds/USDT/records/9/corrections", body).status_code == 404
    bad = api.post(url, {"amount": "-1000", "reason": "x"}, format="json")
    assert bad.status_code == 400 and "amount" in bad.data


def test_the_public_pages_api_and_csv_show_a_correction_beside_the_record(usdt_fund, ops, client):
    original = deposit(usdt_fund, "100")
    correct(ops, original, "-10")
    page = client.get("/funds/USDT/").content.decode()
    assert "corrects #1" in page and "corrected by" in page and "#2" in page
    records = client.get("/api/v1/funds/USDT/records").json()["results"]
    newest, oldest = records
    assert (newest["corrects_seq"], newest["corrects"], newest["corrected_by"]) == (
        1,
        original.id,
        [],
    )
    assert oldest["corrected_by"] == [2] and oldest["corrects_seq"] is None
    download = client.get("/api/v1/funds/USDT/records?format=csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(download.streaming_content).decode())))
    assert rows[0]["corrects_seq"] == "1" and rows[1]["corrected_by"] == "2"


def test_a_console_form_sent_twice_books_once(usdt_fund, ops):
    deposit(usdt_fund, "100")
    console = Client()
    console.force_login(ops)
    page = console.get("/ops/funds/USDT/correct/").content.decode()
    token = re.search(r'name="token" value="([0-9a-f]{32})"', page).group(1)
    data = {
        "token": token,
        "seq": "1",
        "amount": "-40",
        "reason": "Double booking",
        "step": "confirm",
    }
    first = console.post("/ops/funds/USDT/correct/", data, follow=True).content.decode()
    second = console.post("/ops/funds/USDT/correct/", data, follow=True).content.decode()
    assert "USDT #1 corrected by USDT #2" in first
    assert "Sent already, and done once: USDT #1 corrected by USDT #2" in second
    usdt_fund.refresh_from_db()
    assert FundRecord.objects.filter(kind="correction").count() == 1
    assert usdt_fund.balance_units == 60 * 10**8
    fresh = console.get("/ops/funds/USDT/move/").content.decode()
    assert f'value="{token}"' not in fresh  # every page a new token
