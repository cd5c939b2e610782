"""Money is plain decimal text wherever it enters (docs/rules.md; the pattern the API's schema
publishes): the API's intake and admin moves, the console's forms and settlement_calc refuse
Unicode digits, exponents, signs, spaces and the like, name the field, and book nothing."""

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from fund.models import FundRecord, LiquidationTakeover
from tests.helpers import deposit, takeover_item

pytestmark = pytest.mark.django_db
NOT_PLAIN = ["٥", "５", "1_000", "+25", " 25 ", "25\n", ".5", "25.", "2.5e1", "1e3"]


@pytest.mark.parametrize("amount", NOT_PLAIN)
def test_the_admin_api_refuses_a_deposit_not_in_plain_text(ops, usdt_fund, amount):
    api = APIClient()
    api.force_authenticate(ops)
    answer = api.post("/api/v1/admin/funds/USDT/deposits", {"amount": amount, "reason": "x"},
                      format="json")  # fmt: skip
    assert answer.status_code == 400 and "amount" in answer.data
    assert not FundRecord.objects.exists()


def test_the_admin_api_refuses_a_json_number_with_an_exponent(ops, usdt_fund):
    api = APIClient()
    api.force_authenticate(ops)
    body = '{"amount": 2.5e1, "reason": "x"}'
    answer = api.post("/api/v1/admin/funds/USDT/deposits", body, content_type="application/json")
    assert answer.status_code == 400 and "plain decimal text" in answer.data["amount"][0]
    plain = api.post("/api/v1/admin/funds/USDT/deposits", '{"amount": 25.5, "reason": "x"}',
                     content_type="application/json")  # fmt: skip
    assert plain.status_code == 201 and plain.data["amount"] == "25.50000000"


@pytest.mark.parametrize("field", ["quantity", "takeover_price", "close_price", "remaining_margin"])
@pytest.mark.parametrize("value", ["٥", "2.5e1", " 25", "+25"])
def test_the_intake_refuses_an_amount_not_in_plain_text(engine, usdt_fund, linear, field, value):
    now = timezone.now()
    usdt_fund.anchor = now - timedelta(days=1)
    usdt_fund.save()
    item = takeover_item("lq-plain", **{field: value})
    answer = engine.post("/api/v1/ingest/liquidations", {"items": [item]}, format="json")
    assert answer.status_code == 400 and f"items[0].{field}" in answer.data
    assert not LiquidationTakeover.objects.exists()


@pytest.mark.parametrize("amount", ["1e3", "٥", " 25 "])
def test_the_console_refuses_an_amount_not_in_plain_text(ops, usdt_fund, amount):
    deposit(usdt_fund, "100")
    console = Client()
    console.force_login(ops)
    page = console.post(
        "/ops/funds/USDT/move/", {"kind": "deposit", "amount": amount, "reason": "Top-up"}
    )
    assert page.status_code == 200 and "plain decimal text" in page.content.decode()
    assert FundRecord.objects.count() == 1


@pytest.mark.parametrize(
    "field, value", [("loss", "2.5e2"), ("balance", "١٠٠٠"), ("loss", "JSON 5e2")]
)
def test_settlement_calc_refuses_an_amount_not_in_plain_text(monkeypatch, field, value):
    line = {"precision": 8, "loss": "500", "balance": "1000", "fund_ratio": "0.2",
            "screening_ratio": "0.9", "positions": [{"id": 1, "profit": "600"}],
            field: value}  # fmt: skip
    text = json.dumps(line).replace('"JSON 5e2"', "5e2")  # a JSON number written with an exponent
    monkeypatch.setattr("sys.stdin", io.StringIO(text + "\n"))
    with pytest.raises(CommandError) as caught:
        call_command("settlement_calc", "-")
    assert f"line 1: {field}:" in str(caught.value) and caught.value.returncode == 2


@pytest.mark.parametrize(
    "external_id", [" lq-1", "lq-1 ", "lq 1", "lq-\x001", "lq-ü", "x" * 65, ""]
)
def test_the_intake_takes_an_engine_id_in_its_one_canonical_form_only(
    engine, usdt_fund, linear, external_id
):
    """An id is stored and echoed exactly as sent, so it never has two spellings."""
    now = timezone.now()
    usdt_fund.anchor = now - timedelta(days=1)
    usdt_fund.save()
    item = takeover_item(external_id)
    answer = engine.post("/api/v1/ingest/liquidations", {"items": [item]}, format="json")
    assert answer.status_code == 400 and "items[0].external_id" in str(answer.data)
    assert not LiquidationTakeover.objects.exists()
