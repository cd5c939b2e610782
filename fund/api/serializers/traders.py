"""What traders send and get (fund/api/traders.py)."""

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from fund.api.serializers.fields import Amount
from statements.models import ApiToken, Statement


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


class PositionProofOut(serializers.Serializer):
    """A profitable position's inclusion proof in its cycle's root of form 2 (participant or
    not): recompute the commitment from the salt and position id, the leaf from its fields, fold
    the path and compare with the cycle's published apportionment_root (docs/check_ledger.py
    --proof). The salt is yours alone: the cycle's published positions show only commitments."""

    format = serializers.CharField()
    asset = serializers.CharField()
    precision = serializers.IntegerField()
    cycle = serializers.IntegerField()
    rank = serializers.IntegerField(help_text="Among the cycle's profitable positions.")
    position_id = serializers.IntegerField()
    salt = serializers.CharField(help_text="16 bytes, hex: known to you and the site only.")
    commitment = serializers.CharField(help_text='SHA-256(salt ‖ "position|cycle|position"), hex.')
    profit = serializers.CharField()
    amount = serializers.CharField(help_text="The apportionment, 0 below the threshold.")
    profit_units = serializers.IntegerField()
    amount_units = serializers.IntegerField()
    participant = serializers.BooleanField()
    profitable_count = serializers.IntegerField()
    leaf_text = serializers.CharField(
        help_text='"v2|asset|cycle|rank|commitment|profit units|amount units"'
    )
    leaf = serializers.CharField(help_text="SHA-256 of 0x00 + leaf_text, hex.")
    path = ProofStepOut(many=True)
    root = serializers.CharField()
    cycle_url = serializers.CharField()


class PositionOut(serializers.Serializer):
    """One of my profitable positions in a settled cycle, and where its proof is."""

    id = serializers.IntegerField()
    cycle = serializers.IntegerField(source="cycle_id")
    asset = serializers.CharField(source="cycle.fund.asset.code")
    position_id = serializers.IntegerField()
    contract = serializers.CharField(source="contract.symbol")
    profit = Amount("profit_units", asset="cycle.fund.asset")
    apportioned = serializers.BooleanField()
    amount = serializers.CharField(help_text="The apportionment, 0 below the threshold.")
    statement = serializers.IntegerField(allow_null=True)
    proof_url = serializers.CharField()


class TokenIn(serializers.Serializer):
    name = serializers.CharField(
        max_length=ApiToken._meta.get_field("name").max_length,
        validators=[RegexValidator(r"\S")],
        help_text="Counted as sent: a longer name is refused, not cut; spaces around it are "
        "dropped, so it needs one other character.",
    )


class TokenOut(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["prefix", "name", "kind", "created_at", "last_used_at", "revoked_at"]


class TokenCreatedOut(TokenOut):
    token = serializers.CharField(help_text="Shown this once: store it now.")

    class Meta(TokenOut.Meta):
        fields = TokenOut.Meta.fields + ["token"]
