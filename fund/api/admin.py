"""Settlement staff (staff with the settlement permission): previews, "settle now", deposits,
withdrawals, corrections and the audit trail. Every action is audited; money moves take an
Idempotency-Key."""

import json

from django.core.exceptions import ValidationError
from django.utils.decorators import method_decorator
from django.views.decorators.cache import cache_control
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from fund import selectors
from fund.api import serializers as s
from fund.api.csv import CSVListMixin
from fund.api.idempotency import IDEMPOTENCY, idempotent
from fund.api.pagination import cursor
from fund.api.permissions import IsSettlementStaff
from fund.api.schema import BUSY, CSV_PARAMETER, DENIED, ERROR
from fund.filters import AdminActionFilter
from fund.lookups import cycle_or_404, fund_or_404, record_or_404
from fund.presentation import settlement_preview_data
from fund.services.audit import Audit
from fund.services.ledger import fund_deposit, fund_record_correct, fund_withdraw
from fund.services.settlement import settlement_cycle_settle_now, settlement_preview_record

# Staff's answers (previews, the audit trail, money moves) are theirs: Cache-Control: private,
# no-store on every one, errors included.
private = method_decorator(cache_control(private=True, no_store=True), name="dispatch")
MONEY_RESPONSES = {
    201: s.RecordOut,
    400: ERROR,
    404: ERROR,
    409: s.ConflictOut,
    **DENIED,
    **BUSY,
}


@private
class CyclePreviewView(APIView):
    permission_classes = [IsSettlementStaff]

    @extend_schema(
        tags=["admin"],
        summary="Preview a cycle's settlement now (nothing posted; the preview is audited)",
        request=None,
        responses={200: s.PreviewOut, 404: ERROR, 409: s.ConflictOut, **DENIED, **BUSY},
    )
    def post(self, request, pk):
        cycle = cycle_or_404(cycle_id=pk)
        result = settlement_preview_record(cycle_id=cycle.id, audit=Audit.from_request(request))
        return Response(settlement_preview_data(cycle=cycle, result=result))


@private
class CycleSettleView(APIView):
    permission_classes = [IsSettlementStaff]

    @extend_schema(
        tags=["admin"],
        summary="Settle a cycle now (an open one is closed early); runs on a worker",
        request=None,
        parameters=[IDEMPOTENCY],
        responses={202: s.SettleOut, 400: ERROR, 404: ERROR, 409: s.ConflictOut, **DENIED, **BUSY},
    )
    @idempotent
    def post(self, request, pk):
        cycle_or_404(cycle_id=pk)
        sent = settlement_cycle_settle_now(cycle_id=pk, audit=Audit.from_request(request))
        return Response(
            {"cycle": sent.cycle.id, "status": sent.cycle.status, "task_id": sent.task_id},
            status=status.HTTP_202_ACCEPTED,
        )


def _reason(data) -> str:
    reason = data.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 2000:
        raise ValidationError({"reason": "Give the reason as text of at most 2,000 characters."})
    return reason


def _record_answer(record) -> Response:
    record = selectors.fund_records(fund=record.fund).get(pk=record.pk)
    return Response(s.RecordOut(record).data, status=status.HTTP_201_CREATED)


@private
class FundMoveView(APIView):
    """A deposit or a withdrawal (`service`), documented on each subclass."""

    permission_classes = [IsSettlementStaff]
    service = None

    @idempotent
    def post(self, request, asset):
        fund = fund_or_404(asset_code=asset)
        data = request.data if isinstance(request.data, dict) else {}
        record = type(self).service(
            asset_code=fund.asset.code,
            amount=data.get("amount"),
            reason=_reason(data),
            audit=Audit.from_request(request),
        )
        return _record_answer(record)


def _money_schema(summary: str, request):
    return extend_schema(
        tags=["admin"],
        summary=summary,
        request=request,
        parameters=[IDEMPOTENCY],
        responses=MONEY_RESPONSES,
    )


@_money_schema("Deposit to a fund, with a published reason", s.MoneyMoveIn)
class FundDepositView(FundMoveView):
    service = staticmethod(fund_deposit)


@_money_schema("Withdraw from a fund (never below zero), with a published reason", s.MoneyMoveIn)
class FundWithdrawView(FundMoveView):
    service = staticmethod(fund_withdraw)


@private
class RecordCorrectionView(APIView):
    permission_classes = [IsSettlementStaff]

    @_money_schema(
        "Correct a record: a new, published record that references it (the original stays "
        "as it is)",
        s.CorrectionIn,
    )
    @idempotent
    def post(self, request, asset, seq):
        record = record_or_404(asset_code=asset, seq=seq)
        data = request.data if isinstance(request.data, dict) else {}
        correction = fund_record_correct(
            record_id=record.id,
            amount=data.get("amount"),
            reason=_reason(data),
            audit=Audit.from_request(request),
        )
        return _record_answer(correction)


ActionPagination = cursor("-id")


@private
class AdminActionsView(CSVListMixin, generics.ListAPIView):
    permission_classes = [IsSettlementStaff]
    serializer_class = s.AdminActionOut
    pagination_class = ActionPagination
    filterset_class = AdminActionFilter
    csv_header = ["id", "created_at", "actor", "action", "asset", "cycle", "record", "details",
                  "ip_address", "user_agent"]  # fmt: skip

    def get_queryset(self):
        return selectors.admin_actions()

    def csv_filename(self) -> str:
        return "audit-trail.csv"

    def csv_row(self, a) -> list:
        return [
            a.id, a.created_at.isoformat(), a.actor.username, a.action,
            a.fund.asset.code if a.fund_id else "", a.cycle_id or "", a.record_id or "",
            json.dumps(a.details, ensure_ascii=False, sort_keys=True), a.ip_address or "",
            a.user_agent,
        ]  # fmt: skip

    @extend_schema(
        tags=["admin"],
        summary="The audit trail of admin actions",
        parameters=[CSV_PARAMETER],
        responses={200: s.AdminActionOut(many=True), 400: ERROR, **DENIED},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
