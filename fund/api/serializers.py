"""What the API sends and what it documents. Amounts are decimal strings with exactly the
asset's places; inputs are checked by the services, which name each bad field."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from fund.models import AdminAction, FundRecord, LiquidationTakeover, SettlementCycle
from fund.services.liquidations import MAX_BATCH
from statements.models import ApiToken, Statement
from statements.money import format_units


@extend_schema_field(OpenApiTypes.STR)
class Amount(serializers.Field):
    """Integer units (the attribute `units`) shown as decimal text in the precision of the asset
    at `asset` (a dotted path from the object); None stays None."""

    def __init__(self, units: str, asset: str = "fund.asset", **kwargs):
        self.units, self.asset = units, asset
        kwargs.setdefault("read_only", True)
        super().__init__(source="*", **kwargs)

    def to_representation(self, obj):
        value = obj[self.units] if isinstance(obj, dict) else getattr(obj, self.units)
        if value is None:
            return None
        asset = obj
        for part in self.asset.split("."):
            asset = asset[part] if isinstance(asset, dict) else getattr(asset, part)
        return format_units(value, asset.precision)


# --- ingestion -------------------------------------------------------------------------------

DECIMAL_TEXT = r"^-?[0-9]+(\.[0-9]+)?$"


def decimal_text(help_text: str, *, signed: bool = False) -> serializers.RegexField:
    """A decimal amount as text (JSON numbers are read exactly too)."""
    return serializers.RegexField(
        DECIMAL_TEXT if signed else DECIMAL_TEXT.replace("-?", ""), help_text=help_text
    )


class TakeoverIn(serializers.Serializer):
    external_id = serializers.CharField(
        max_length=64, help_text="The engine's id of the takeover: the idempotency key."
    )
    contract = serializers.CharField(help_text="Contract symbol, e.g. BTCUSDT.")
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


class TakeoverBatchIn(serializers.Serializer):
    items = TakeoverIn(
        many=True,
        max_length=MAX_BATCH,
        help_text=f"1 to {MAX_BATCH:,} closed takeovers; all or nothing.",
    )


class PositionProfitIn(serializers.Serializer):
    position_id = serializers.IntegerField(
        min_value=1, help_text="The engine's position id (ties rank lower ids first)."
    )
    account = serializers.CharField(max_length=64, help_text="The engine's account id.")
    contract = serializers.CharField(help_text="A contract margined in the cycle's asset.")
    profit = decimal_text(
        "The position's profit for the cycle, at most the asset's decimals; ≤ 0 takes no part.",
        signed=True,
    )


class PositionProfitBatchIn(serializers.Serializer):
    cycle = serializers.IntegerField(help_text="The settlement cycle's id (see /api/v1/cycles).")
    items = PositionProfitIn(
        many=True, max_length=MAX_BATCH, help_text=f"1 to {MAX_BATCH:,} positions; all or nothing."
    )


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


# --- public ----------------------------------------------------------------------------------


class ContractOut(serializers.Serializer):
    symbol = serializers.CharField()
    kind = serializers.CharField()
    multiplier = serializers.DecimalField(max_digits=15, decimal_places=8)


class KindTotalOut(serializers.Serializer):
    kind = serializers.CharField()
    total = Amount("total_units")
    records = serializers.IntegerField()


class FundOut(serializers.Serializer):
    asset = serializers.CharField(source="asset.code")
    name = serializers.CharField(source="asset.name")
    precision = serializers.IntegerField(source="asset.precision")
    balance = Amount("balance_units", asset="asset")
    contracts = ContractOut(many=True, source="asset.contracts.all")
    inflows = serializers.SerializerMethodField()
    outflows = serializers.SerializerMethodField()
    cycle_seconds = serializers.IntegerField()
    grace_seconds = serializers.IntegerField()
    fund_ratio = serializers.DecimalField(max_digits=5, decimal_places=4)
    screening_ratio = serializers.DecimalField(max_digits=5, decimal_places=4)
    updated_at = serializers.DateTimeField()
    chain_head = serializers.CharField(
        source="head_hash", help_text="The hash of the newest record (see fund.chain)."
    )

    @extend_schema_field(KindTotalOut(many=True))
    def get_inflows(self, fund):
        return self._totals(fund, positive=True)

    @extend_schema_field(KindTotalOut(many=True))
    def get_outflows(self, fund):
        return self._totals(fund, positive=False)

    def _totals(self, fund, *, positive):
        rows = [
            t for t in fund.kind_totals.all() if (t.total_units > 0) == positive and t.total_units
        ]
        return KindTotalOut(rows, many=True).data


class BucketOut(serializers.Serializer):
    start = serializers.DateTimeField()
    open = Amount("open_units", asset="asset")
    close = Amount("close_units", asset="asset")
    low = Amount("low_units", asset="asset")
    high = Amount("high_units", asset="asset")
    inflow = Amount("inflow_units", asset="asset")
    outflow = Amount("outflow_units", asset="asset")
    records = serializers.IntegerField()


class RecordOut(serializers.ModelSerializer):
    asset = serializers.CharField(source="fund.asset.code")
    amount = Amount("amount_units")
    balance_after = Amount("balance_after_units")
    takeover = serializers.CharField(source="takeover.external_id", default=None, allow_null=True)
    corrects_seq = serializers.IntegerField(
        allow_null=True, read_only=True, help_text="The seq of the record this one corrects."
    )
    corrected_by = serializers.SerializerMethodField(
        help_text="The seqs of the corrections of this record, oldest first."
    )

    class Meta:
        model = FundRecord
        fields = [
            "asset",
            "id",
            "seq",
            "kind",
            "amount",
            "balance_after",
            "created_at",
            "takeover",
            "cycle",
            "corrects",
            "corrects_seq",
            "corrected_by",
            "reason",
            "hash",
        ]

    def get_corrected_by(self, record) -> list[int]:
        return [correction.seq for correction in record.corrections.all()]


class CycleOut(serializers.ModelSerializer):
    """A cycle's figures are null until it is settled."""

    asset = serializers.CharField(source="fund.asset.code")
    loss = Amount("loss_units", allow_null=True)
    balance_before = Amount("balance_before_units", allow_null=True)
    fund_share = Amount("fund_share_units", allow_null=True)
    users_share = Amount("users_share_units", allow_null=True)
    total_profit = Amount("total_profit_units", allow_null=True)
    participants_profit = Amount("participants_profit_units", allow_null=True)
    threshold_profit = Amount("threshold_profit_units", allow_null=True)
    apportioned = Amount("apportioned_units", allow_null=True)
    backstop = Amount("backstop_units", allow_null=True)
    uncovered = Amount("uncovered_units", allow_null=True)

    class Meta:
        model = SettlementCycle
        fields = [
            "id",
            "asset",
            "starts_at",
            "ends_at",
            "status",
            "grace_seconds",
            "fund_ratio",
            "screening_ratio",
            "loss",
            "balance_before",
            "fund_share",
            "users_share",
            "total_profit",
            "participants_profit",
            "threshold_profit",
            "apportioned",
            "backstop",
            "uncovered",
            "profitable_count",
            "participant_count",
            "apportionment_root",
            "closed_at",
            "settled_at",
        ]


# --- traders ---------------------------------------------------------------------------------


class StatementOut(serializers.ModelSerializer):
    asset = serializers.CharField(source="asset.code")
    amount = Amount("amount_units", asset="asset")
    cycle = serializers.IntegerField(source="apportionment.cycle_id", default=None, allow_null=True)
    position_id = serializers.IntegerField(
        source="apportionment.position.position_id", default=None, allow_null=True
    )

    class Meta:
        model = Statement
        fields = [
            "id",
            "type",
            "asset",
            "amount",
            "description",
            "created_at",
            "cycle",
            "position_id",
        ]


class ComputationOut(serializers.Serializer):
    cycle = serializers.IntegerField(source="cycle.id")
    cycle_starts_at = serializers.DateTimeField(source="cycle.starts_at")
    cycle_ends_at = serializers.DateTimeField(source="cycle.ends_at")
    loss = Amount("loss_units", asset="cycle.fund.asset")
    fund_share = Amount("fund_share_units", asset="cycle.fund.asset")
    users_share = Amount("users_share_units", asset="cycle.fund.asset")
    position_id = serializers.IntegerField()
    position_profit = Amount("profit_units", asset="cycle.fund.asset")
    rank = serializers.IntegerField()
    participant_count = serializers.IntegerField()
    threshold_profit = Amount("threshold_profit_units", asset="cycle.fund.asset")
    participants_profit = Amount("participants_profit_units", asset="cycle.fund.asset")
    fraction = serializers.SerializerMethodField(
        help_text="U / S as an exact fraction, capped at 1."
    )
    fraction_decimal = serializers.SerializerMethodField(
        help_text="U / S to 12 decimal places, for reading."
    )
    exact_share = serializers.SerializerMethodField(
        help_text="U × profit / S before rounding, as an exact fraction of units."
    )
    amount = Amount("amount_units", asset="cycle.fund.asset")
    rounding_unit = serializers.BooleanField(
        help_text="Received one leftover smallest unit (largest remainder)."
    )
    profit_after = Amount("profit_after_units", asset="cycle.fund.asset")

    def get_fraction(self, c) -> str:
        return f"{c.fraction.numerator}/{c.fraction.denominator}"

    def get_fraction_decimal(self, c) -> str:
        return (
            f"{c.fraction.numerator * 10**12 // c.fraction.denominator / 10**12:.12f}"
            if c.fraction
            else "0"
        )

    def get_exact_share(self, c) -> str:
        return f"{c.exact_share.numerator}/{c.exact_share.denominator}"


class StatementDetailOut(StatementOut):
    computation = serializers.SerializerMethodField()

    class Meta(StatementOut.Meta):
        fields = StatementOut.Meta.fields + ["computation"]

    @extend_schema_field(ComputationOut(allow_null=True))
    def get_computation(self, statement):
        return self.context.get("computation")


class ProofStepOut(serializers.Serializer):
    side = serializers.ChoiceField(
        choices=["left", "right"], help_text="Where the sibling hash goes."
    )
    hash = serializers.CharField(help_text="64 hex digits.")


class ProofOut(serializers.Serializer):
    """An apportionment's inclusion proof: recompute the leaf from its fields, fold the path and
    compare with the cycle's published apportionment_root (docs/check_ledger.py --proof)."""

    format = serializers.CharField()
    asset = serializers.CharField()
    precision = serializers.IntegerField()
    cycle = serializers.IntegerField()
    rank = serializers.IntegerField()
    position_id = serializers.IntegerField()
    profit = serializers.CharField(help_text="The position's profit before the apportionment.")
    amount = serializers.CharField()
    profit_units = serializers.IntegerField()
    amount_units = serializers.IntegerField()
    participant_count = serializers.IntegerField()
    leaf_text = serializers.CharField(
        help_text='"asset|cycle|rank|position|profit units|amount units"'
    )
    leaf = serializers.CharField(help_text="SHA-256 of 0x00 + leaf_text, hex.")
    path = ProofStepOut(many=True)
    root = serializers.CharField()
    cycle_url = serializers.CharField(
        help_text="The public cycle whose apportionment_root this proof must reach."
    )


class TokenIn(serializers.Serializer):
    name = serializers.CharField(max_length=100)


class TokenOut(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["prefix", "name", "kind", "created_at", "last_used_at", "revoked_at"]


class TokenCreatedOut(TokenOut):
    token = serializers.CharField(help_text="Shown this once: store it now.")

    class Meta(TokenOut.Meta):
        fields = TokenOut.Meta.fields + ["token"]


# --- admins ----------------------------------------------------------------------------------


class PreviewOut(serializers.Serializer):
    cycle = serializers.IntegerField()
    asset = serializers.CharField()
    loss = serializers.CharField()
    balance = serializers.CharField()
    fund_share = serializers.CharField()
    users_share = serializers.CharField()
    total_profit = serializers.CharField()
    participants_profit = serializers.CharField()
    threshold_profit = serializers.CharField()
    profitable_count = serializers.IntegerField()
    participant_count = serializers.IntegerField()
    backstop = serializers.CharField()
    uncovered = serializers.CharField()
    largest = serializers.ListField(
        child=serializers.DictField(), help_text="The largest apportionments, by rank."
    )


class MoneyMoveIn(serializers.Serializer):
    amount = serializers.CharField(
        help_text="A positive decimal string, at most the asset's decimals."
    )
    reason = serializers.CharField(max_length=2000, help_text="Published with the record.")


class CorrectionIn(serializers.Serializer):
    amount = serializers.CharField(
        help_text="A signed decimal string, not zero, at most the asset's decimals: what the "
        "correction adds to the fund (negative: takes out)."
    )
    reason = serializers.CharField(
        max_length=2000, help_text="Published with the correction, beside the corrected record."
    )


class SettleOut(serializers.Serializer):
    cycle = serializers.IntegerField()
    status = serializers.CharField()
    task_id = serializers.CharField(allow_null=True)


class AdminActionOut(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username")
    asset = serializers.CharField(source="fund.asset.code", default=None, allow_null=True)

    class Meta:
        model = AdminAction
        fields = [
            "id",
            "created_at",
            "actor",
            "action",
            "asset",
            "cycle",
            "record",
            "details",
            "ip_address",
            "user_agent",
        ]
