"""Template filters that show integer smallest units as exact decimal amounts."""

import json
from datetime import UTC
from decimal import Decimal

from django import template
from django.conf import settings
from django.templatetags.static import static
from django.utils.html import format_html

from statements.money import format_grouped, grouped_text

register = template.Library()


@register.filter
def units(value, asset):
    """`{{ record.amount_units|units:fund.asset }}`: the exact amount with the asset's places,
    thousands separated by a thin space; a dash for a missing figure."""
    if value is None:
        return "–"
    return format_grouped(value, asset.precision)


@register.filter
def percent(ratio) -> str:
    """An exact ratio as a percentage: 0.1234 → "12.34 %" (a no-break space: the sign never
    wraps onto a line of its own)."""
    value = (Decimal(ratio) * 100).normalize()
    return f"{value:f}\u00a0%"


@register.filter
def duration(seconds) -> str:
    """Seconds as hours, minutes and seconds, exactly: 5400 → "1 h 30 min"."""
    seconds, parts = int(seconds), []
    for unit, size in (("h", 3600), ("min", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}")
    return " ".join(parts) or "0 s"


@register.filter
def period(cycle) -> str:
    """A cycle's whole period in UTC, its end's date left out when it is the start's:
    "2026-11-30 00:00 – 2026-12-01 00:00", "2026-12-01 00:00 – 08:00"."""
    start, end = cycle.starts_at.astimezone(UTC), cycle.ends_at.astimezone(UTC)
    same_day = end.date() == start.date()
    shown_end = end.strftime("%H:%M") if same_day else end.strftime("%Y-%m-%d %H:%M")
    # Each end stays on one line; a narrow column breaks the period after the dash only.
    return format_html(
        '<span class="nowrap">{} –</span> <span class="nowrap">{}</span>',
        f"{start:%Y-%m-%d %H:%M}",
        shown_end,
    )


@register.simple_tag
def plotly_bundle() -> str:
    """The URL of the vendored plotly.js bundle (settings.PLOTLY_BUNDLE)."""
    return static(settings.PLOTLY_BUNDLE)


@register.filter
def normalize(value) -> str:
    """A Decimal without its trailing zeros, never in exponent form: 97000.500000 → "97000.5"."""
    if value is None:
        return "–"
    text = f"{Decimal(value).normalize():f}"
    return grouped_text(text)


@register.filter
def detail_items(details) -> list[tuple[str, str]]:
    """An audit entry's details as (label, text) pairs, in full: "event_types" → "Event types";
    lists joined, nested values as compact JSON."""
    if not isinstance(details, dict):
        return [("Details", json.dumps(details, ensure_ascii=False))] if details else []
    items = []
    for key, value in details.items():
        label = str(key).replace("_", " ").capitalize()
        if isinstance(value, list) and all(isinstance(v, str | int) for v in value):
            text = ", ".join(str(v) for v in value)
        elif isinstance(value, dict | list):
            text = json.dumps(value, ensure_ascii=False, sort_keys=True)
        elif value is None:
            text = "–"
        else:
            text = str(value)
        items.append((label, text))
    return items
