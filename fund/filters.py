"""The list filters of the portal's pages and of the API, one FilterSet each, so that a filter
behaves the same in a browser and through the API: records, cycles, a trader's statements.

Dates and moments: a date alone (2026-11-01) means its start (UTC) for `from` and its end for
`to` (the whole day counts); a date and time needs a time zone. `kind`, `status` and `type` take
several values, repeated or comma-separated.
"""

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from fund.models import AdminAction, FundRecord, SettlementCycle
from fund.selectors import BUCKETS
from statements.models import Statement

MOMENT_HELP = "Use a date like 2026-11-01, or an ISO 8601 date and time with a time zone."


@dataclass(frozen=True)
class Moment:
    at: datetime
    date_only: bool


class MomentField(forms.CharField):
    """An ISO 8601 date, or date and time with a time zone, as a Moment in UTC."""

    def to_python(self, value):
        raw = super().to_python(value)
        if not raw:
            return None
        if not raw.isascii():  # parse_datetime would read "２０２６" as 2026
            raise ValidationError(MOMENT_HELP, code="invalid")
        date_only = "T" not in raw and " " not in raw
        try:
            value = parse_datetime(f"{raw}T00:00:00+00:00" if date_only else raw)
            if value is not None and value.tzinfo is not None:
                value = value.astimezone(UTC)  # out of range here rather than in the database
        except (ValueError, OverflowError):
            value = None
        if value is None or value.tzinfo is None:
            raise ValidationError(MOMENT_HELP, code="invalid")
        if date_only and value.year == 9999 and (value.month, value.day) == (12, 31):
            raise ValidationError(MOMENT_HELP, code="invalid")  # its end is past the calendar
        return Moment(value, date_only)


class MomentFilter(django_filters.Filter):
    """`from` (inclusive) or `to` (exclusive; a date alone counts the whole day)."""

    field_class = MomentField

    def filter(self, qs, value):
        if value is None:
            return qs
        at = value.at
        if value.date_only and self.lookup_expr == "lt":
            at += timedelta(days=1)
        return qs.filter(**{f"{self.field_name}__{self.lookup_expr}": at})


class ChoicesField(forms.MultipleChoiceField):
    """Several values, repeated (?kind=a&kind=b) or comma-separated (?kind=a,b)."""

    def to_python(self, value):
        values = super().to_python(value)
        return [part for raw in values for part in raw.split(",") if part]

    def validate(self, value):
        for choice in value:
            if not self.valid_value(choice):
                allowed = ", ".join(str(key) for key, _ in self.choices)
                raise ValidationError(
                    "Unknown value %(value)r; choose from %(allowed)s.",
                    code="invalid_choice",
                    params={"value": choice, "allowed": allowed},
                )


class ChoicesFilter(django_filters.MultipleChoiceFilter):
    field_class = ChoicesField


DIGITS = re.compile(r"[0-9]{1,18}")


class IdField(forms.CharField):
    """A row's id: plain ASCII digits, at most 18."""

    def to_python(self, value):
        raw = super().to_python(value)
        if not raw:
            return None
        if not DIGITS.fullmatch(raw):
            raise ValidationError("Give an id, a whole number.", code="invalid")
        return int(raw)


class IdFilter(django_filters.Filter):
    field_class = IdField


class AssetFilter(django_filters.CharFilter):
    """A margin asset's code, in any case."""

    def filter(self, qs, value):
        return super().filter(qs, value.upper() if value else value)


def _with_from(filterset_class):
    """`from` is a Python keyword: the filter is declared as `from_` and published as `from`."""
    for filters in (filterset_class.base_filters, filterset_class.declared_filters):
        filters["from"] = filters.pop("from_")
    return filterset_class


@_with_from
class PeriodFilterSet(django_filters.FilterSet):
    """`from` and `to` on the rows' creation time."""

    from_ = MomentFilter(field_name="created_at", lookup_expr="gte", help_text="Inclusive.")
    to = MomentFilter(field_name="created_at", lookup_expr="lt", help_text="Exclusive.")


class RecordFilter(PeriodFilterSet):
    kind = ChoicesFilter(choices=FundRecord.Kind.choices, help_text="One or more kinds.")

    class Meta:
        model = FundRecord
        fields = []


@_with_from
class CycleFilter(django_filters.FilterSet):
    asset = AssetFilter(field_name="fund__asset__code", help_text="A margin asset's code.")
    status = ChoicesFilter(choices=SettlementCycle.Status.choices)
    # The cycles that overlap the period: ending after `from`, starting before `to`.
    from_ = MomentFilter(
        field_name="ends_at", lookup_expr="gt", help_text="Cycles ending after it."
    )
    to = MomentFilter(
        field_name="starts_at",
        lookup_expr="lt",
        help_text="Cycles starting before it (a date: the day included).",
    )

    class Meta:
        model = SettlementCycle
        fields = []


class AdminActionFilter(PeriodFilterSet):
    action = ChoicesFilter(choices=AdminAction.Action.choices, help_text="One or more actions.")
    actor = django_filters.CharFilter(
        field_name="actor__username", max_length=150, help_text="Who acted (a username)."
    )
    asset = AssetFilter(field_name="fund__asset__code", help_text="A margin asset's code.")

    class Meta:
        model = AdminAction
        fields = []


class StatementFilter(PeriodFilterSet):
    asset = AssetFilter(field_name="asset__code", help_text="A margin asset's code.")
    type = ChoicesFilter(choices=Statement.Type.choices)
    cycle = IdFilter(field_name="apportionment__cycle_id", help_text="A settlement cycle's id.")

    class Meta:
        model = Statement
        fields = []


class HistoryForm(forms.Form):
    """The balance history's query: bucket size and an optional period."""

    bucket = forms.ChoiceField(choices=[(b, b) for b in BUCKETS], required=False)
    from_ = MomentField(required=False)
    to = MomentField(required=False)

    def clean_bucket(self):
        return self.cleaned_data["bucket"] or "day"

    def query(self) -> dict:
        start, end = self.cleaned_data["from"], self.cleaned_data["to"]
        if end is not None and end.date_only:
            end = Moment(end.at + timedelta(days=1), date_only=False)
        return {
            "bucket": self.cleaned_data["bucket"],
            "start": start.at if start else None,
            "end": end.at if end else None,
        }


HistoryForm.base_fields["from"] = HistoryForm.base_fields.pop("from_")


# The most days one daily-history page lists (fund.selectors.fund_daily).
DAILY_DAYS_MAX = 400


class PlainDateField(forms.DateField):
    """A day as YYYY-MM-DD in ASCII digits (strptime would take "２０２６" for 2026)."""

    PLAIN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

    def to_python(self, value):
        if isinstance(value, str) and value and not self.PLAIN.fullmatch(value):
            raise forms.ValidationError("Give a day as YYYY-MM-DD.", code="invalid")
        return super().to_python(value)


class DailyForm(forms.Form):
    """The daily history's period: two dates, the last 30 days by default."""

    from_ = PlainDateField(required=False, input_formats=["%Y-%m-%d"])
    to = PlainDateField(required=False, input_formats=["%Y-%m-%d"])

    EARLIEST = date(1970, 1, 1)

    def clean(self):
        data = super().clean()
        today = timezone.now().date()
        for name in ("from", "to"):
            day = data.get(name)
            if day is not None and not self.EARLIEST <= day <= today:
                self.add_error(name, f"Give a day from {self.EARLIEST} to today ({today}).")
                data[name] = None
        last = data.get("to") or today
        first = data.get("from") or max(last - timedelta(days=29), self.EARLIEST)
        if not self.errors:
            if first > last:
                self.add_error("from", "The first day comes after the last.")
            elif (last - first).days >= DAILY_DAYS_MAX:
                self.add_error("from", f"Ask for at most {DAILY_DAYS_MAX} days at a time.")
        data["first"], data["last"] = first, last
        return data


DailyForm.base_fields["from"] = DailyForm.base_fields.pop("from_")
