"""What flows back to the exchange, for the trading engine's credential only:

GET  /api/v1/engine/events?after=N[&limit=500][&wait=S]
     the outbox in order: events numbered after N (cursor: the last `seq` received); with
     `wait` (up to 30 s) the answer waits for the next event when there is none yet
GET  /api/v1/engine/cycles/<id>/apportionments[?from_rank=R][&format=csv]
     a settled cycle's apportionments in rank order (account, position, statement, rank,
     amount), streamed as JSON Lines or CSV, resumable from a rank; the cycle's count, total
     and root in the Apportionment-Count, -Total and -Root headers
POST /api/v1/engine/cycles/<id>/applied  {"count": …, "total": "…", "root": "…"}
     the exchange applied them: 201 the first time, 200 the same answer again; 409 naming
     the expected figures when they are not the cycle's, or when it is not settled
"""

import re
import time

from django import forms
from django.conf import settings
from django.db import connection
from django.utils.decorators import method_decorator
from django.views.decorators.cache import cache_control
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from fund.api.csv import encoded_rows_response, rows_response, wants_csv
from fund.api.permissions import IsEngine
from fund.api.renderers import CSVRenderer, JSONLinesRenderer
from fund.api.schema import DENIED, ERROR
from fund.errors import ConflictError
from fund.filters import IdField
from fund.models import Apportionment, Event, SettlementCycle
from fund.services.applications import cycle_apply, expected_figures
from statements.money import MoneyError, to_units

MAX_WAIT = 30
POLL_SECONDS = 0.25
HEX64 = re.compile(r"[0-9a-f]{64}")
private = method_decorator(cache_control(private=True, no_store=True), name="dispatch")


class EventsForm(forms.Form):
    after = IdField(required=False)
    limit = IdField(required=False)
    wait = IdField(required=False)

    def clean_limit(self):
        limit = self.cleaned_data["limit"]
        if limit is not None and not 1 <= limit <= 1000:
            raise forms.ValidationError("Give a limit from 1 to 1000.")
        return limit or 500

    def clean_wait(self):
        wait = self.cleaned_data["wait"]
        if wait is not None and wait > MAX_WAIT:
            raise forms.ValidationError(f"Wait at most {MAX_WAIT} seconds.")
        return wait or 0


def _valid(form):
    if not form.is_valid():
        raise ValidationError(form.errors)
    return form.cleaned_data


def event_out(event: Event) -> dict:
    return {
        "seq": event.seq,
        "kind": event.kind,
        "created_at": event.created_at.isoformat(),
        "asset": event.fund.asset.code,
        "cycle": event.cycle_id,
        "public": event.public,
        "data": event.data,
    }


@private
class EngineEventsView(APIView):
    permission_classes = [IsEngine]

    @extend_schema(
        tags=["engine"],
        summary="The outbox: every change, numbered without gaps, after a cursor",
        parameters=[
            OpenApiParameter("after", int, description="The last seq received (default 0)."),
            OpenApiParameter("limit", int, description="At most this many (1-1000, 500)."),
            OpenApiParameter("wait", int, description="Seconds to wait for one (0-30, 0)."),
        ],
        responses={
            200: inline_serializer(
                "EventsOut",
                {
                    "events": serializers.ListField(child=serializers.DictField()),
                    "last": serializers.IntegerField(),
                    "more": serializers.BooleanField(),
                },
            ),
            400: ERROR,
            **DENIED,
        },
    )
    def get(self, request):
        query = _valid(EventsForm(request.query_params))
        after, limit = query["after"] or 0, query["limit"]
        # A long poll holds a web worker: ENGINE_EVENTS_MAX_WAIT caps it below the API's 30 s.
        deadline = time.monotonic() + min(query["wait"], settings.ENGINE_EVENTS_MAX_WAIT)
        while True:
            rows = list(
                Event.objects.filter(seq__gt=after)
                .select_related("fund__asset")
                .order_by("seq")[: limit + 1]
            )
            if rows or time.monotonic() >= deadline:
                break
            time.sleep(POLL_SECONDS)
        events = [event_out(e) for e in rows[:limit]]
        return Response(
            {
                "events": events,
                "last": events[-1]["seq"] if events else after,
                "more": len(rows) > limit,
            }
        )


def _settled_cycle(pk: int) -> SettlementCycle:
    cycle = SettlementCycle.objects.select_related("fund__asset").filter(pk=pk).first()
    if cycle is None:
        raise NotFound(f"There is no cycle {pk}.")
    if cycle.status != SettlementCycle.Status.SETTLED:
        raise ConflictError(
            f"Cycle {pk} is {cycle.get_status_display().lower()}: it has no apportionments yet.",
            code="cycle_not_settled",
        )
    return cycle


@private
class EngineApportionmentsView(APIView):
    permission_classes = [IsEngine]
    renderer_classes = [JSONLinesRenderer, CSVRenderer]

    @extend_schema(
        tags=["engine"],
        summary="A settled cycle's apportionments in rank order, streamed (JSON Lines or CSV)",
        parameters=[
            OpenApiParameter("from_rank", int, description="Resume from this rank (default 1)."),
            OpenApiParameter("format", str, enum=["jsonl", "csv"]),
        ],
        responses={
            (200, "application/jsonl"): OpenApiTypes.STR,
            (200, "text/csv"): OpenApiTypes.STR,
            400: ERROR,
            404: ERROR,
            409: ERROR,
            **DENIED,
        },
    )
    def get(self, request, pk):
        raw = request.query_params.get("from_rank")
        field = IdField(required=False)
        try:
            from_rank = field.clean(raw) or 1
        except forms.ValidationError as exc:
            raise ValidationError({"from_rank": exc.messages}) from None
        cycle = _settled_cycle(pk)
        asset = cycle.fund.asset
        name = f"{asset.code}-cycle-{cycle.id}-apportionments"
        if connection.vendor == "postgresql":
            body = apportionments_copied(cycle, from_rank, as_csv=wants_csv(request))
            response = encoded_rows_response(request, name, body)
        else:
            response = rows_response(request, name, FEED_HEADER,
                                     apportionment_rows(cycle, from_rank))  # fmt: skip
        expected = expected_figures(cycle)
        response["Apportionment-Count"] = str(expected["count"])
        response["Apportionment-Total"] = expected["total"]
        response["Apportionment-Root"] = expected["root"]
        return response


FEED_HEADER = ["rank", "account", "position_id", "statement", "amount"]


def apportionment_rows(cycle: SettlementCycle, from_rank: int):
    """The feed's rows, read and written by Python (SQLite)."""
    asset = cycle.fund.asset
    rows = (
        Apportionment.objects.filter(cycle=cycle, rank__gte=from_rank)
        .order_by("rank")
        .values_list(
            "rank",
            "position__account__external_id",
            "position__position_id",
            "statement_id",
            "amount_units",
        )
        .iterator(chunk_size=10_000)
    )
    return (
        {"rank": r, "account": a, "position_id": p, "statement": s, "amount": asset.format(u)}
        for r, a, p, s, u in rows
    )


def apportionments_copied(cycle: SettlementCycle, from_rank: int, *, as_csv: bool):
    """The feed's rows written by PostgreSQL itself (COPY … TO STDOUT), byte for byte what
    `apportionment_rows` and fund/api/csv.rows_response write: the amount as format_units
    writes it (exact integer arithmetic), the account through to_json (its escapes are
    JSON's). The JSON lines go out as one-column CSV whose delimiter and quote are control
    characters, which to_json never leaves unescaped, so PostgreSQL adds no quoting or escape."""
    precision = cycle.fund.asset.precision
    if precision:
        unit = 10**precision
        amount = (
            f"(a.amount_units / {unit})::text || '.' || "
            f"lpad((a.amount_units %% {unit})::text, {precision}, '0')"
        )
    else:
        amount = "a.amount_units::text"
    rows = (
        "FROM fund_apportionment a JOIN fund_positionprofit p ON p.id = a.position_id "
        "JOIN statements_traderaccount t ON t.id = p.account_id "
        "WHERE a.cycle_id = %s AND a.rank >= %s ORDER BY a.rank"
    )
    if as_csv:
        sql = (
            f"COPY (SELECT a.rank, t.external_id AS account, p.position_id, "
            f"a.statement_id AS statement, {amount} AS amount {rows}) TO STDOUT "
            "WITH (FORMAT csv, HEADER)"
        )
    else:
        sql = (
            "COPY (SELECT '{\"rank\":' || a.rank || ',\"account\":' || to_json(t.external_id) "
            "|| ',\"position_id\":' || p.position_id || ',\"statement\":' || a.statement_id "
            f"|| ',\"amount\":\"' || {amount} || '\"}}' {rows}) TO STDOUT "
            "WITH (FORMAT csv, DELIMITER E'\\x01', QUOTE E'\\x02')"
        )
    with connection.cursor() as cursor:
        with cursor.cursor.copy(sql, [cycle.id, from_rank]) as copy:
            for block in copy:
                yield bytes(block)


class AppliedIn(serializers.Serializer):
    count = serializers.IntegerField(min_value=0, help_text="The apportionments applied.")
    total = serializers.CharField(max_length=60, help_text="Their total, as the feed writes it.")
    root = serializers.CharField(max_length=64, allow_blank=True, help_text="The cycle's root.")


@private
class EngineAppliedView(APIView):
    permission_classes = [IsEngine]

    @extend_schema(
        tags=["engine"],
        summary="The exchange applied a settled cycle's apportionments to its traders' balances",
        request=AppliedIn,
        responses={
            200: inline_serializer("AppliedOut", {"cycle": serializers.IntegerField()}),
            201: inline_serializer("AppliedCreatedOut", {"cycle": serializers.IntegerField()}),
            400: ERROR,
            404: ERROR,
            409: ERROR,
            **DENIED,
        },
    )
    def post(self, request, pk):
        data = request.data
        errors = {}
        if not isinstance(data, dict):
            raise ValidationError({"non_field_errors": ["Send an object: count, total, root."]})
        count, total, root = data.get("count"), data.get("total"), data.get("root")
        unknown = sorted(set(data) - {"count", "total", "root"})
        if unknown:
            errors[unknown[0]] = ["No such field."]
        if type(count) is not int or count < 0:
            errors["count"] = ["Give the number of apportionments applied, a whole number."]
        if type(root) is not str or not (root == "" or HEX64.fullmatch(root)):
            errors["root"] = ["Give the cycle's root: 64 lowercase hex digits."]
        if type(total) is not str:
            errors["total"] = ["Give the total as decimal text, as the feed writes it."]
        cycle = SettlementCycle.objects.select_related("fund__asset").filter(pk=pk).first()
        if cycle is None:
            raise NotFound(f"There is no cycle {pk}.")
        total_units = None
        if "total" not in errors:
            try:
                total_units = to_units(total, cycle.fund.asset.precision)
            except MoneyError as exc:
                errors["total"] = [f"The total {exc}."]
        if errors:
            raise ValidationError(errors)
        applied = cycle_apply(
            cycle=cycle, count=count, total_units=total_units, root=root, token=request.auth
        )
        return Response(
            {
                "cycle": cycle.id,
                **expected_figures(cycle),
                "applied_at": applied.application.applied_at.isoformat(),
            },
            status=201 if applied.created else 200,
        )
