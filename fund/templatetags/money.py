"""Template filters that show integer smallest units as exact decimal amounts."""

from django import template

from statements.money import format_units

register = template.Library()


@register.filter
def units(value, asset):
    """`{{ record.amount_units|units:fund.asset }}`: the exact amount with the asset's places,
    thousands separated by a thin space; a dash for a missing figure."""
    if value is None:
        return "–"
    text = format_units(value, asset.precision)
    sign = "−" if text.startswith("-") else ""
    whole, _, fraction = text.lstrip("-").partition(".")
    grouped = f"{int(whole):,}".replace(",", "\u202f")
    return f"{sign}{grouped}.{fraction}" if fraction else f"{sign}{grouped}"
