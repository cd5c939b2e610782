"""The trading engine's intake: closed liquidation takeovers and position profits, in batches,
exactly once by the engine's ids, all or nothing (fund/services/liquidations.py)."""

from django.core.exceptions import ValidationError
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from fund.api import serializers as s
from fund.api.permissions import IsEngine
from fund.api.schema import BUSY, DENIED, ERROR
from fund.services.liquidations import (
    PositionProfitInput,
    TakeoverInput,
    liquidations_record,
    position_profits_record,
)


def _items(data, required: tuple[str, ...], top: tuple[str, ...] = ("items",)) -> list[dict]:
    """The batch's items, each with exactly the `required` fields; the body itself may carry
    only the `top` keys (an unknown key is refused, not ignored: it is a client's mistake)."""
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise ValidationError({"items": 'Send {"items": [...]}: a list of objects.'})
    unknown = sorted(set(data) - set(top))
    if unknown:
        raise ValidationError(
            {name: f"Unknown field {name!r}: send only {', '.join(top)}." for name in unknown}
        )
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
    **BUSY,
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
        summary="Report position profits for a cycle (exactly once by position_id, until the "
        "cycle settles)",
    )
    def post(self, request):
        items = _items(
            request.data, ("position_id", "account", "contract", "profit"), ("cycle", "items")
        )
        cycle = request.data.get("cycle")
        if isinstance(cycle, bool) or not isinstance(cycle, int):
            raise ValidationError({"cycle": "Give the settlement cycle's id, a whole number."})
        inputs = [PositionProfitInput(**item) for item in items]
        intake = position_profits_record(cycle_id=cycle, items=inputs)
        return _intake_response(intake, [i.position_id for i in inputs])
