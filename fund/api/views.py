"""The REST API, /api/v1/. Views parse input, call one service or selector and answer."""

import csv
import hashlib
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import StreamingHttpResponse
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from fund import selectors
from fund.api import serializers as s
from fund.api.pagination import cursor
from fund.api.permissions import IsEngine, IsSettlementStaff, IsTrader
from fund.api.renderers import CSVRenderer
from fund.api.throttling import ProofThrottle
from fund.models import AdminAction, FundRecord, IdempotentRequest, SettlementCycle
from fund.services.audit import Audit, admin_action_record
from fund.services.ledger import fund_deposit, fund_withdraw
from fund.services.liquidations import (
    PositionProfitInput,
    TakeoverInput,
    liquidations_record,
    position_profits_record,
)
from fund.services.settlement import settlement_cycle_close_now, settlement_preview
from fund.tasks import settle_cycle
from statements.models import ApiToken, Statement
from statements.services import api_token_create, api_token_revoke

ERROR = OpenApiResponse(description="Field messages: {field: [message, …]} or {detail: …}.")
DENIED = {
    401: OpenApiResponse(description="Not logged in / no valid token."),
    403: OpenApiResponse(description="Logged in, but not allowed."),
}
CSV_ROWS_MAX = 100_000
# Public reads: no login needed, but a token that is sent must be valid; anonymous clients are throttled.
PUBLIC = {
    401: OpenApiResponse(description="A token was sent and is not valid."),
    429: OpenApiResponse(
        description="Too many requests from an anonymous client: retry after Retry-After seconds."
    ),
}


class PublicMixin:
    permission_classes = [AllowAny]


DIGITS = re.compile(r"[0-9]{1,18}")


def _when(request, name: str) -> datetime | None:
    """An ISO 8601 moment; a date alone means its start, or for `to` its end (the whole day counts)."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    date_only = "T" not in raw and " " not in raw
    try:
        value = parse_datetime(f"{raw}T00:00:00+00:00" if date_only else raw)
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)  # out of range here rather than in the database
            if date_only and name == "to":
                value += timedelta(days=1)
    except (ValueError, OverflowError):
        value = None
    if value is None or value.tzinfo is None:
        raise ValidationError(
            {name: f"Give an ISO 8601 date or date and time with a time zone, not {raw!r}."}
        )
    return value


def _choices(request, name: str, allowed: Iterable[str]) -> list[str]:
    values = [v for raw in request.query_params.getlist(name) for v in raw.split(",")]
    bad = [v for v in values if v not in allowed]
    if bad:
        raise ValidationError(
            {name: f"Unknown {name} {bad[0]!r}; choose from {', '.join(allowed)}."}
        )
    return values


def _csv(filename: str, header: list[str], rows: Iterable[list[Any]]) -> StreamingHttpResponse:
    class Echo:
        def write(self, value):
            return value

    writer = csv.writer(Echo(), lineterminator="\n")
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in _chain([header], rows)),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _chain(first, rest):
    yield from first
    yield from rest


def _wants_csv(request) -> bool:
    return getattr(request.accepted_renderer, "format", None) == "csv"


CSV_PARAMETER = OpenApiParameter(
    "format",
    str,
    enum=["json", "csv"],
    description="csv: the whole selection as CSV (at most 100,000 rows).",
)


# --- ingestion (the trading engine) -----------------------------------------------------------


def _items(data, required: tuple[str, ...]) -> list[dict]:
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise ValidationError({"items": 'Send {"items": [...]}: a list of objects.'})
    items, errors, fields = data["items"], {}, set(required)
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            errors[f"items[{index}]"] = f"Item {index}: must be an object."
            continue
        if item.keys() == fields and None not in item.values() and "" not in item.values():
            continue  # the usual case, checked at once
        for name in required:
            if item.get(name) in (None, ""):
                ident = item.get("external_id", item.get("position_id"))
                errors[f"items[{index}].{name}"] = (
                    f"Item {index} ({ident!r}): this field is required."
                )
        unknown = sorted(set(item) - fields)
        if unknown:
            errors[f"items[{index}].{unknown[0]}"] = f"Item {index}: unknown field {unknown[0]!r}."
    if errors:
        raise ValidationError(errors)
    return items


def _moment(value):
    """ISO 8601 text to a datetime; anything else is handed on for the service to name."""
    if isinstance(value, str):
        try:
            return parse_datetime(value) or value
        except ValueError:
            return value
    return value


def _intake_response(intake, ids) -> Response:
    created = intake.created_count
    body = {
        "received": len(ids),
        "created": created,
        "existing": len(ids) - created,
        "items": [
            {"index": i, "id": str(ident), "status": "created" if new else "existing"}
            for i, (ident, new) in enumerate(zip(ids, intake.created))
        ],
    }
    return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


INTAKE_RESPONSES = {
    200: OpenApiResponse(
        s.IntakeOut, description="Every item existed already with the same content: nothing new."
    ),
    201: OpenApiResponse(
        s.IntakeOut, description="Booked; each item says whether it was new or existed."
    ),
    400: ERROR,
    **DENIED,
    409: OpenApiResponse(
        s.ConflictOut,
        description="An id was booked before with other content, or the cycle is settled.",
    ),
    413: OpenApiResponse(description="More than 10,000 items, or a body too large."),
}


class LiquidationIntakeView(APIView):
    permission_classes = [IsEngine]
    throttle_classes = []

    @extend_schema(
        tags=["ingestion"],
        request=s.TakeoverBatchIn,
        responses=INTAKE_RESPONSES,
        summary="Report closed liquidation takeovers (exactly once by external_id, all or nothing)",
    )
    def post(self, request):
        fields = (
            "external_id",
            "contract",
            "side",
            "quantity",
            "takeover_price",
            "close_price",
            "remaining_margin",
            "taken_over_at",
            "closed_at",
        )
        items = _items(request.data, fields)
        inputs = [
            TakeoverInput(
                i["external_id"],
                i["contract"],
                i["side"],
                i["quantity"],
                i["takeover_price"],
                i["close_price"],
                i["remaining_margin"],
                _moment(i["taken_over_at"]),
                _moment(i["closed_at"]),
            )
            for i in items
        ]
        intake = liquidations_record(items=inputs)
        return _intake_response(intake, [i.external_id for i in inputs])


class PositionProfitIntakeView(APIView):
    permission_classes = [IsEngine]
    throttle_classes = []

    @extend_schema(
        tags=["ingestion"],
        request=s.PositionProfitBatchIn,
        responses=INTAKE_RESPONSES,
        summary="Report position profits for a cycle (exactly once by position_id, until the cycle settles)",
    )
    def post(self, request):
        items = _items(request.data, ("position_id", "account", "contract", "profit"))
        cycle = request.data.get("cycle")
        if isinstance(cycle, bool) or not isinstance(cycle, int):
            raise ValidationError({"cycle": "Give the settlement cycle's id, a whole number."})
        inputs = [PositionProfitInput(**item) for item in items]
        intake = position_profits_record(cycle_id=cycle, items=inputs)
        return _intake_response(intake, [i.position_id for i in inputs])


# --- public --------------------------------------------------------------------------------


class FundListView(PublicMixin, generics.ListAPIView):
    serializer_class = s.FundOut
    pagination_class = None

    def get_queryset(self):
        return selectors.funds_public()

    @extend_schema(
        tags=["public"],
        summary="Every insurance fund: balance, contracts, inflows and outflows by kind",
        responses={200: s.FundOut(many=True), **PUBLIC},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class FundDetailView(PublicMixin, generics.RetrieveAPIView):
    serializer_class = s.FundOut

    def get_object(self):
        return selectors.fund_get(asset_code=self.kwargs["asset"])

    @extend_schema(
        tags=["public"],
        summary="One fund, by margin asset code",
        responses={200: s.FundOut, 404: ERROR, **PUBLIC},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class FundHistoryView(PublicMixin, APIView):
    renderer_classes = [JSONRenderer, CSVRenderer, BrowsableAPIRenderer]

    @extend_schema(
        tags=["public"],
        summary="A fund's balance history in hour, day or week buckets",
        parameters=[
            OpenApiParameter(
                "bucket", str, enum=list(selectors.BUCKETS), description="Default: day."
            ),
            OpenApiParameter("from", OpenApiTypes.DATETIME, description="Inclusive (ISO 8601)."),
            OpenApiParameter("to", OpenApiTypes.DATETIME, description="Exclusive (ISO 8601)."),
            CSV_PARAMETER,
        ],
        responses={
            (200, "application/json"): s.BucketOut(many=True),
            (200, "text/csv"): OpenApiTypes.STR,
            400: ERROR,
            404: ERROR,
            **PUBLIC,
        },
    )
    def get(self, request, asset):
        fund = selectors.fund_get(asset_code=asset)
        bucket = request.query_params.get("bucket", "day")
        if bucket not in selectors.BUCKETS:
            raise ValidationError({"bucket": f"Choose one of {', '.join(selectors.BUCKETS)}."})
        start, end = _when(request, "from"), _when(request, "to")
        rows = [
            {**vars(b), "asset": fund.asset}
            for b in selectors.fund_history(fund=fund, bucket=bucket, start=start, end=end)
        ]
        data = s.BucketOut(rows, many=True).data
        if _wants_csv(request):
            header = ["start", "open", "close", "low", "high", "inflow", "outflow", "records"]
            return _csv(
                f"{fund.asset.code}-balance-{bucket}.csv",
                header,
                ([r[h] for h in header] for r in data),
            )
        return Response(data)


RecordPagination = cursor("-seq", size=100, max_size=1000)  # unique within a fund


class FundRecordsView(PublicMixin, generics.ListAPIView):
    serializer_class = s.RecordOut
    pagination_class = RecordPagination
    renderer_classes = [JSONRenderer, CSVRenderer, BrowsableAPIRenderer]
    queryset = FundRecord.objects.none()  # for the schema; get_queryset builds the real one

    def get_queryset(self):
        fund = selectors.fund_get(asset_code=self.kwargs["asset"])
        return selectors.fund_records(
            fund=fund,
            kinds=_choices(self.request, "kind", FundRecord.Kind.values),
            start=_when(self.request, "from"),
            end=_when(self.request, "to"),
        ).select_related("takeover")

    @extend_schema(
        tags=["public"],
        summary="A fund's ledger records, newest first (cursor pagination)",
        parameters=[
            OpenApiParameter(
                "kind",
                str,
                many=True,
                enum=FundRecord.Kind.values,
                description="One or more kinds.",
            ),
            OpenApiParameter("from", OpenApiTypes.DATETIME),
            OpenApiParameter("to", OpenApiTypes.DATETIME),
            CSV_PARAMETER,
        ],
        responses={200: s.RecordOut(many=True), 400: ERROR, 404: ERROR, **PUBLIC},
    )
    def get(self, request, *args, **kwargs):
        if _wants_csv(request):
            self.paginator.get_page_size(request)  # the same parameters are checked for CSV
            records = self.get_queryset()[:CSV_ROWS_MAX]
            header = [
                "seq",
                "created_at",
                "kind",
                "amount",
                "balance_after",
                "takeover",
                "cycle",
                "corrects",
                "reason",
            ]
            return _csv(
                f"{self.kwargs['asset'].upper()}-records.csv",
                header,
                (
                    [
                        r.seq,
                        r.created_at.isoformat(),
                        r.kind,
                        r.fund.asset.format(r.amount_units),
                        r.fund.asset.format(r.balance_after_units),
                        r.takeover.external_id if r.takeover_id else "",
                        r.cycle_id or "",
                        r.corrects_id or "",
                        r.reason,
                    ]
                    for r in records.iterator(chunk_size=2000)
                ),
            )
        return super().get(request, *args, **kwargs)


CyclePagination = cursor("-id", size=50, max_size=500)  # a unique key: pages never skip or repeat


class CycleListView(PublicMixin, generics.ListAPIView):
    serializer_class = s.CycleOut
    pagination_class = CyclePagination

    def get_queryset(self):
        return selectors.cycles_public(
            asset_code=self.request.query_params.get("asset"),
            statuses=_choices(self.request, "status", SettlementCycle.Status.values),
        )

    @extend_schema(
        tags=["public"],
        summary="Settlement cycles, newest first",
        parameters=[
            OpenApiParameter("asset", str),
            OpenApiParameter("status", str, many=True, enum=SettlementCycle.Status.values),
        ],
        responses={200: s.CycleOut(many=True), 400: ERROR, **PUBLIC},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class CycleDetailView(PublicMixin, generics.RetrieveAPIView):
    serializer_class = s.CycleOut

    def get_object(self):
        return selectors.cycle_get(cycle_id=self.kwargs["pk"])

    @extend_schema(
        tags=["public"],
        summary="A cycle's public report (no trader identity)",
        responses={200: s.CycleOut, 404: ERROR, **PUBLIC},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


# --- traders --------------------------------------------------------------------------------

StatementPagination = cursor(
    "-id", size=50, max_size=500
)  # a unique key: pages never skip or repeat


class MyStatementsView(generics.ListAPIView):
    permission_classes = [IsTrader]
    serializer_class = s.StatementOut
    pagination_class = StatementPagination
    renderer_classes = [JSONRenderer, CSVRenderer, BrowsableAPIRenderer]
    queryset = Statement.objects.none()  # for the schema; get_queryset builds the real one

    def get_queryset(self):
        cycle = self.request.query_params.get("cycle")
        if cycle is not None and not DIGITS.fullmatch(cycle):
            raise ValidationError({"cycle": "Give a cycle id, a whole number."})
        return selectors.statements_of(
            account=self.request.user.trader_account,
            asset_code=self.request.query_params.get("asset"),
            types=_choices(self.request, "type", Statement.Type.values),
            cycle_id=int(cycle) if cycle else None,
            start=_when(self.request, "from"),
            end=_when(self.request, "to"),
        )

    @extend_schema(
        tags=["traders"],
        summary="My statements, newest first",
        parameters=[
            OpenApiParameter("asset", str),
            OpenApiParameter("type", str, many=True, enum=Statement.Type.values),
            OpenApiParameter("cycle", int),
            OpenApiParameter("from", OpenApiTypes.DATETIME),
            OpenApiParameter("to", OpenApiTypes.DATETIME),
            CSV_PARAMETER,
        ],
        responses={200: s.StatementOut(many=True), 400: ERROR, **DENIED},
    )
    def get(self, request, *args, **kwargs):
        if _wants_csv(request):
            self.paginator.get_page_size(request)  # the same parameters are checked for CSV
            rows = self.get_queryset()[:CSV_ROWS_MAX]
            header = [
                "id",
                "created_at",
                "type",
                "asset",
                "amount",
                "cycle",
                "position_id",
                "description",
            ]
            return _csv(
                "statements.csv",
                header,
                (
                    [
                        r.id,
                        r.created_at.isoformat(),
                        r.type,
                        r.asset.code,
                        r.asset.format(r.amount_units),
                        getattr(getattr(r, "apportionment", None), "cycle_id", ""),
                        getattr(
                            getattr(getattr(r, "apportionment", None), "position", None),
                            "position_id",
                            "",
                        ),
                        r.description,
                    ]
                    for r in rows.iterator(chunk_size=2000)
                ),
            )
        return super().get(request, *args, **kwargs)


class MyStatementView(APIView):
    permission_classes = [IsTrader]

    @extend_schema(
        tags=["traders"],
        summary="One of my statements, with how an apportionment was computed",
        responses={200: s.StatementDetailOut, 404: ERROR, **DENIED},
    )
    def get(self, request, pk):
        statement = selectors.statement_of(account=request.user.trader_account, statement_id=pk)
        apportionment = getattr(statement, "apportionment", None)
        computation = None
        if apportionment is not None:
            computation = s.ComputationOut(
                selectors.apportionment_computation(apportionment=apportionment)
            ).data
        return Response(s.StatementDetailOut(statement, context={"computation": computation}).data)


class MyStatementProofView(APIView):
    permission_classes = [IsTrader]
    renderer_classes = [JSONRenderer]  # a download, whatever the browser's Accept header says
    throttle_classes = [ProofThrottle]

    @extend_schema(
        tags=["traders"],
        summary="The inclusion proof of my apportionment in its cycle's Merkle root",
        responses={
            200: s.ProofOut,
            404: ERROR,
            **DENIED,
            429: OpenApiResponse(
                description="More than 30 proofs a minute: retry after Retry-After seconds."
            ),
        },
    )
    def get(self, request, pk):
        statement = selectors.statement_of(account=request.user.trader_account, statement_id=pk)
        apportionment = getattr(statement, "apportionment", None)
        if apportionment is None:
            raise NotFound("This statement is not an apportionment: there is nothing to prove.")
        proof = selectors.apportionment_proof(apportionment=apportionment)
        proof["cycle_url"] = request.build_absolute_uri(reverse("api:cycle", args=[proof["cycle"]]))
        response = Response(s.ProofOut(proof).data)
        response["Content-Disposition"] = (
            f'attachment; filename="apportionment-proof-{proof["asset"]}-cycle-{proof["cycle"]}-rank-{proof["rank"]}.json"'
        )
        return response


class MyTokensView(APIView):
    permission_classes = [IsTrader]

    @extend_schema(
        tags=["traders"], summary="My API tokens", responses={200: s.TokenOut(many=True), **DENIED}
    )
    def get(self, request):
        tokens = ApiToken.objects.filter(user=request.user, kind=ApiToken.Kind.PERSONAL)
        return Response(s.TokenOut(tokens, many=True).data)

    @extend_schema(
        tags=["traders"],
        summary="Make an API token (shown once)",
        request=s.TokenIn,
        responses={201: s.TokenCreatedOut, 400: ERROR, **DENIED},
    )
    def post(self, request):
        name = request.data.get("name") if isinstance(request.data, dict) else None
        if not isinstance(name, str):
            raise ValidationError({"name": "Give the token a name (text)."})
        row, token = api_token_create(user=request.user, kind=ApiToken.Kind.PERSONAL, name=name)
        return Response({**s.TokenOut(row).data, "token": token}, status=status.HTTP_201_CREATED)


class MyTokenView(APIView):
    permission_classes = [IsTrader]

    @extend_schema(
        tags=["traders"],
        summary="Revoke one of my API tokens",
        responses={204: None, 404: ERROR, **DENIED},
    )
    def delete(self, request, prefix):
        try:
            api_token_revoke(prefix=prefix, user=request.user)
        except ValidationError:
            return Response({"detail": "No such token."}, status=status.HTTP_404_NOT_FOUND)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- admins ---------------------------------------------------------------------------------


def idempotent(view_method):
    """Money-moving POSTs with an Idempotency-Key: the key is claimed before the work (a unique
    row per user and key), so two racing requests with one key do the work once; a repeat with
    the same body gets the first answer again, with another body a 409."""

    def wrapper(self, request, *args, **kwargs):
        key = request.headers.get("Idempotency-Key", "").strip()
        if not key:
            return view_method(self, request, *args, **kwargs)
        if len(key) > 128:
            raise ValidationError({"Idempotency-Key": "At most 128 characters."})
        body = json.dumps(request.data, sort_keys=True, default=str)
        fingerprint = hashlib.sha256(
            f"{request.method} {request.path}\n{body}".encode()
        ).hexdigest()
        try:
            with transaction.atomic():
                claim = IdempotentRequest.objects.create(
                    user=request.user, key=key, fingerprint=fingerprint, status_code=0, response={}
                )
        except IntegrityError:
            previous = IdempotentRequest.objects.get(user=request.user, key=key)
            if previous.fingerprint != fingerprint:
                return Response(
                    {
                        "detail": "This Idempotency-Key was used for another request.",
                        "code": "idempotency_key_reused",
                    },
                    status=status.HTTP_409_CONFLICT,
                )
            if previous.status_code == 0:
                return Response(
                    {
                        "detail": "A request with this Idempotency-Key is still running.",
                        "code": "idempotency_key_in_use",
                    },
                    status=status.HTTP_409_CONFLICT,
                )
            return Response(
                previous.response,
                status=previous.status_code,
                headers={"Idempotent-Replayed": "true"},
            )
        try:
            response = view_method(self, request, *args, **kwargs)
        except BaseException:
            claim.delete()  # nothing was done: the same request may be sent again
            raise
        if response.status_code < 400:
            IdempotentRequest.objects.filter(pk=claim.pk).update(
                status_code=response.status_code, response=response.data
            )
        else:
            claim.delete()
        return response

    wrapper.__name__ = view_method.__name__
    wrapper.__doc__ = view_method.__doc__
    return wrapper


IDEMPOTENCY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    description="Repeat a request safely: the same key and body get the same answer.",
)


class CyclePreviewView(APIView):
    permission_classes = [IsSettlementStaff]

    @extend_schema(
        tags=["admin"],
        summary="Preview a cycle's settlement now (nothing written but the audit row)",
        responses={200: s.PreviewOut, 404: ERROR, **DENIED},
    )
    def get(self, request, pk):
        cycle = selectors.cycle_get(cycle_id=pk)
        result = settlement_preview(cycle_id=cycle.id)
        admin_action_record(
            audit=Audit.from_request(request),
            action=AdminAction.Action.PREVIEW,
            fund=cycle.fund,
            cycle=cycle,
            details={"loss": cycle.fund.asset.format(result.loss)},
        )
        return Response(selectors.settlement_preview_data(cycle=cycle, result=result))


class CycleSettleView(APIView):
    permission_classes = [IsSettlementStaff]

    @extend_schema(
        tags=["admin"],
        summary="Settle a cycle now (an open one is closed early); runs on a worker",
        request=None,
        parameters=[IDEMPOTENCY],
        responses={202: s.SettleOut, 400: ERROR, 404: ERROR, 409: s.ConflictOut, **DENIED},
    )
    @idempotent
    def post(self, request, pk):
        selectors.cycle_get(cycle_id=pk)
        cycle = settlement_cycle_close_now(cycle_id=pk, audit=Audit.from_request(request))
        task = settle_cycle.delay(cycle.id, ignore_grace=True)
        cycle.refresh_from_db()
        return Response(
            {"cycle": cycle.id, "status": cycle.status, "task_id": getattr(task, "id", None)},
            status=status.HTTP_202_ACCEPTED,
        )


class FundMoveView(APIView):
    permission_classes = [IsSettlementStaff]
    service = None

    def post(self, request, asset):
        selectors.fund_get(asset_code=asset)
        data = request.data if isinstance(request.data, dict) else {}
        reason = data.get("reason", "")
        if not isinstance(reason, str) or len(reason) > 2000:
            raise ValidationError(
                {"reason": "Give the reason as text of at most 2,000 characters."}
            )
        record = type(self).service(
            asset_code=asset.upper(),
            amount=data.get("amount"),
            reason=reason,
            audit=Audit.from_request(request),
        )
        record = FundRecord.objects.select_related("fund__asset", "takeover").get(pk=record.pk)
        return Response(s.RecordOut(record).data, status=status.HTTP_201_CREATED)


class FundDepositView(FundMoveView):
    service = staticmethod(fund_deposit)

    @extend_schema(
        tags=["admin"],
        summary="Deposit to a fund, with a published reason",
        request=s.MoneyMoveIn,
        parameters=[IDEMPOTENCY],
        responses={201: s.RecordOut, 400: ERROR, 404: ERROR, 409: s.ConflictOut, **DENIED},
    )
    @idempotent
    def post(self, request, asset):
        return super().post(request, asset)


class FundWithdrawView(FundMoveView):
    service = staticmethod(fund_withdraw)

    @extend_schema(
        tags=["admin"],
        summary="Withdraw from a fund (never below zero), with a published reason",
        request=s.MoneyMoveIn,
        parameters=[IDEMPOTENCY],
        responses={201: s.RecordOut, 400: ERROR, 404: ERROR, 409: s.ConflictOut, **DENIED},
    )
    @idempotent
    def post(self, request, asset):
        return super().post(request, asset)


ActionPagination = cursor("-id")


class AdminActionsView(generics.ListAPIView):
    permission_classes = [IsSettlementStaff]
    serializer_class = s.AdminActionOut
    pagination_class = ActionPagination

    def get_queryset(self):
        return selectors.admin_actions()

    @extend_schema(
        tags=["admin"],
        summary="The audit trail of admin actions",
        responses={200: s.AdminActionOut(many=True), 400: ERROR, **DENIED},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
