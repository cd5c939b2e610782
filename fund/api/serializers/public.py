"""What the public reads send (fund/api/public.py)."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from fund.api.serializers.fields import Amount
from fund.models import FundRecord, SettlementCycle


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
    applied_at = serializers.DateTimeField(
        source="application.applied_at",
        default=None,
        allow_null=True,
        read_only=True,
        help_text="When the exchange applied the apportionments to its traders' balances.",
    )

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
            "root_format",
            "balance_seq",
            "applied_at",
            "closed_at",
            "settled_at",
        ]
