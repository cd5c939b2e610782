"""Deposits and withdrawals: audited, exact, never below zero."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from fund.models import FundRecord
from fund.services.ledger import fund_deposit, fund_withdraw
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_it_deposits_and_withdraws_with_a_published_reason(usdt_fund):
    admin = UserFactory()
    fund_deposit(asset_code="USDT", amount="100.5", reason="Top-up from the exchange", actor=admin)
    record = fund_withdraw(asset_code="USDT", amount="0.5", reason="Fee correction", actor=admin)
    assert (record.kind, record.amount_units, record.balance_after_units, record.seq) == (
        "withdrawal",
        -50000000,
        10000000000,
        2,
    )
    assert record.reason == "Fee correction" and record.actor == admin
    usdt_fund.refresh_from_db()
    assert usdt_fund.balance == Decimal(100)


@pytest.mark.parametrize(
    "amount, reason, field",
    [
        ("-1", "x", "amount"),
        ("0", "x", "amount"),
        ("1.000000001", "x", "amount"),
        ("1", "  ", "reason"),
        ("zz", "x", "amount"),
    ],
)
def test_it_refuses_bad_deposits(usdt_fund, amount, reason, field):
    with pytest.raises(ValidationError) as exc:
        fund_deposit(asset_code="USDT", amount=amount, reason=reason)
    assert field in exc.value.message_dict
    assert not FundRecord.objects.exists()


def test_it_never_withdraws_below_zero(usdt_fund):
    fund_deposit(asset_code="USDT", amount="10", reason="seed")
    with pytest.raises(ValidationError, match="cannot go below zero"):
        fund_withdraw(asset_code="USDT", amount="10.00000001", reason="too much")
    usdt_fund.refresh_from_db()
    assert usdt_fund.balance_units == 10 * 10**8 and FundRecord.objects.count() == 1


def test_it_refuses_an_unknown_asset(db):
    with pytest.raises(ValidationError, match="no insurance fund for the asset 'DOGE'"):
        fund_deposit(asset_code="DOGE", amount="1", reason="x")
