"""The trading engine's intake: closed liquidation takeovers and position profits, in batches,
exactly once by the engine's ids, all or nothing (fund/services/liquidations.py)."""

from django.core.exceptions import ValidationError
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from fund.api import serializers as s
from fund.api.intake import (
    Batch,
    IndexPriceBatchParser,
    PositionProfitBatchParser,
    TakeoverBatchParser,
    batch_items,
)
from fund.api.permissions import IsEngine
from fund.api.schema import BUSY, DENIED, ERROR
from fund.services.liquidations import (
    PositionProfitInput,
    TakeoverInput,
    liquidations_record,
    position_profits_record,
)
from fund.services.prices import IndexPriceInput, index_prices_record


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
    **BUSY,
    **DENIED,
    409: OpenApiResponse(
        s.ConflictOut,
        description="An id was booked before with other content, or the cycle is settled.",
    ),
    413: OpenApiResponse(description="A body larger than the server reads (8 MiB by default)."),
}


class LiquidationIntakeView(APIView):
    parser_classes = [TakeoverBatchParser]
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
        data = request.data
        if isinstance(data, Batch):  # typed by the decoder (fund/api/intake.py)
            intake = liquidations_record(items=data.items)
            return _intake_response(intake, [i.external_id for i in data.items])
        items = batch_items(data, fields)
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
    parser_classes = [PositionProfitBatchParser]
    permission_classes = [IsEngine]
    throttle_classes = []

    @extend_schema(
        tags=["ingestion"],
        request=s.PositionProfitBatchIn,
        responses=INTAKE_RESPONSES,
        summary="Report position profits for a cycle (exactly once by position_id, until the "
        "cycle settles)",
    )
    def post(self, request):
        data = request.data
        if isinstance(data, Batch):  # typed by the decoder (fund/api/intake.py)
            intake = position_profits_record(cycle_id=data.cycle, items=data.items)
            return _intake_response(intake, [i.position_id for i in data.items])
        items = batch_items(
            data, ("position_id", "account", "contract", "profit"), ("cycle", "items")
        )
        cycle = data.get("cycle")
        if isinstance(cycle, bool) or not isinstance(cycle, int):
            raise ValidationError({"cycle": "Give the settlement cycle's id, a whole number."})
        inputs = [PositionProfitInput(**item) for item in items]
        intake = position_profits_record(cycle_id=cycle, items=inputs)
        return _intake_response(intake, [i.position_id for i in inputs])


class IndexPriceIntakeView(APIView):
    parser_classes = [IndexPriceBatchParser]
    permission_classes = [IsEngine]
    throttle_classes = []

    @extend_schema(
        tags=["ingestion"],
        request=s.IndexPriceBatchIn,
        responses=INTAKE_RESPONSES,
        summary="Report index prices in USD (exactly once by asset and moment, all or nothing)",
    )
    def post(self, request):
        items = batch_items(request.data, ("asset", "price", "at"))
        if isinstance(request.data, Batch):  # typed by the decoder (fund/api/intake.py)
            inputs = [IndexPriceInput(i.asset, i.price, i.at) for i in items]
        else:
            inputs = [IndexPriceInput(i["asset"], i["price"], _moment(i["at"])) for i in items]
        intake = index_prices_record(items=inputs)
        return _intake_response(intake, [f"{i.asset}@{_text(i.at)}" for i in inputs])


def _text(at) -> str:
    return at.isoformat() if hasattr(at, "isoformat") else str(at)
