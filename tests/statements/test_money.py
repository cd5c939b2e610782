"""Exact money: parsing, and the largest and smallest amounts through the real database."""

from datetime import timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from fund.models import FundRecord, LiquidationTakeover
from statements.money import (
    MAX_PRECISION,
    MAX_UNITS,
    MoneyError,
    format_grouped,
    format_units,
    fraction_text,
    grouped_text,
    significant_text,
    to_units,
)
from tests.factories import AssetFactory, ContractFactory, FundFactory


@pytest.mark.parametrize(
    "value, precision, units",
    [
        ("1", 8, 10**8),
        ("0.00000001", 8, 1),
        ("-2.5", 2, -250),
        ("1.50000000000", 8, 150000000),
        (Decimal("7"), 0, 7),
        (3, 2, 300),
    ],
)
def test_it_converts_amounts_to_units_exactly(value, precision, units):
    assert to_units(value, precision) == units


@pytest.mark.parametrize(
    "value, message",
    [
        ("0.000000001", "decimal places"),
        ("NaN", "finite"),
        ("-Infinity", "finite"),
        ("1" + "0" * 30, "too large"),
        (1.5, "floating-point"),
        (True, "not true"),
        ("", "not a number"),
        ("0." + "0" * 99_999 + "1", "decimal places"),
        ("9" * 40, "too large"),
    ],
)
def test_it_refuses_what_it_cannot_book(value, message):
    with pytest.raises(MoneyError, match=message):
        to_units(value, 8)


def test_it_formats_with_exactly_the_assets_places():
    assert format_units(-26666666667, 8) == "-266.66666667"
    assert format_units(5, 0) == "5"


@pytest.mark.django_db
@pytest.mark.parametrize("precision", [0, 8, MAX_PRECISION])
def test_it_keeps_the_largest_and_smallest_amounts_exact_in_the_database(precision):
    """Runs on SQLite and, in .ci/run's second pass, on PostgreSQL."""
    fund = FundFactory(asset=AssetFactory(code=f"A{precision}", precision=precision))
    for units in (1, MAX_UNITS):
        FundRecord.objects.create(
            fund=fund,
            seq=units,
            kind="deposit",
            amount_units=units,
            balance_after_units=units,
            created_at=timezone.now(),
            reason="round trip",
        )
        stored = FundRecord.objects.get(fund=fund, seq=units)
        assert stored.amount_units == units
        assert fund.asset.format(stored.amount_units) == format_units(units, precision)
    assert to_units(format_units(MAX_UNITS, precision), precision) == MAX_UNITS


@pytest.mark.django_db
def test_it_keeps_prices_and_quantities_of_fifteen_digits_exact_in_the_database(usdt_fund):
    contract = ContractFactory(margin_asset=usdt_fund.asset, multiplier=Decimal("1234567.12345678"))
    now = timezone.now()
    values = {
        "quantity": Decimal("999999999.999999"),
        "takeover_price": Decimal("9999999.99999999"),
        "close_price": Decimal("0.00000001"),
    }
    from django.db import transaction

    from fund.services.cycles import cycle_covering

    with transaction.atomic():
        cycle = cycle_covering(fund=usdt_fund, at=now)
    LiquidationTakeover.objects.create(
        external_id="x",
        contract=contract,
        fund=usdt_fund,
        side="long",
        remaining_margin_units=0,
        engine_result_units=-1,
        taken_over_at=now - timedelta(seconds=1),
        closed_at=now,
        cycle=cycle,
        **values,
    )
    stored = LiquidationTakeover.objects.get()
    assert {k: getattr(stored, k) for k in values} == values
    contract.refresh_from_db()
    assert contract.multiplier == Decimal("1234567.12345678")


@pytest.mark.parametrize(
    "text",
    ["٥", "５", "1_000", "+25", " 25 ", "25\n", ".5", "25.", "2.5e1", "1e3", "1E30", "0x10",
     "--1", "1,5", "1.2.3", "𝟓"],
)  # fmt: skip
def test_it_takes_money_only_as_plain_decimal_text(text):
    """Docs/rules.md: amounts are written as plain decimal text, as the API's schema publishes;
    other writings Python's Decimal would read (Unicode digits, exponents, spaces) are refused."""
    with pytest.raises(MoneyError, match="plain decimal text"):
        to_units(text, 8)


def test_it_holds_a_json_number_to_the_same_plain_form():
    import json

    from statements.money import JSONNumber

    assert to_units(json.loads("25.5", parse_float=JSONNumber), 8) == 2_550_000_000
    with pytest.raises(MoneyError, match="plain decimal text"):
        to_units(json.loads("2.5e1", parse_float=JSONNumber), 8)


def _outcome(convert):
    try:
        return convert()
    except MoneyError as exc:
        return str(exc)


@given(
    text=st.from_regex(r"-?[0-9]{1,41}(\.[0-9]{1,41})?", fullmatch=True),
    precision=st.integers(0, 18),
    limited=st.booleans(),
)
def test_plain_text_is_read_in_integers_exactly_as_through_decimal(text, precision, limited):
    limit = MAX_UNITS if limited else None
    fast = _outcome(lambda: to_units(text, precision, limit=limit))
    assert fast == _outcome(lambda: to_units(Decimal(text), precision, limit=limit))


@given(units=st.integers(-MAX_UNITS, MAX_UNITS), precision=st.integers(0, 18))
def test_units_are_written_as_their_exact_decimal(units, precision):
    assert format_units(units, precision) == f"{Decimal(f'{units}E-{precision}'):.{precision}f}"


@pytest.mark.parametrize(
    "value, places, expected",
    [
        (Fraction(1, 4), 6, ("0.25", True)),
        (Fraction(1, 3), 6, ("0.333333", False)),
        (Fraction(-7, 2), 3, ("-3.5", True)),
        (Fraction(2, 3), 4, ("0.6666", False)),  # truncated, never rounded up
        (Fraction(5), 4, ("5", True)),
        (Fraction(-1, 3), 2, ("-0.33", False)),
    ],
)
def test_a_fraction_is_written_exactly_or_cut_and_said_so(value, places, expected):
    assert fraction_text(value, places=places) == expected


@pytest.mark.parametrize(
    "value, expected",
    [
        (Fraction(4, 9), ("0.444444444444", False)),
        (Fraction(400, 9), ("44.4444444444", False)),
        (Fraction(1, 4), ("0.25", True)),
        (Fraction(1), ("1", True)),
        (Fraction(0), ("0", True)),
        (Fraction(4091874007, 13618370500000), ("0.000300467226016", False)),
    ],
)
def test_a_ratio_keeps_twelve_significant_digits(value, expected):
    assert significant_text(value, 12) == expected


@given(st.fractions(min_value=-(10**6), max_value=10**6), st.integers(0, 30))
def test_the_cut_text_is_within_one_last_digit_of_the_value(value, places):
    text, exact = fraction_text(value, places=places)
    shown = Fraction(text)
    assert abs(value - shown) < Fraction(1, 10**places) and abs(shown) <= abs(value)
    assert exact == (shown == value)


def test_amounts_are_grouped_with_a_narrow_space_and_a_true_minus():
    assert format_grouped(-123456789, 4) == "−12\u202f345.6789"
    assert format_grouped(5, 0) == "5" and grouped_text("1234567.5") == "1\u202f234\u202f567.5"
