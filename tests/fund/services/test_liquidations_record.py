"""Booking closed takeovers and position profits."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from fund.errors import ConflictError
from fund.models import Contract, FundRecord, LiquidationTakeover, PositionProfit, SettlementCycle
from fund.services.liquidations import TakeoverInput, engine_result_units, liquidations_record
from statements.money import MAX_UNITS, from_units
from tests.factories import AssetFactory, ContractFactory, FundFactory
from tests.helpers import book_loss, book_profit, report_profits

pytestmark = pytest.mark.django_db


NOW = timezone.now()


def takeover(**overrides):
    now = NOW
    values = {
        "external_id": "t-1",
        "contract": "BTCUSDT",
        "side": "long",
        "quantity": "0.5",
        "takeover_price": "60000",
        "close_price": "60100",
        "remaining_margin": "12.5",
        "taken_over_at": now - timedelta(minutes=2),
        "closed_at": now - timedelta(minutes=1),
    }
    values.update(overrides)
    return TakeoverInput(**values)


def test_it_computes_a_linear_result_both_ways():
    args = {
        "kind": "linear",
        "quantity": Decimal("0.5"),
        "multiplier": Decimal(1),
        "remaining_margin_units": 10 * 10**8,
        "precision": 8,
    }
    assert (
        engine_result_units(
            side="long", takeover_price=Decimal(100), close_price=Decimal(90), **args
        )
        == 5 * 10**8
    )
    assert (
        engine_result_units(
            side="short", takeover_price=Decimal(100), close_price=Decimal(90), **args
        )
        == 15 * 10**8
    )


def test_it_rounds_an_inverse_result_down_toward_minus_infinity():
    # 100 contracts of 1 USD, long from 30,000 to 29,000:
    # 100 × (1/30000 − 1/29000) = −0.000114942528… BTC
    args = {
        "kind": "inverse",
        "quantity": Decimal(100),
        "multiplier": Decimal(1),
        "remaining_margin_units": 0,
        "precision": 8,
    }
    assert (
        engine_result_units(
            side="long", takeover_price=Decimal(30000), close_price=Decimal(29000), **args
        )
        == -11495
    )
    # the short side gains 0.000114942528… and is rounded down too
    assert (
        engine_result_units(
            side="short", takeover_price=Decimal(30000), close_price=Decimal(29000), **args
        )
        == 11494
    )


def test_it_credits_a_profit_to_the_fund_at_once(linear):
    result = liquidations_record(items=[takeover()])
    t = result.rows[0]
    assert result.created == [True]
    assert t.engine_result_units == (Decimal("12.5") + Decimal("0.5") * 100) * 10**8
    record = FundRecord.objects.get()
    assert (record.kind, record.amount_units, record.balance_after_units, record.seq) == (
        "liquidation_profit",
        t.engine_result_units,
        t.engine_result_units,
        1,
    )
    assert record.takeover == t
    t.fund.refresh_from_db()
    assert t.fund.balance_units == t.engine_result_units


def test_it_gathers_a_loss_into_the_cycle_of_its_close_time(linear, day1):
    t = book_loss(linear, "25", day1)
    assert t.engine_result_units == -25 * 10**8 and not t.late
    assert t.cycle.starts_at <= day1 < t.cycle.ends_at
    assert not FundRecord.objects.exists()


def test_it_books_the_same_takeover_once(linear):
    first = liquidations_record(items=[takeover()])
    again = liquidations_record(items=[takeover()])
    assert again.created == [False] and again.rows[0].pk == first.rows[0].pk
    assert LiquidationTakeover.objects.count() == 1 and FundRecord.objects.count() == 1


def test_it_refuses_an_id_reused_with_other_content_and_books_nothing_of_the_batch(linear):
    liquidations_record(items=[takeover()])
    with pytest.raises(ConflictError, match="different close_price") as exc:
        liquidations_record(items=[takeover(external_id="t-2"), takeover(close_price="60101")])
    assert exc.value.details == {"index": 1, "id": "t-1", "field": "close_price"}
    assert LiquidationTakeover.objects.count() == 1 and FundRecord.objects.count() == 1


@pytest.mark.parametrize(
    "overrides, field, message",
    [
        ({"contract": "NOPEUSDT"}, "contract", "Unknown contract"),
        ({"quantity": "-1"}, "quantity", "greater than zero"),
        ({"quantity": "0"}, "quantity", "greater than zero"),
        ({"takeover_price": "0"}, "takeover_price", "greater than zero"),
        ({"close_price": "-5"}, "close_price", "greater than zero"),
        ({"close_price": "NaN"}, "close_price", "finite"),
        ({"close_price": "Infinity"}, "close_price", "finite"),
        ({"quantity": "abc"}, "quantity", "not a number"),
        ({"quantity": 0.5}, "quantity", "floating-point"),
        ({"remaining_margin": "1.123456789"}, "remaining_margin", "more than 8 decimal places"),
        ({"remaining_margin": "-1"}, "remaining_margin", "must not be negative"),
        ({"takeover_price": "1.000000001"}, "takeover_price", "more than 8 decimal places"),
        ({"side": "up"}, "side", "long"),
        ({"closed_at": NOW + timedelta(hours=1)}, "closed_at", "future"),
        ({"closed_at": NOW - timedelta(hours=1)}, "closed_at", "before it was taken over"),
        ({"external_id": ""}, "external_id", "id of the takeover"),
    ],
)
def test_it_refuses_bad_input_and_changes_nothing(linear, overrides, field, message):
    with pytest.raises(ValidationError) as exc:
        liquidations_record(
            items=[
                takeover(external_id="good"),
                takeover(external_id="bad", **overrides)
                if "external_id" not in overrides
                else takeover(**overrides),
            ]
        )
    errors = exc.value.message_dict
    assert list(errors) == [f"items[1].{field}"]
    assert message in errors[f"items[1].{field}"][0]
    assert not LiquidationTakeover.objects.exists() and not FundRecord.objects.exists()
    assert not SettlementCycle.objects.exists()


def test_it_refuses_a_repeated_id_inside_one_batch(linear):
    with pytest.raises(ValidationError, match="Repeats item 0"):
        liquidations_record(items=[takeover(), takeover()])


def test_it_refuses_a_contract_whose_asset_has_no_fund(db):
    ContractFactory(
        symbol="ETHUSD", margin_asset=AssetFactory(code="ETH"), kind=Contract.Kind.INVERSE
    )
    with pytest.raises(ValidationError, match="no insurance fund"):
        liquidations_record(items=[takeover(contract="ETHUSD")])
    assert not LiquidationTakeover.objects.exists()


def test_it_refuses_a_close_time_before_the_funds_first_cycle(linear, usdt_fund):
    with pytest.raises(ValidationError, match="before the fund's first settlement cycle"):
        book_loss(linear, "1", usdt_fund.anchor - timedelta(days=1))


def test_it_shares_one_fund_between_all_contracts_of_a_margin_asset(linear, day1):
    eth = ContractFactory(symbol="ETHUSDT", margin_asset=linear.margin_asset)
    book_profit(linear, "3", day1)
    book_profit(eth, "4", day1)
    fund = linear.margin_asset.fund
    fund.refresh_from_db()
    assert fund.balance == Decimal(7) and list(
        fund.records.order_by("seq").values_list("seq", flat=True)
    ) == [1, 2]


def test_it_keeps_funds_of_different_assets_apart(linear, day1):
    btc = FundFactory(asset=AssetFactory(code="BTC", precision=8))
    inverse = ContractFactory(symbol="BTCUSD", margin_asset=btc.asset, kind=Contract.Kind.INVERSE)
    book_profit(inverse, "0.5", day1)
    btc.refresh_from_db()
    assert btc.balance == Decimal("0.5") and linear.margin_asset.fund.balance_units == 0


def test_it_refuses_bad_position_profits_and_changes_nothing(linear, day1):
    book_loss(linear, "1", day1)
    cycle = SettlementCycle.objects.get()
    with pytest.raises(ValidationError) as exc:
        report_profits(cycle, linear, {1: "10", 2: "1.000000001"})
    assert "items[1].profit" in exc.value.message_dict
    assert not PositionProfit.objects.exists()


def test_it_refuses_a_position_profit_in_another_margin_asset(linear, day1):
    book_loss(linear, "1", day1)
    btc = FundFactory(asset=AssetFactory(code="BTC"))
    inverse = ContractFactory(symbol="BTCUSD", margin_asset=btc.asset, kind=Contract.Kind.INVERSE)
    with pytest.raises(ValidationError, match="not margined in USDT"):
        report_profits(SettlementCycle.objects.get(fund__asset__code="USDT"), inverse, {1: "10"})


def test_it_books_a_position_profit_once(linear, day1):
    book_loss(linear, "1", day1)
    cycle = SettlementCycle.objects.get()
    report_profits(cycle, linear, {1: "10"})
    again = report_profits(cycle, linear, {1: "10"})
    assert again.created == [False]
    with pytest.raises(ConflictError):
        report_profits(cycle, linear, {1: "11"})
    assert PositionProfit.objects.get().profit_units == 10 * 10**8


def test_it_refuses_a_loss_that_would_take_the_cycles_total_beyond_what_the_system_books(linear):
    # Each loss is 6,000,000,000 USDT (6e17 units, within bounds); two exceed 10^18 units.
    items = [
        takeover(
            external_id=f"big-{i}",
            quantity="1000",
            takeover_price="6000001",
            close_price="1",
            remaining_margin="0",
        )
        for i in range(3)
    ]
    liquidations_record(items=items[:1])
    with pytest.raises(ValidationError, match="total losses would exceed") as exc:
        liquidations_record(items=items[1:])
    assert "items[0]" in exc.value.message_dict
    assert LiquidationTakeover.objects.count() == 1


def test_it_refuses_profits_that_would_take_the_cycles_total_beyond_what_the_system_books(
    linear, day1
):
    book_loss(linear, "1", day1)
    cycle = SettlementCycle.objects.get()
    big = str(from_units(MAX_UNITS // 2 + 1, 8))
    report_profits(cycle, linear, {1: big})
    with pytest.raises(ValidationError, match="total profits would exceed"):
        report_profits(cycle, linear, {2: big})
    assert PositionProfit.objects.count() == 1


def test_it_reads_an_amount_written_with_thousands_of_zeros(usdt_fund):
    from fund.services.ledger import fund_deposit

    record = fund_deposit(asset_code="USDT", amount="1." + "0" * 5000, reason="exact")
    assert record.amount_units == 10**8
