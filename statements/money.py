"""Exact money: the one place where amounts cross between decimal text and integer units.

Every stored amount is an integer count of the asset's smallest unit (10^-precision). Integers
are exact on SQLite and PostgreSQL alike, sum exactly in SQL, and make the settlement arithmetic
plain integer arithmetic. Decimal strings appear only at the edges: forms, the API, commands.
"""

import re
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext
from fractions import Fraction

# The largest amount, in smallest units, that any single figure or balance may reach. It keeps
# every stored value and every sum of two inside a signed 64-bit integer.
MAX_UNITS = 10**18 - 1
MAX_PRECISION = 12
# More significant digits than any amount the system books (MAX_UNITS at precision 18 has 36).
MAX_DIGITS = 60


# Plain decimal text, the one form money is written in wherever it enters (the API's schema
# publishes it): ASCII digits, an optional leading minus and decimal point with digits on both
# sides. Not Unicode digits, "1_000", "+25", " 25 ", "25\n", ".5", "25." or "2.5e1".
DECIMAL_TEXT = r"-?[0-9]+(\.[0-9]+)?"
_DECIMAL_TEXT = re.compile(DECIMAL_TEXT)
# The same form in parts, for reading short amounts straight into units (to_units).
_DECIMAL_PARTS = re.compile(r"(-?)([0-9]{1,40})(?:\.([0-9]{1,40}))?")
_NOT_FINITE = re.compile(r"[+-]?(s?nan|inf|infinity)", re.IGNORECASE)


class MoneyError(ValueError):
    """An amount that cannot be booked: not a number, too many decimals or out of range."""


class JSONNumber(Decimal):
    """A JSON number as its text was written (json.loads(parse_float=JSONNumber)): exact, and
    held to the same plain form as decimal text."""

    def __new__(cls, text: str):
        number = super().__new__(cls, text)
        number.text = text
        return number


def parse_decimal(value) -> Decimal:
    """Turns plain decimal text (DECIMAL_TEXT), a JSON number written that way, an int or a
    Decimal into a finite Decimal; floats and any other writing are refused."""
    if type(value) is str and _DECIMAL_TEXT.fullmatch(value):  # the usual case, at once
        return Decimal(value)
    if isinstance(value, bool):
        raise MoneyError(f"must be a number, not {str(value).lower()}")
    if isinstance(value, float):
        raise MoneyError("must be given as a decimal string, not a floating-point number")
    if isinstance(value, JSONNumber):
        _plain(value.text)
        number = value
    elif isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, str):
        _plain(value)
        try:
            number = Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
            raise MoneyError(f"{value!r} is not a number") from None
    else:
        raise MoneyError(f"{value!r} is not a number")
    if not number.is_finite():
        raise MoneyError("must be a finite number")
    return number


def _plain(text: str) -> None:
    if _NOT_FINITE.fullmatch(text.strip()):
        raise MoneyError("must be a finite number")
    if not _DECIMAL_TEXT.fullmatch(text):
        shown = text if len(text) <= 40 else f"{text[:40]}…"
        if not any(c.isdigit() for c in text):
            raise MoneyError(f"{shown!r} is not a number")
        raise MoneyError(
            f"{shown!r} is not plain decimal text (digits 0-9, an optional leading minus and "
            "decimal point, e.g. 1234.5)"
        )


def to_units(value, precision: int, *, limit: int | None = MAX_UNITS) -> int:
    """Converts an amount to smallest units; refuses more decimals than the precision allows
    and, unless `limit` is None, more than `limit` units."""
    parts = _DECIMAL_PARTS.fullmatch(value) if type(value) is str else None
    if parts is not None:  # short plain text, read in integers (the same answers, faster)
        minus, whole, fraction = parts.groups()
        fraction = (fraction or "").rstrip("0")
        if len(fraction) > precision:
            raise MoneyError(f"has more than {precision} decimal places")
        units = int(whole + fraction.ljust(precision, "0"))
        if limit is not None and units > limit:
            raise MoneyError("is too large")
        return -units if minus else units
    sign, digits, exponent = parse_decimal(value).as_tuple()
    digits = list(digits)
    while digits and digits[-1] == 0:  # 1.000…0 is 1, however many zeros it is written with
        digits.pop()
        exponent += 1
    if not digits:
        return 0
    if len(digits) > MAX_DIGITS:
        raise MoneyError(f"has more than {MAX_DIGITS} significant digits")
    coefficient = int("".join(map(str, digits)))
    shift = exponent + precision
    if limit is not None and shift > 19:
        raise MoneyError("is too large")
    if shift > 4000:
        raise MoneyError("is too large")
    if shift >= 0:
        units = coefficient * 10**shift
    elif -shift > len(digits):
        raise MoneyError(f"has more than {precision} decimal places")
    else:
        units, rest = divmod(coefficient, 10**-shift)
        if rest:
            raise MoneyError(f"has more than {precision} decimal places")
    if limit is not None and units > limit:
        raise MoneyError("is too large")
    return -units if sign else units


def from_units(units: int, precision: int) -> Decimal:
    """The exact Decimal of an integer amount of smallest units, with `precision` places."""
    return Decimal(f"{units}E-{precision}")  # exact: no context rounds a literal


def format_units(units: int, precision: int) -> str:
    """Decimal text with exactly `precision` places: the API's and the commands' money format."""
    if not precision:
        return str(units)
    whole, fraction = divmod(-units if units < 0 else units, 10**precision)
    return f"{'-' if units < 0 else ''}{whole}.{fraction:0{precision}d}"


def fraction_text(value, *, places: int) -> tuple[str, bool]:
    """An exact rational as decimal text: every digit when the expansion ends within `places`
    decimals (trailing zeros dropped), else cut after `places` digits (truncated, never rounded
    up). Returns (text, exact): 1/4 → ("0.25", True); 1/3 with 6 places → ("0.333333", False)."""
    value = Fraction(value)
    sign = "-" if value < 0 else ""
    numerator, denominator = abs(value.numerator), value.denominator
    whole, rest = divmod(numerator, denominator)
    digits = []
    while rest and len(digits) < places:
        digit, rest = divmod(rest * 10, denominator)
        digits.append(str(digit))
    text = f"{sign}{whole}" + (f".{''.join(digits)}" if digits else "")
    return text, rest == 0


def significant_text(value, digits: int) -> tuple[str, bool]:
    """An exact rational to `digits` significant digits (truncated), or every digit when fewer
    suffice: (text, exact). 4/9 at 12 → ("0.444444444444", False); 1/4 → ("0.25", True)."""
    magnitude, exponent = abs(Fraction(value)), 0
    if magnitude == 0:
        return "0", True
    while magnitude >= 10:
        magnitude /= 10
        exponent += 1
    while magnitude < 1:
        magnitude *= 10
        exponent -= 1
    return fraction_text(value, places=max(0, digits - 1 - exponent))


def format_grouped(units: int, precision: int) -> str:
    """The one way amounts are shown to people (pages, charts, the console): every decimal
    place of the asset, thousands grouped by a narrow no-break space, a true minus sign:
    -123456789 at 4 places → "−12\u202f345.6789"."""
    return grouped_text(format_units(units, precision))


def grouped_text(text: str) -> str:
    """Plain decimal text as people read it: "-1234.5" → "−1\u202f234.5"."""
    sign = "−" if text.startswith("-") else ""
    whole, _, fraction = text.lstrip("-").partition(".")
    grouped = f"{int(whole):,}".replace(",", "\u202f")
    return f"{sign}{grouped}.{fraction}" if fraction else f"{sign}{grouped}"


def usd_value(units: int, precision: int, price: Decimal) -> Decimal:
    """An amount in smallest units at an index price in US dollars, exactly (digits enough for
    the largest amount at the largest price: 18 + 15 + 12 + 12)."""
    with localcontext(prec=60):
        return Decimal(units) * price / 10**precision


def format_usd(value: Decimal) -> str:
    """Dollars as people read them: to the cent (half to even), thousands grouped."""
    return grouped_text(f"{value.quantize(Decimal('0.01'), rounding=ROUND_HALF_EVEN):f}")
