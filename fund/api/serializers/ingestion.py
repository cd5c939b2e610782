"""What the trading engine sends and gets back (fund/api/ingestion.py); inputs are checked by
the services, which name each bad field: these document them."""

from rest_framework import serializers

from fund.api.serializers.fields import decimal_text
from fund.models import LiquidationTakeover
from fund.services.liquidations import IDENTIFIER, IDENTIFIER_FORM, MAX_BATCH

IDENTIFIER_PATTERN = f"^{IDENTIFIER.pattern}$"
SYMBOL_PATTERN = r"^[!-~]{1,32}$"


class TakeoverIn(serializers.Serializer):
    external_id = serializers.RegexField(
        IDENTIFIER_PATTERN,
        help_text=f"The engine's id of the takeover, the idempotency key: {IDENTIFIER_FORM}.",
    )
    contract = serializers.RegexField(SYMBOL_PATTERN, help_text="Contract symbol, e.g. BTCUSDT.")
    side = serializers.ChoiceField(
        choices=LiquidationTakeover.Side.choices, help_text="The taken-over position's side."
    )
    quantity = decimal_text("Contracts, > 0, at most 6 decimals and 15 digits.")
    takeover_price = decimal_text("> 0, at most 8 decimals and 15 digits.")
    close_price = decimal_text("> 0, at most 8 decimals and 15 digits.")
    remaining_margin = decimal_text(
        "Margin taken over with the position, in the margin asset, ≥ 0, "
        "at most the asset's decimals."
    )
    taken_over_at = serializers.DateTimeField(help_text="ISO 8601 with a time zone.")
    closed_at = serializers.DateTimeField(
        help_text="ISO 8601 with a time zone; not before taken_over_at, not in the future."
    )


def batch(child: serializers.Serializer, help_text: str) -> serializers.ListField:
    """A batch's items: a list field rather than many=True, so that the schema carries the
    bounds the intake enforces (minItems 1, maxItems MAX_BATCH)."""
    return serializers.ListField(
        child=child, min_length=1, max_length=MAX_BATCH, help_text=help_text
    )


class TakeoverBatchIn(serializers.Serializer):
    items = batch(TakeoverIn(), f"1 to {MAX_BATCH:,} closed takeovers; all or nothing.")


class PositionProfitIn(serializers.Serializer):
    position_id = serializers.IntegerField(
        min_value=1,
        max_value=2**63 - 1,
        help_text="The engine's position id (ties rank lower ids first).",
    )
    account = serializers.RegexField(
        IDENTIFIER_PATTERN, help_text=f"The engine's account id: {IDENTIFIER_FORM}."
    )
    contract = serializers.RegexField(
        SYMBOL_PATTERN, help_text="A contract margined in the cycle's asset."
    )
    profit = decimal_text(
        "The position's profit for the cycle, at most the asset's decimals; ≤ 0 takes no part.",
        signed=True,
    )


class PositionProfitBatchIn(serializers.Serializer):
    cycle = serializers.IntegerField(
        min_value=1,
        max_value=2**63 - 1,
        help_text="The settlement cycle's id (see /api/v1/cycles).",
    )
    items = batch(PositionProfitIn(), f"1 to {MAX_BATCH:,} positions; all or nothing.")


class IndexPriceIn(serializers.Serializer):
    asset = serializers.RegexField(SYMBOL_PATTERN, help_text="An asset's code, as /api/v1/funds.")
    price = decimal_text("US dollars for one unit of the asset: above 0, at most 12 decimals.")
    at = serializers.DateTimeField(
        help_text="The moment the price is for: ISO 8601 with a time zone, not in the future."
    )


class IndexPriceBatchIn(serializers.Serializer):
    items = batch(IndexPriceIn(), f"1 to {MAX_BATCH:,} prices; all or nothing.")


class IntakeItemOut(serializers.Serializer):
    index = serializers.IntegerField()
    id = serializers.CharField()
    status = serializers.ChoiceField(choices=["created", "existing"])


class IntakeOut(serializers.Serializer):
    received = serializers.IntegerField()
    created = serializers.IntegerField()
    existing = serializers.IntegerField()
    items = IntakeItemOut(many=True)


class ConflictOut(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField()
    index = serializers.IntegerField(required=False)
    id = serializers.CharField(required=False)
    field = serializers.CharField(required=False)
