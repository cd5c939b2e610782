"""Public reads, no login needed: funds, their balance history and records, settlement cycles.
Anonymous clients are throttled; a token that is sent must be valid."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from fund import selectors
from fund.api import serializers as s
from fund.api.csv import CSVListMixin, csv_response, wants_csv
from fund.api.pagination import cursor
from fund.api.renderers import CSVRenderer
from fund.api.schema import CSV_PARAMETER, ERROR, PUBLIC
from fund.filters import CycleFilter, HistoryForm, RecordFilter
from fund.lookups import cycle_or_404, fund_or_404, record_or_404
from fund.models import FundRecord, SettlementCycle


class PublicMixin:
    permission_classes = [AllowAny]


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
        return fund_or_404(asset_code=self.kwargs["asset"])

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
        fund = fund_or_404(asset_code=asset)
        form = HistoryForm(request.query_params)
        if not form.is_valid():
            raise ValidationError(form.errors)
        query = form.query()
        rows = [
            {**vars(b), "asset": fund.asset} for b in selectors.fund_history(fund=fund, **query)
        ]
        data = s.BucketOut(rows, many=True).data
        if wants_csv(request):
            header = ["start", "open", "close", "low", "high", "inflow", "outflow", "records"]
            return csv_response(
                f"{fund.asset.code}-balance-{query['bucket']}.csv",
                header,
                ([r[h] for h in header] for r in data),
            )
        return Response(data)


RecordPagination = cursor("-seq", size=100, max_size=1000)  # unique within a fund


class FundRecordsView(CSVListMixin, PublicMixin, generics.ListAPIView):
    serializer_class = s.RecordOut
    pagination_class = RecordPagination
    filterset_class = RecordFilter
    queryset = FundRecord.objects.none()  # for the schema; get_queryset builds the real one
    csv_header = ["seq", "created_at", "kind", "amount", "balance_after", "takeover", "cycle",
                  "corrects", "corrects_seq", "corrected_by", "reason"]  # fmt: skip

    def get_queryset(self):
        return selectors.fund_records(fund=fund_or_404(asset_code=self.kwargs["asset"]))

    def csv_filename(self) -> str:
        return f"{self.kwargs['asset'].upper()}-records.csv"

    def csv_row(self, r) -> list:
        return [
            r.seq, r.created_at.isoformat(), r.kind, r.fund.asset.format(r.amount_units),
            r.fund.asset.format(r.balance_after_units),
            r.takeover.external_id if r.takeover_id else "", r.cycle_id or "",
            r.corrects_id or "", r.corrects_seq or "",
            " ".join(str(c.seq) for c in r.corrections.all()), r.reason,
        ]  # fmt: skip

    @extend_schema(
        tags=["public"],
        summary="A fund's ledger records, newest first (cursor pagination)",
        parameters=[CSV_PARAMETER],
        responses={200: s.RecordOut(many=True), 400: ERROR, 404: ERROR, **PUBLIC},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class FundRecordView(PublicMixin, generics.RetrieveAPIView):
    serializer_class = s.RecordOut

    def get_object(self):
        return record_or_404(asset_code=self.kwargs["asset"], seq=self.kwargs["seq"])

    @extend_schema(
        tags=["public"],
        summary="One ledger record of a fund, by its seq",
        responses={200: s.RecordOut, 404: ERROR, **PUBLIC},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


CyclePagination = cursor("-id", size=50, max_size=500)  # a unique key: pages never skip or repeat


class CycleListView(CSVListMixin, PublicMixin, generics.ListAPIView):
    serializer_class = s.CycleOut
    pagination_class = CyclePagination
    filterset_class = CycleFilter
    queryset = SettlementCycle.objects.none()  # for the schema; get_queryset builds the real one
    csv_header = ["id", "asset", "starts_at", "ends_at", "status", "settled_at", "loss",
                  "balance_before", "fund_share", "users_share", "profitable_count",
                  "total_profit", "participant_count", "participants_profit", "threshold_profit",
                  "apportioned", "backstop", "uncovered", "applied_at"]  # fmt: skip

    def get_queryset(self):
        return selectors.cycles_public()

    def csv_filename(self) -> str:
        return "cycles.csv"

    def csv_row(self, c) -> list:
        def amount(units):
            return "" if units is None else c.fund.asset.format(units)

        application = getattr(c, "application", None)
        return [
            c.id, c.fund.asset.code, c.starts_at.isoformat(), c.ends_at.isoformat(), c.status,
            c.settled_at.isoformat() if c.settled_at else "", amount(c.loss_units),
            amount(c.balance_before_units), amount(c.fund_share_units),
            amount(c.users_share_units), "" if c.profitable_count is None else c.profitable_count,
            amount(c.total_profit_units),
            "" if c.participant_count is None else c.participant_count,
            amount(c.participants_profit_units), amount(c.threshold_profit_units),
            amount(c.apportioned_units), amount(c.backstop_units), amount(c.uncovered_units),
            application.applied_at.isoformat() if application else "",
        ]  # fmt: skip

    @extend_schema(
        tags=["public"],
        summary="Settlement cycles, newest first",
        parameters=[CSV_PARAMETER],
        responses={200: s.CycleOut(many=True), 400: ERROR, **PUBLIC},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class CycleDetailView(PublicMixin, generics.RetrieveAPIView):
    serializer_class = s.CycleOut

    def get_object(self):
        return cycle_or_404(cycle_id=self.kwargs["pk"])

    @extend_schema(
        tags=["public"],
        summary="A cycle's public report (no trader identity)",
        responses={200: s.CycleOut, 404: ERROR, **PUBLIC},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
