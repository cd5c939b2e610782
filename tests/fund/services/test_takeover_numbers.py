"""A takeover's quantity and prices read from plain text (the fast path) exactly as from the
same Decimal (the general path): the same number or the same refusal."""

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from fund.services.liquidations import PRICE_PLACES, QUANTITY_PLACES, _bounded_decimal
from statements.money import MoneyError


def _outcome(value, places):
    try:
        return _bounded_decimal(value, places=places, positive=True)
    except MoneyError as exc:
        return str(exc)


@given(
    text=st.from_regex(r"[0-9]{1,20}(\.[0-9]{1,12})?", fullmatch=True),
    places=st.sampled_from([QUANTITY_PLACES, PRICE_PLACES]),
)
def test_plain_text_and_its_decimal_give_the_same_answer(text, places):
    fast, general = _outcome(text, places), _outcome(Decimal(text), places)
    assert fast == general if isinstance(general, str) else Decimal(fast) == general
